"""preannot's vectorised brush RLE against the SDK's own encoder and decoder, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle, encode_rle, mask2rle

from preannot.brush import decode, encode, mask_to_rle, rle_to_mask


def masks(count: int, seed: int = 0):
    """Masks of every kind a model or a human makes: noise, blobs with ragged edges, empty,
    full, thin lines, single pixels, at sizes from 1x1 up."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(1, 48, 2))
        kind = i % 6
        if kind == 0:
            yield rng.random((h, w)) < rng.random()
        elif kind == 1:
            yy, xx = np.mgrid[:h, :w]
            yield ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (min(h, w) / 3) ** 2 * (
                1 + 0.3 * rng.standard_normal((h, w)))
        elif kind == 2:
            yield np.zeros((h, w), bool)
        elif kind == 3:
            yield np.ones((h, w), bool)
        elif kind == 4:
            mask = np.zeros((h, w), bool)
            mask[int(rng.integers(h)), :] = True
            yield mask
        else:
            mask = np.zeros((h, w), bool)
            mask[int(rng.integers(h)), int(rng.integers(w))] = True
            yield mask


def test_the_encoder_writes_the_sdks_bytes_and_the_decoder_reads_them_back():
    checked = 0
    for mask in masks(3000):
        sdk = mask2rle(mask.astype(np.uint8) * 255)
        assert mask_to_rle(mask) == sdk
        assert np.array_equal(decode(sdk), decode_rle(sdk))
        assert np.array_equal(rle_to_mask(sdk, *mask.shape), mask)
        checked += 1
    assert checked == 3000


@pytest.mark.parametrize("length", [1, 2, 8, 9, 16, 17, 256, 257, 65536, 65537, 131072,
                                    131073, 300_001])
def test_runs_of_every_length_are_split_as_the_sdk_splits_them(length):
    values = np.zeros(length + 3, dtype=np.uint8)
    values[-3:] = [255, 7, 7]  # then a short run and a single value of another kind
    assert encode(values) == encode_rle(values)
    assert np.array_equal(decode(encode(values)), values)


def test_a_large_mask_round_trips():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:480, :640]
    mask = ((yy - 240) ** 2 / 150 ** 2 + (xx - 320) ** 2 / 200 ** 2) < 1 + 0.05 * rng.standard_normal(
        (480, 640))
    rle = mask_to_rle(mask)
    assert rle == mask2rle(mask.astype(np.uint8) * 255)
    assert np.array_equal(rle_to_mask(rle, 480, 640), mask)
