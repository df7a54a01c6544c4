"""Argument checks shared by the masks, losses, metrics and transforms.

Every check raises a ``ValueError`` whose message names the offending argument and states what was
expected, so that a wrong call fails loudly instead of returning a silently wrong number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np
import torch

NdarrayOrTensor = Union[np.ndarray, torch.Tensor]

__all__ = [
    "NdarrayOrTensor",
    "as_bool_tensor",
    "check_batched_spatial",
    "check_binary",
    "check_positive_int",
    "check_same_shape",
    "check_spacing",
    "check_unit_interval",
]


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
    """Raise unless every value of ``x`` is 0 or 1 (``bool`` arrays pass trivially).

    Raises:
        ValueError: when ``x`` holds a value other than 0 and 1.
    """
    if x.dtype in (torch.bool, np.bool_):
        return
    if isinstance(x, torch.Tensor):
        ok = bool(((x == 0) | (x == 1)).all())
    else:
        ok = bool(np.isin(x, (0, 1)).all())
    if not ok:
        found = torch.unique(x)[:5].tolist() if isinstance(x, torch.Tensor) else np.unique(x)[:5].tolist()
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


def check_same_shape(a: NdarrayOrTensor, b: NdarrayOrTensor, name_a: str, name_b: str) -> None:
    """Raise unless ``a`` and ``b`` have the same shape.

    Raises:
        ValueError: when the shapes differ.
    """
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")


def as_bool_tensor(x: NdarrayOrTensor, device: torch.device | str | None = None) -> torch.Tensor:
    """Return ``x`` as a ``bool`` tensor (NumPy arrays are wrapped without a copy where possible)."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device=device).bool() if device is not None else t.bool()
