"""Brush RLE: preannot's vectorised encoder and decoder against the SDK's ``mask2rle`` and
``decode_rle`` on SAM-like masks (ellipses with ragged edges) at a camera's size; checks that
every RLE is byte-identical and every decoded mask pixel-identical, then prints the ratios.

    python benchmarks/rle.py [--masks 40] [--size 640x480]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from label_studio_sdk.converter.brush import decode_rle, mask2rle

from preannot.brush import decode, mask_to_rle


def sam_like(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    ry, rx = rng.uniform(0.1, 0.3) * height, rng.uniform(0.1, 0.3) * width
    edge = 1 + 0.08 * rng.standard_normal((height, width))
    return ((yy - cy) ** 2 / ry ** 2 + (xx - cx) ** 2 / rx ** 2) < edge


def timed(fn, items):
    start = time.perf_counter()
    out = [fn(item) for item in items]
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--masks", type=int, default=40)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    masks = [sam_like(rng, height, width) for _ in range(args.masks)]
    sdk_rle, sdk_enc = timed(lambda m: mask2rle(m.astype(np.uint8) * 255), masks)
    our_rle, our_enc = timed(mask_to_rle, masks)
    assert our_rle == sdk_rle, "an RLE differs from the SDK's"
    sdk_px, sdk_dec = timed(decode_rle, sdk_rle)
    our_px, our_dec = timed(decode, sdk_rle)
    assert all(np.array_equal(a, b) for a, b in zip(sdk_px, our_px)), "a decoded mask differs"
    n = args.masks
    print(f"{n} masks {width}x{height}, {np.mean([len(r) for r in sdk_rle]):,.0f} RLE bytes each, "
          "all byte- and pixel-identical to the SDK's")
    print(f"encode: SDK {1000 * sdk_enc / n:.1f} ms/mask, preannot {1000 * our_enc / n:.1f} "
          f"ms/mask: {sdk_enc / our_enc:.1f}x")
    print(f"decode: SDK {1000 * sdk_dec / n:.1f} ms/mask, preannot {1000 * our_dec / n:.1f} "
          f"ms/mask: {sdk_dec / our_dec:.1f}x")


if __name__ == "__main__":
    main()
