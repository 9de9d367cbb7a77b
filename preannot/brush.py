"""Label Studio's brush RLE, vectorised with numpy: the same bytes as the SDK's ``mask2rle`` and
the same pixels as its ``decode_rle``, without their per-bit Python loops (which cost about
0.4 s a mask and dominated YOLO -> SAM runs and pulls of masks).

The format (``label_studio_sdk.converter.brush``): a 32-bit value count, a 5-bit word size - 1,
four 4-bit run-length sizes - 1, then one token per run of equal values -- a 1-bit "series"
flag, a 2-bit index into the run-length sizes, the run length - 1 in that many bits, the value
in word-size bits -- padded with 1 to 8 zero bits. A mask is stored as RGBA (each pixel's value
4 times), alpha 255 inside.
"""

from __future__ import annotations

from typing import Any

import numpy as np

HEADER_BITS = 32 + 5 + 4 * 4
SIZES = (3, 4, 8, 16)
"""The run-length sizes (bits) the SDK's encoder writes."""


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, values) of the runs of equal values."""
    ends = np.append(np.flatnonzero(values[1:] != values[:-1]), len(values) - 1)
    lengths = np.diff(np.append(-1, ends))
    return lengths.astype(np.int64), values[ends].astype(np.int64)


def encode(values: np.ndarray) -> list[int]:
    """The SDK's ``encode_rle(values)`` (word size 8, run sizes 3, 4, 8, 16), as its byte list."""
    values = np.asarray(values).ravel()
    lengths, run_values = _runs(values) if len(values) else (np.zeros(0, np.int64),) * 2
    # runs over 2**16 are split as the SDK splits them: chunks of 2**16 (written as 65535),
    # then the rest
    chunks = np.where(lengths > 2 ** 16, (lengths - 1) // 2 ** 16, 0)
    repeat = chunks + 1
    run = np.repeat(np.arange(len(lengths)), repeat)
    first = np.cumsum(repeat) - repeat  # index of each run's first token
    position = np.arange(len(run)) - first[run]
    is_last = position == chunks[run]
    length = np.where(is_last, lengths[run] - chunks[run] * 2 ** 16, 2 ** 16)
    value = run_values[run]
    # token layout: flag, size index, length - 1, value; the size follows the whole run's
    # length (the rest of a split run keeps 16 bits, however short)
    whole = lengths[run]
    single = whole == 1
    index = np.select([whole <= 8, whole <= 16, whole <= 256], [0, 1, 2], 3)
    size_bits = np.asarray(SIZES)[index]
    count = np.where(is_last, length - 1, 2 ** 16 - 1)
    bits = 1 + 2 + size_bits + 8
    code = (((np.where(single, 0, 1) << 2 | index) << size_bits | count) << 8) | value
    header = (len(values) << 21) | (7 << 16)
    for shift, size in zip((12, 8, 4, 0), SIZES):
        header |= (size - 1) << shift
    total = HEADER_BITS + int(bits.sum())
    pad = 8 - total % 8  # the SDK always pads, a whole zero byte when already aligned
    out = np.zeros(total + pad, dtype=np.uint8)
    out[:HEADER_BITS] = (header >> np.arange(HEADER_BITS - 1, -1, -1)) & 1
    starts = HEADER_BITS + np.cumsum(bits) - bits
    for k in range(int(bits.max()) if len(bits) else 0):  # bit k of every token at once
        live = k < bits
        out[starts[live] + k] = (code[live] >> (bits[live] - 1 - k)) & 1
    return np.packbits(out).tolist()


def mask_to_rle(mask: Any) -> list[int]:
    """A binary mask (height x width) as Label Studio brush RLE: RGBA, 255 inside."""
    pixels = (np.asarray(mask) > 0).astype(np.uint8) * 255
    return encode(np.repeat(pixels.ravel(), 4))


def decode(rle: Any) -> np.ndarray:
    """The SDK's ``decode_rle``: the flat uint8 values of an RLE of any word and run sizes."""
    data = np.asarray(rle, dtype=np.uint8)
    bits = (np.unpackbits(data) + ord("0")).tobytes().decode("ascii")
    pos = 0

    def read(width: int) -> int:
        nonlocal pos
        pos += width
        return int(bits[pos - width:pos], 2)

    num, word = read(32), read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    lengths, values = [], []
    done = 0
    while done < num:
        series = read(1)
        length = 1 + read(sizes[read(2)])
        if series:
            lengths.append(length)
            values.append(read(word))
        else:  # ``length`` values written one by one
            lengths.extend([1] * length)
            values.extend(read(word) for _ in range(length))
        done += length
    out = np.repeat(np.asarray(values, dtype=np.int64), lengths)[:num]
    return out.astype(np.uint8)


def rle_to_mask(rle: Any, height: int, width: int) -> np.ndarray:
    """A brush RLE's mask (height x width, bool): its alpha channel above 0."""
    return decode(rle).reshape(height, width, 4)[:, :, 3] > 0
