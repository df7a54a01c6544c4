"""Binary maps packed 64 pixels to a word along their last axis, and one-pixel erosion and dilation on the words.

A bool tensor ``(..., W)`` becomes an ``int64`` tensor ``(..., ceil(W / 64))``: pixel ``i`` of a row is bit
``i % 64`` of word ``i // 64``; the bits past ``W`` in the last word (the row's padding) are 0. One element-wise
operation on the words then handles 64 pixels, and a one-pixel shift along the last axis is a bit shift within
each word plus the bit carried over from its neighbour word, instead of a strided copy of the bool tensor. The
other axes shift whole words, as :mod:`contextloss_monai.topology.morphology` shifts pixels.

The erosion and dilation give exactly :func:`~contextloss_monai.topology.morphology.erode_cross` and
:func:`~contextloss_monai.topology.morphology.dilate_box` of the unpacked map (tested): outside the image counts
as foreground for the erosion and as background for the dilation. Packing reads bytes as words, so it needs a
little-endian machine (:data:`AVAILABLE`); every operation is an ordinary tensor operation, so the same
code runs on any device and inside a captured CUDA graph.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import torch

from contextloss_monai.topology.morphology import _halves  # the same index halves as the bool shifts

__all__ = ["AVAILABLE", "WORD_BITS", "dilate_box_packed", "erode_cross_packed", "pack_bits", "row_bits", "unpack_bits"]

WORD_BITS = 64
#: packing reads bytes as words, which needs a little-endian machine (every platform PyTorch ships CUDA for is)
AVAILABLE = sys.byteorder == "little"
_LOW_63 = (1 << 63) - 1  # every bit but the sign bit: masks an arithmetic right shift into a logical one
_SIGN_BIT = -(1 << 63)  # bit 63 of an int64


#: multiplying four 0/1 bytes (at bits 0, 8, 16, 24) by this puts byte ``j`` at bit ``24 + j``: no other partial
#: product reaches bits 24-27 and none carries into them (products below 2**50: no overflow)
_GATHER_4 = (1 << 24) | (1 << 17) | (1 << 10) | (1 << 3)
_TABLES: dict[torch.device, torch.Tensor] = {}


def _spread_table(device: torch.device) -> torch.Tensor:
    """``table[b]``: the eight bytes 0/1 of the bits of ``b`` as one ``int64`` (bit ``j`` in byte ``j``)."""
    if device not in _TABLES:
        values = [sum(((b >> j) & 1) << (8 * j) for j in range(8)) for b in range(256)]
        _TABLES[device] = torch.tensor(values, dtype=torch.int64, device=device)
    return _TABLES[device]


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """
    Pack a bool tensor along its last axis, 64 pixels per ``int64`` word.

    Eight pixels are read as one ``int64`` (a bool is one byte 0/1) and gathered into one byte by two
    multiplications; eight bytes are read as one word. Byte order is little-endian: :data:`AVAILABLE` says
    whether this machine is.

    Args:
        mask: bool tensor ``(..., W)`` with ``W >= 1``, any device.

    Returns:
        ``int64`` tensor ``(..., ceil(W / 64))`` on ``mask``'s device; the padding bits past ``W`` are 0.
    """
    lead, width = mask.shape[:-1], mask.shape[-1]
    n_bytes, n_words = -(-width // 8), -(-width // WORD_BITS)
    padded = torch.nn.functional.pad(mask, (0, n_bytes * 8 - width)) if width % 8 else mask.contiguous()
    octets = padded.view(torch.uint8).view(torch.int64)  # (..., n_bytes): eight pixels each, one per byte
    low = ((octets & 0x01010101) * _GATHER_4 >> 24) & 0xF
    high = ((octets >> 32) * _GATHER_4 >> 24) & 0xF
    packed = (low | (high << 4)).to(torch.uint8)
    if n_words * 8 != n_bytes:
        packed = torch.nn.functional.pad(packed, (0, n_words * 8 - n_bytes))
    return packed.view(torch.int64).reshape(*lead, n_words)


def unpack_bits(words: torch.Tensor, width: int) -> torch.Tensor:
    """
    Inverse of :func:`pack_bits`: the first ``width`` pixels of each packed row.

    Args:
        words: ``int64`` tensor ``(..., ceil(width / 64))``.
        width: the length ``W`` of the unpacked rows.

    Returns:
        bool tensor ``(..., W)`` on ``words``' device (a view of a padded buffer when ``W`` is not a multiple of 64).
    """
    octets = words.contiguous().view(torch.uint8).long()  # (..., n_words * 8)
    pixels = _spread_table(words.device)[octets].view(torch.uint8).view(torch.bool)
    return pixels.reshape(*words.shape[:-1], words.shape[-1] * WORD_BITS)[..., :width]


def row_bits(width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The packed row of ``width`` set pixels, ``(ceil(width / 64),)`` ``int64``: 1 on the image, 0 on the
    padding. ``words & row_bits(W)`` clears a packed map's padding; ``words | ~row_bits(W)`` sets it."""
    return pack_bits(torch.ones(width, dtype=torch.bool, device=device))


def _from_previous_pixel(words: torch.Tensor, outside: int) -> torch.Tensor:
    """Each pixel gets the value of the pixel before it along the last axis (``outside`` before the first)."""
    shifted = words << 1
    if words.shape[-1] > 1:
        shifted[..., 1:] |= (words[..., :-1] >> (WORD_BITS - 1)) & 1
    if outside:
        shifted[..., 0] |= 1
    return shifted


def _from_next_pixel(words: torch.Tensor, outside: int) -> torch.Tensor:
    """Each pixel gets the value of the pixel after it along the last axis (``outside`` after the last word;
    the padding bits of the last word supply the pixels just past the row)."""
    shifted = (words >> 1) & _LOW_63
    if words.shape[-1] > 1:
        shifted[..., :-1] |= words[..., 1:] << (WORD_BITS - 1)
    if outside:
        shifted[..., -1] |= _SIGN_BIT
    return shifted


def erode_cross_packed(words: torch.Tensor, row: torch.Tensor, axes: Iterable[int]) -> torch.Tensor:
    """
    Erosion with the axis-aligned cross of a packed map: each pixel and its two neighbours along the packed
    (last) axis and along each of ``axes`` (the other spatial axes of ``words``).

    Args:
        words: a packed map ``(..., n_words)`` with its padding bits 0 (as :func:`pack_bits` makes it).
        row: :func:`row_bits` of the map's width.
        axes: the spatial axes of ``words`` other than the last.

    Returns:
        the packed erosion, padding bits 0.
    """
    grown = words | ~row  # outside the image counts as foreground: the padding bits too
    out = grown & _from_previous_pixel(grown, 1) & _from_next_pixel(grown, 1)
    for axis in axes:
        upper, lower = _halves(words.ndim, axis)
        out[upper] &= grown[lower]
        out[lower] &= grown[upper]
    return out & row


def dilate_box_packed(words: torch.Tensor, row: torch.Tensor, axes: Iterable[int]) -> torch.Tensor:
    """
    Dilation with the 3x3(x3) box of a packed map (separable: the packed axis, then each of ``axes``).

    Args:
        words: a packed map ``(..., n_words)`` with its padding bits 0.
        row: :func:`row_bits` of the map's width.
        axes: the spatial axes of ``words`` other than the last.

    Returns:
        the packed dilation, padding bits 0.
    """
    out = words | _from_previous_pixel(words, 0) | _from_next_pixel(words, 0)
    for axis in axes:
        upper, lower = _halves(words.ndim, axis)
        grown = out.clone()
        grown[upper] |= out[lower]
        grown[lower] |= out[upper]
        out = grown
    return out & row
