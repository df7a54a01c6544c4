"""Skeletons of 2D and 3D masks: clDice's soft skeleton and the exact (scikit-image) skeleton."""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.losses.cldice import soft_erode, soft_open

from contextloss_monai.checks import check_batched_spatial, check_binary, check_option, check_positive_int
from contextloss_monai.topology import packed as packed_morphology
from contextloss_monai.topology.morphology import dilate_box, erode_cross
from contextloss_monai.topology.thinning import precompile, thin_3d
from contextloss_monai.utils import atomic_file, content_key, to_numpy

__all__ = [
    "SKELETON_METHODS",
    "binary_soft_skeleton",
    "binary_soft_skeleton_kernel",
    "skeleton_kernel",
    "skeletonize",
    "skeletonize_exact",
    "skeletonize_exact_many",
    "soft_skeleton",
]

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
    first erosion that leaves the map unchanged, like :func:`soft_skeleton`. No gradient. A batch of at least
    :data:`PACKED_MIN_PIXELS` pixels (2D 2**18, 3D 2**15) is processed as words of 64 pixels
    (:mod:`~contextloss_monai.topology.packed`), a smaller one as the bool map: the same result.

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


#: replay the CUDA skeleton as a captured CUDA graph (see :func:`binary_soft_skeleton_kernel`); ``False``: eager
USE_CUDA_GRAPHS = True
_GRAPHS: OrderedDict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor] | None] = OrderedDict()
_GRAPHS_SIZE = 8
#: spatial dimensions -> from this many pixels in a batch on, the skeleton runs on words of 64 packed pixels
#: (:mod:`~contextloss_monai.topology.packed`); below it, on the bool map, whose few passes over a small 2D
#: image cost less than the packed step's few dozen operations (3D shifts along strided axes cost more, so
#: packing pays sooner). ``contextloss bench-skeleton`` times both on this machine.
PACKED_MIN_PIXELS = {2: 1 << 18, 3: 1 << 15}


def uses_packed_words(mask: torch.Tensor) -> bool:
    """Whether the binary skeleton of ``mask`` ``(B, C, *spatial)`` runs on packed words: a little-endian machine
    and at least :data:`PACKED_MIN_PIXELS` pixels for its number of spatial dimensions."""
    return packed_morphology.AVAILABLE and mask.numel() >= PACKED_MIN_PIXELS[mask.dim() - 2]


def binary_soft_skeleton_kernel(img: torch.Tensor, iters: int) -> torch.Tensor:
    """
    Kernel of :func:`binary_soft_skeleton` for a checked bool tensor ``(B, C, *spatial)`` and ``iters``.

    On a CUDA device the ``iters`` fixed steps (a few thousand small kernels, launch-bound from the host) are
    captured once per (shape, device, ``iters``, bool or packed map) as a CUDA graph and replayed: one launch per call, the
    same kernels on the same data, so the same result (tested against eager execution). The last
    ``_GRAPHS_SIZE`` shapes keep their graph (and its private memory, a few copies of the input). Set
    :data:`USE_CUDA_GRAPHS` to ``False`` to run eagerly; a capture that fails warns once per shape and falls back.
    """
    packed = uses_packed_words(img)
    if not (img.is_cuda and USE_CUDA_GRAPHS):
        return _soft_skeleton_steps(img, iters, packed)
    key = (tuple(img.shape), img.device, iters, packed)
    if key not in _GRAPHS:
        _GRAPHS[key] = _capture(img, iters, packed)
        if len(_GRAPHS) > _GRAPHS_SIZE:
            _GRAPHS.popitem(last=False)
    _GRAPHS.move_to_end(key)
    captured = _GRAPHS[key]
    if captured is None:
        return _soft_skeleton_steps(img, iters, packed)
    graph, static_in, static_out = captured
    static_in.copy_(img)
    graph.replay()
    return static_out.clone()  # the next replay overwrites static_out


def _capture(
    img: torch.Tensor, iters: int, packed: bool
) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor] | None:
    """Capture :func:`_soft_skeleton_steps` for ``img``'s shape and device (a warm-up on a side stream first, as
    CUDA graph capture requires); ``None`` with a warning when the capture fails."""
    try:
        with torch.cuda.device(img.device):
            static_in = img.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                _soft_skeleton_steps(static_in, iters, packed)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                static_out = _soft_skeleton_steps(static_in, iters, packed)
        return graph, static_in, static_out
    except RuntimeError as error:
        warnings.warn(f"CUDA graph capture of the soft skeleton failed for shape {tuple(img.shape)} ({error}); "
                      "running it eagerly (correct, slower).", stacklevel=3)
        return None


def _soft_skeleton_steps(img: torch.Tensor, iters: int, packed: bool) -> torch.Tensor:
    """The binary soft-skeleton iteration itself (eager), on the map packed 64 pixels to a word along its last
    axis (:mod:`~contextloss_monai.topology.packed`) or on the bool map: the same erosions and dilations,
    the same skeleton (tested)."""
    if packed:
        width = img.shape[-1]
        row = packed_morphology.row_bits(width, img.device)
        axes = range(2, img.dim() - 1)  # the spatial axes but the packed one
        erode = partial(packed_morphology.erode_cross_packed, row=row, axes=axes)
        dilate = partial(packed_morphology.dilate_box_packed, row=row, axes=axes)
        img = packed_morphology.pack_bits(img)
    else:
        axes = range(2, img.dim())
        erode, dilate = partial(erode_cross, axes=axes), partial(dilate_box, axes=axes)
    eroded = erode(img)  # each erosion serves twice: the opening of this step, the next step's map
    skel = img & ~dilate(eroded)
    stop_early = not img.is_cuda  # the early-exit test reads the tensor: on a GPU run every step, sync-free
    for _ in range(iters):
        if stop_early and torch.equal(eroded, img):
            break  # a map that erosion leaves unchanged adds nothing in later steps: same result
        img = eroded
        eroded = erode(img)
        skel |= img & ~dilate(eroded)
    return packed_morphology.unpack_bits(skel, width) if packed else skel


_EXACT_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_EXACT_CACHE_SIZE = 4
#: below this many voxels in all masks to thin, ``num_workers=None`` thins in this process (a pool costs more)
PARALLEL_MIN_VOXELS = 4_000_000


def _thin(mask: np.ndarray) -> np.ndarray:
    """scikit-image's thinning of the foreground's bounding box (plus a one-pixel margin: identical result) —
    in 3D the same thinning compiled with Numba (:func:`~contextloss_monai.topology.thinning.thin_3d`)."""
    from skimage.morphology import skeletonize as sk_skeletonize

    thin = thin_3d if mask.ndim == 3 else sk_skeletonize
    nonzero = [np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis))) for axis in range(mask.ndim)]
    out = np.zeros(mask.shape, dtype=bool)
    if len(nonzero[0]):
        box = tuple(slice(max(int(nz[0]) - 1, 0), int(nz[-1]) + 2) for nz in nonzero)
        out[box] = np.asarray(thin(np.ascontiguousarray(mask[box])), dtype=bool)
    return out


def _disk_path(cache_dir: str | os.PathLike, key: tuple) -> Path:
    shape, digest = key
    return Path(cache_dir) / f"{'x'.join(map(str, shape))}_{digest.hex()}.npy"


def _read_disk(cache_dir, key: tuple) -> np.ndarray | None:
    path = _disk_path(cache_dir, key)
    try:
        packed = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    size = int(np.prod(key[0]))
    if packed.dtype != np.uint8 or packed.size != (size + 7) // 8:
        return None
    return np.unpackbits(packed, count=size).astype(bool).reshape(key[0])


def _write_disk(cache_dir, key: tuple, skeleton: np.ndarray) -> None:
    try:
        with atomic_file(_disk_path(cache_dir, key)) as stream:
            np.save(stream, np.packbits(skeleton), allow_pickle=False)
    except OSError as error:  # a read-only dataset folder: go on without the cache
        warnings.warn(f"cannot write the skeleton cache {cache_dir} ({error}); skeletons are not cached on disk.", stacklevel=3)


def _remember(key: tuple, skeleton: np.ndarray) -> np.ndarray:
    skeleton.flags.writeable = False
    _EXACT_CACHE[key] = skeleton
    _EXACT_CACHE.move_to_end(key)
    if len(_EXACT_CACHE) > _EXACT_CACHE_SIZE:
        _EXACT_CACHE.popitem(last=False)
    return skeleton


def skeletonize_exact_many(
    masks: Sequence[np.ndarray],
    num_workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    on_disk: Sequence[bool] | None = None,
) -> list[np.ndarray]:
    """
    Exact skeletons (:func:`skeletonize_exact`) of several binary 2D / 3D arrays, each computed once: from the
    in-memory cache, from the disk cache, or by thinning — in ``num_workers`` processes when there is more than
    one to thin.

    Args:
        masks: binary arrays ``(H, W)`` or ``(H, W, D)``.
        num_workers: processes for the thinning; ``None``: the cores available to this process, used only
            when the masks to thin hold at least :data:`PARALLEL_MIN_VOXELS` voxels; 1: this process.
        cache_dir: folder of the disk cache (created); skeletons are stored packed, named by the mask's
            shape and content hash, written atomically — a changed mask has another name, so stale entries
            are never read. ``None``: no disk cache.
        on_disk: per mask, whether it may use the disk cache (e.g. labels, which every evaluation of a dataset
            shares, and not predictions); default: all of them.

    Returns:
        read-only ``bool`` arrays, one per mask.
    """
    masks = [np.asarray(m).astype(bool, copy=False) for m in masks]
    on_disk = [True] * len(masks) if on_disk is None else list(on_disk)
    out: list[np.ndarray | None] = [None] * len(masks)
    todo: dict[tuple, list[int]] = {}
    for i, mask in enumerate(masks):
        if not mask.any():
            out[i] = np.zeros(mask.shape, dtype=bool)
            continue
        key = content_key(mask)
        if key in _EXACT_CACHE:
            _EXACT_CACHE.move_to_end(key)
            out[i] = _EXACT_CACHE[key]
            continue
        stored = _read_disk(cache_dir, key) if cache_dir is not None and on_disk[i] else None
        if stored is not None:
            out[i] = _remember(key, stored)
            continue
        todo.setdefault(key, []).append(i)
    keys = list(todo)
    workers = num_workers if num_workers is not None else len(os.sched_getaffinity(0))
    big_enough = num_workers is not None or sum(masks[todo[k][0]].size for k in keys) >= PARALLEL_MIN_VOXELS
    if any(masks[todo[k][0]].ndim == 3 for k in keys):
        precompile()  # once, before the workers fork
    if workers > 1 and len(keys) > 1 and big_enough:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(keys)), mp_context=multiprocessing.get_context("fork")) as pool:
            thinned = list(pool.map(_thin, [masks[todo[k][0]] for k in keys]))
    else:
        thinned = [_thin(masks[todo[k][0]]) for k in keys]
    for key, skeleton in zip(keys, thinned):
        if cache_dir is not None and any(on_disk[i] for i in todo[key]):
            _write_disk(cache_dir, key, skeleton)
        skeleton = _remember(key, skeleton)
        for i in todo[key]:
            out[i] = skeleton
    return out  # type: ignore[return-value]


def skeletonize_exact(mask: np.ndarray) -> np.ndarray:
    """
    Exact skeleton of one binary 2D or 3D array: scikit-image's ``skeletonize`` (Zhang's thinning in 2D, Lee's
    method in 3D — there the same thinning compiled with Numba, :mod:`~contextloss_monai.topology.thinning`,
    voxel for voxel scikit-image 0.26's result); the result is 8- / 26-connected.

    The thinning runs on the bounding box of the foreground (plus a background margin of one pixel:
    identical result, less work on sparse tiles), and the last few results are cached by content, so
    metrics evaluated on the same tiles (clDice and AGS both need ``skel(Y)``) share one skeleton.
    :func:`skeletonize_exact_many` adds a disk cache and worker processes.

    Args:
        mask: a binary array of shape ``(H, W)`` or ``(H, W, D)``.

    Returns:
        a read-only ``bool`` array of the same shape (it may be shared through the cache).
    """
    return skeletonize_exact_many([mask], num_workers=1)[0]


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
