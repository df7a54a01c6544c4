"""Skeletons of 2D and 3D masks: clDice's soft skeleton and the exact (scikit-image) skeleton."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch
from monai.losses.cldice import soft_erode, soft_open

from contextloss_monai.topology.morphology import dilate_box, erode_cross
from monai.config import NdarrayOrTensor

from contextloss_monai.checks import check_batched_spatial, check_binary, check_option, check_positive_int
from contextloss_monai.utils import to_numpy

__all__ = ["SKELETON_METHODS", "binary_soft_skeleton", "binary_soft_skeleton_kernel", "skeleton_kernel", "skeletonize", "skeletonize_exact", "soft_skeleton"]

SKELETON_METHODS = ("soft", "exact")


def soft_skeleton(x: torch.Tensor, iters: int = 50) -> torch.Tensor:
    """
    clDice's soft skeleton (Shit et al., CVPR 2021) of a batch of 2D or 3D maps.

    The iteration is MONAI's (``monai.losses.cldice.soft_skel``, built on its public ``soft_erode`` and
    ``soft_open``); this version stops as soon as one more erosion leaves the image unchanged. A map
    that min-pooling leaves unchanged is constant, so every further step would add
    ``relu(img - soft_open(img)) = 0``: the result (and its gradient) is identical to running all
    ``iters`` iterations. On binary masks of thin structures the erosion
    empties after a few steps, which makes the skeleton of a binary map far cheaper than 50 iterations.

    Args:
        x: soft or binary maps, shape ``(B, C, H, W)`` or ``(B, C, H, W, D)``, floating point.
        iters: the maximum number of erosion steps (the paper uses 50 for every method).

    Returns:
        the soft skeleton, same shape and dtype as ``x``; for a binary ``x`` it is binary too.

    Raises:
        ValueError: when ``x`` is not 4D/5D or ``iters`` is not a positive integer.

    Example:
        >>> line = torch.zeros(1, 1, 7, 20); line[..., 2:5, :] = 1
        >>> soft_skeleton(line)[0, 0, :, 10].tolist()
        [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    """
    check_batched_spatial(x, "x")
    iters = check_positive_int(iters, "iters")
    if not torch.is_floating_point(x):
        x = x.float()
    img = x
    skel = torch.relu(img - soft_open(img))
    for _ in range(iters):
        eroded = soft_erode(img)
        if torch.equal(eroded, img):
            break
        img = eroded
        delta = torch.relu(img - soft_open(img))
        skel = skel + torch.relu(delta - skel * delta)
    return skel


def binary_soft_skeleton(mask: torch.Tensor, iters: int = 50) -> torch.Tensor:
    """
    :func:`soft_skeleton` of a binary map, computed with boolean shifts instead of float pooling.

    On a 0/1 map, min- and max-pooling are binary erosion and dilation and every soft operation of
    clDice's iteration (``relu(a - b)``, ``s + relu(d - s·d)``) is a logical one, so this gives exactly
    ``soft_skeleton(mask.float(), iters) > 0.5`` (tested) at a small fraction of the cost. It stops at the
    first erosion that leaves the map unchanged, like :func:`soft_skeleton`. No gradient.

    Args:
        mask: a bool tensor ``(B, C, H, W)`` or ``(B, C, H, W, D)``, any device.
        iters: the maximum number of erosion steps.

    Returns:
        the skeleton, a bool tensor of the same shape and device.

    Raises:
        ValueError: when ``mask`` is not 4D/5D or ``iters`` is not a positive integer.
    """
    check_batched_spatial(mask, "mask")
    return binary_soft_skeleton_kernel(mask.bool(), check_positive_int(iters, "iters"))


def binary_soft_skeleton_kernel(img: torch.Tensor, iters: int) -> torch.Tensor:
    """Kernel of :func:`binary_soft_skeleton` for a checked bool tensor ``(B, C, *spatial)`` and ``iters``."""
    axes = range(2, img.dim())
    skel = img & ~dilate_box(erode_cross(img, axes), axes)
    stop_early = not img.is_cuda  # the early-exit test reads the tensor: on a GPU run every step, sync-free
    for _ in range(iters):
        eroded = erode_cross(img, axes)
        if stop_early and torch.equal(eroded, img):
            break  # a map that erosion leaves unchanged adds nothing in later steps: same result
        img = eroded
        skel |= img & ~dilate_box(erode_cross(img, axes), axes)
    return skel


_EXACT_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_EXACT_CACHE_SIZE = 4


def skeletonize_exact(mask: np.ndarray) -> np.ndarray:
    """
    Exact skeleton of one binary 2D or 3D array with scikit-image
    (Zhang's thinning in 2D, Lee's method in 3D; the result is 8- / 26-connected).

    The thinning runs on the bounding box of the foreground (plus a background margin of one pixel:
    identical result, less work on sparse tiles), and the last few results are cached by content, so
    metrics evaluated on the same tiles (clDice and AGS both need ``skel(Y)``) share one skeleton.

    Args:
        mask: a binary array of shape ``(H, W)`` or ``(H, W, D)``.

    Returns:
        a read-only ``bool`` array of the same shape (it may be shared through the cache).
    """
    from skimage.morphology import skeletonize as sk_skeletonize

    mask = np.asarray(mask).astype(bool, copy=False)
    nonzero = [np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis))) for axis in range(mask.ndim)]
    if not len(nonzero[0]):
        return np.zeros(mask.shape, dtype=bool)
    key = (mask.shape, hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=16).digest())
    if key in _EXACT_CACHE:
        _EXACT_CACHE.move_to_end(key)
        return _EXACT_CACHE[key]
    box = tuple(slice(max(int(nz[0]) - 1, 0), int(nz[-1]) + 2) for nz in nonzero)
    out = np.zeros(mask.shape, dtype=bool)
    out[box] = np.asarray(sk_skeletonize(np.ascontiguousarray(mask[box])), dtype=bool)
    out.flags.writeable = False
    _EXACT_CACHE[key] = out
    if len(_EXACT_CACHE) > _EXACT_CACHE_SIZE:
        _EXACT_CACHE.popitem(last=False)
    return out


def skeletonize(mask: NdarrayOrTensor, method: str = "soft", iters: int = 50) -> NdarrayOrTensor:
    """
    Skeletons of a batch of binary masks, per sample and channel.

    Args:
        mask: binary masks of shape ``(B, C, H, W)`` or ``(B, C, H, W, D)``, a tensor (any device) or array.
        method: ``"soft"`` — clDice's soft skeleton (iterated min/max pooling, :func:`soft_skeleton`)
            of the binary map, as the paper uses; ``"exact"`` — scikit-image ``skeletonize``.
        iters: iterations of the soft skeleton (ignored by ``"exact"``).

    Returns:
        a ``bool`` mask of the same shape and type (tensor on the same device, or ndarray).

    Raises:
        ValueError: wrong number of dimensions, non-binary input, unknown ``method``, non-positive ``iters``.

    Example:
        >>> ring = torch.zeros(1, 1, 32, 32, dtype=torch.bool); ring[..., 8:24, 8:24] = True
        >>> ring[..., 11:21, 11:21] = False
        >>> skeletonize(ring, method="exact").sum() > 0
        tensor(True)
    """
    check_option(method, SKELETON_METHODS, "method")
    check_batched_spatial(mask, "mask")
    check_binary(mask, "mask")
    iters = check_positive_int(iters, "iters")
    is_tensor = isinstance(mask, torch.Tensor)
    skel = skeleton_kernel(mask.bool() if is_tensor else torch.as_tensor(np.asarray(mask, dtype=bool)), method, iters)
    return skel if is_tensor else to_numpy(skel)


def skeleton_kernel(mask: torch.Tensor, method: str, iters: int) -> torch.Tensor:
    """Kernel of :func:`skeletonize` for a checked bool tensor ``(B, C, *spatial)``, method and ``iters``:
    the skeletons as a bool tensor on ``mask``'s device. Callers check; this trusts them."""
    if method == "soft":
        with torch.no_grad():
            return binary_soft_skeleton_kernel(mask, iters)
    arr = to_numpy(mask)
    out = np.zeros(arr.shape, dtype=bool)
    for b in range(arr.shape[0]):
        for c in range(arr.shape[1]):
            out[b, c] = skeletonize_exact(arr[b, c])
    return torch.from_numpy(out).to(mask.device)
