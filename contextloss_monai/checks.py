"""Argument checks of the package's public entry points, in one place.

Every check raises a ``ValueError`` whose message names the offending argument and states what was
expected, so that a wrong call fails loudly instead of returning a silently wrong number. Each public
function or class checks its arguments once, here; the private kernels behind it trust their callers.
Checks that read a whole tensor (:func:`check_binary`) synchronise with the device: call them once per
call of a public entry point, never inside a loop.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.utils import look_up_option

from contextloss_monai.utils import to_numpy

__all__ = [
    "DEFAULT_CONNECTIVITY",
    "PLAIN_NAME_MAX_LENGTH",
    "as_bool_array",
    "as_bool_tensor",
    "check_batched_spatial",
    "check_activation",
    "check_binary",
    "check_connectivity",
    "check_field_of_view",
    "check_option",
    "check_non_negative",
    "check_plain_name",
    "check_positive_int",
    "check_same_shape",
    "check_slice_axis",
    "check_spacing",
    "check_tile_shape",
    "check_unit_interval",
]

#: foreground connectivity per spatial dimension when none is given (the background uses the dual)
DEFAULT_CONNECTIVITY = {2: 8, 3: 26}


def check_option(value: object, options: Collection, name: str):
    """``value`` if it is one of ``options`` (MONAI's ``look_up_option``, whose error names the choices).

    Raises:
        ValueError: naming ``name`` and the supported values.
    """
    try:
        return look_up_option(value, options)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}.") from error


#: the longest plain name: with a suffix such as ``.nii.gz`` it stays within a file system's 255-byte file names
PLAIN_NAME_MAX_LENGTH = 128
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_plain_name(value: str, name: str) -> str:
    """``value`` if it is a plain name — letters, digits, ``_ . -``, not starting with ``.``, no ``..``, no
    path separator or control character, at most :data:`PLAIN_NAME_MAX_LENGTH` characters — that can name a
    file inside a folder and nothing outside it (image ids, label tags, model names).

    Raises:
        ValueError: naming ``name`` and the value (shortened when it is long).
    """
    if (not isinstance(value, str) or len(value) > PLAIN_NAME_MAX_LENGTH or not _PLAIN_NAME.fullmatch(value)
            or ".." in value):
        shown = value if not isinstance(value, str) or len(value) <= 60 else value[:60] + "..."
        raise ValueError(
            f"{name} must be a plain name (letters, digits, '_', '.', '-'; no path separators or '..'; at most "
            f"{PLAIN_NAME_MAX_LENGTH} characters), got {shown!r}."
        )
    return value


def check_unit_interval(value: float, name: str) -> float:
    """Return ``value`` as float if it lies in ``[0, 1]``.

    Raises:
        ValueError: when ``value`` is not a number in ``[0, 1]``.
    """
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}.") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}.")
    return value


def check_non_negative(value: float, name: str) -> float:
    """Return ``value`` as float if it is a finite number ``>= 0`` (a loss term's weight).

    Raises:
        ValueError: when ``value`` is not a number, is negative, infinite or NaN.
    """
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.") from None
    if not 0.0 <= value < float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    return value


def check_positive_int(value: int, name: str) -> int:
    """Return ``value`` if it is a positive integer (``bool`` is rejected).

    Raises:
        ValueError: when ``value`` is not an integer > 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def check_spacing(spacing: float | Sequence[float] | None, spatial_dims: int, name: str = "spacing") -> tuple | None:
    """Normalise a voxel spacing to a tuple of ``spatial_dims`` positive floats (``None`` stays ``None``).

    Raises:
        ValueError: when the spacing has the wrong length or a non-positive entry.
    """
    if spacing is None:
        return None
    values = [spacing] * spatial_dims if np.isscalar(spacing) else list(spacing)
    if len(values) != spatial_dims:
        raise ValueError(f"{name} must have {spatial_dims} entries (one per spatial axis), got {spacing!r}.")
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must contain numbers, got {spacing!r}.") from None
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name} must contain finite positive numbers, got {spacing!r}.")
    return tuple(values)


def check_binary(x: NdarrayOrTensor, name: str) -> None:
    """Raise unless every value of ``x`` is 0 or 1 (``bool`` arrays pass trivially, without reading ``x``).

    On a CUDA tensor the check is a device-side assertion (``torch._assert_async``): it does not wait for
    the device, and a failure surfaces at the next synchronisation as a CUDA assertion error.

    Raises:
        ValueError: when ``x`` holds a value other than 0 and 1.
    """
    if x.dtype in (torch.bool, np.bool_):
        return
    if isinstance(x, torch.Tensor) and x.is_cuda:  # a device-side assertion: no host synchronisation
        torch._assert_async(((x == 0) | (x == 1)).all(), f"{name} must be binary (values 0 and 1 only)")
        return
    if isinstance(x, torch.Tensor):
        ok = bool(((x == 0) | (x == 1)).all())
    else:
        ok = bool(np.isin(x, (0, 1)).all())
    if not ok:
        found = np.unique(to_numpy(x))[:5].tolist()
        raise ValueError(f"{name} must be binary (values 0 and 1 only), found values such as {found}.")


def check_batched_spatial(x: NdarrayOrTensor, name: str, spatial_dims: Sequence[int] = (2, 3)) -> int:
    """Check a channel-first batch ``(B, C, *spatial)`` and return its number of spatial dimensions.

    Raises:
        ValueError: when ``x`` does not have ``2 + d`` dimensions for an allowed ``d``.
    """
    nd = x.ndim - 2
    if nd not in spatial_dims:
        allowed = " or ".join(f"{2 + d} dimensions (B, C, {d} spatial)" for d in spatial_dims)
        raise ValueError(f"{name} must have {allowed}, got shape {tuple(x.shape)}.")
    return nd


def check_activation(sigmoid: bool, softmax: bool, other_act: object) -> None:
    """Raise when a loss is given more than one activation, with MONAI's message.

    Raises:
        ValueError: more than one of ``sigmoid``, ``softmax`` and ``other_act``.
    """
    if int(sigmoid) + int(softmax) + int(other_act is not None) > 1:
        raise ValueError("Incompatible values: more than 1 of [sigmoid=True, softmax=True, other_act is not None].")


def check_field_of_view(mask: NdarrayOrTensor, expected: Sequence[int], name: str = "mask", of: str = "the image") -> None:
    """Raise unless a field-of-view mask has the ``expected`` shape: one channel, ``(1, *spatial)`` for an
    image or ``(B, 1, *spatial)`` for a batch, with the spatial shape of what it restricts.

    Raises:
        ValueError: naming ``name``, what it restricts (``of``), the expected shape and the one given.
    """
    if tuple(mask.shape) != tuple(expected):
        raise ValueError(f"{name} must be a one-channel field-of-view mask for {of}, shape {tuple(expected)}, got {tuple(mask.shape)}.")


def check_same_shape(a: NdarrayOrTensor, b: NdarrayOrTensor, name_a: str, name_b: str) -> None:
    """Raise unless ``a`` and ``b`` have the same shape.

    Raises:
        ValueError: when the shapes differ.
    """
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")


def check_connectivity(connectivity: int | None, ndim: int) -> int:
    """The foreground connectivity for a ``ndim``-D image: ``None`` → 8 / 26; 4 / 8 (2D), 6 / 26 (3D).

    Raises:
        ValueError: when ``connectivity`` is not one of the allowed values for ``ndim``.
    """
    if connectivity is None:
        return DEFAULT_CONNECTIVITY[ndim]
    allowed = (4, 8) if ndim == 2 else (6, 26)
    if connectivity not in allowed:
        raise ValueError(f"connectivity must be one of {allowed} (or None) for {ndim}D images, got {connectivity!r}.")
    return int(connectivity)


def check_tile_shape(tile_shape: Sequence[int] | int | None, shape: Sequence[int], name: str = "patch_size") -> tuple:
    """``tile_shape`` as a tuple of ints per axis of ``shape`` (an int is used for every axis; ``None`` or a
    ``-1``/``None`` entry means the whole axis).

    Raises:
        ValueError: wrong length, non-positive size, or a size larger than the image.
    """
    shape = tuple(int(n) for n in shape)
    if tile_shape is None:
        return shape
    if isinstance(tile_shape, (int, np.integer)):
        tile_shape = (int(tile_shape),) * len(shape)
    tile_shape = tuple(tile_shape)
    if len(tile_shape) != len(shape):
        raise ValueError(f"{name} must have {len(shape)} entries for an image of shape {shape}, got {tile_shape}.")
    out = []
    for t, n in zip(tile_shape, shape):
        if t is None or t == -1:
            out.append(n)
            continue
        if not isinstance(t, (int, np.integer)) or t <= 0:
            raise ValueError(f"{name} must hold positive integers, got {tile_shape}.")
        if t > n:
            raise ValueError(f"{name} {tile_shape} is larger than the image {shape}.")
        out.append(int(t))
    return tuple(out)


def check_slice_axis(slice_axis: int | None, spatial_dims: int) -> int | None:
    """The spatial axis (0, 1 or 2) along which 3D images are read as 2D slices, or ``None``.

    Raises:
        ValueError: for a slice axis of 2D images or an axis outside 0..2 (negative axes count from the end).
    """
    if slice_axis is None:
        return None
    if spatial_dims != 3:
        raise ValueError(f"slice_axis needs 3D images (B, C, H, W, D), got {spatial_dims}D images.")
    if slice_axis not in (0, 1, 2, -1, -2, -3):
        raise ValueError(f"slice_axis must be a spatial axis 0, 1 or 2 (or None), got {slice_axis!r}.")
    return slice_axis % 3


def as_bool_tensor(x: NdarrayOrTensor, device: torch.device | str | None = None) -> torch.Tensor:
    """Return ``x`` as a ``bool`` tensor (NumPy arrays are wrapped without a copy where possible)."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device=device).bool() if device is not None else t.bool()


def as_bool_array(mask: NdarrayOrTensor, name: str) -> np.ndarray:
    """A binary array or tensor (any device, any dtype, bfloat16 included) as a NumPy ``bool`` array.

    Raises:
        ValueError: naming ``name``, when ``mask`` holds values other than 0 and 1.
    """
    check_binary(mask, name)
    return to_numpy(mask).astype(bool, copy=False)
