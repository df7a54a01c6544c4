"""The critical pixel mask of ContextLoss (Schacht et al., ICIP 2025, Sec. 2.1 and Fig. 3)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from monai.config import NdarrayOrTensor

from contextloss_monai.checks import (
    as_bool_tensor,
    check_batched_spatial,
    check_binary,
    check_option,
    check_positive_int,
    check_same_shape,
    check_spacing,
)
from contextloss_monai.topology.distance import closer_to_error, has_cucim, squared_distances_per_image
from contextloss_monai.topology.skeleton import SKELETON_METHODS, skeleton_kernel
from contextloss_monai.utils import to_numpy

__all__ = ["batched_error_context", "critical_mask_kernel", "critical_pixel_mask", "error_context"]


def error_context(
    error: torch.Tensor, correct: torch.Tensor, region: torch.Tensor, spacing: Sequence[float] | None = None
) -> torch.Tensor:
    """
    Context extraction of one error type: the pixels of ``region`` that lie closer to the error
    skeleton than to the correctly predicted skeleton, ``(d_E < d_C) ∧ region``, per sample and channel.

    A channel without error pixels gives an empty mask; one without correct skeleton (``d_C = ∞``)
    gives the whole region.

    On a CUDA device with cuCIM (the ``gpu`` extra) the whole batch is decided on the GPU in one distance
    transform per set, without a host synchronisation (:func:`batched_error_context`). Elsewhere each
    (sample, channel) with an error runs :func:`~contextloss_monai.topology.distance.closer_to_error` on
    the host (on CUDA without cuCIM that copies to the host: install cuCIM for a sync-free loss).

    Args:
        error: the skeleton at the topological errors ``E``, bool ``(B, C, *spatial)``.
        correct: the correctly predicted skeleton ``C``, bool, same shape.
        region: the mask the context is cropped to (the label for missed connections, the prediction
            for false-positive connections), bool, same shape.
        spacing: voxel size per spatial axis for an anisotropic distance, or ``None``.

    Returns:
        a bool tensor of the same shape and device.
    """
    if error.is_cuda and has_cucim:
        return batched_error_context(error, correct, region, spacing, squared_distances_per_image)
    out = torch.zeros_like(region)
    has_error = error.flatten(2).any(-1)
    has_correct = correct.flatten(2).any(-1)
    for b, c in has_error.nonzero().tolist():
        if not has_correct[b, c]:
            out[b, c] = region[b, c]
            continue
        mask = closer_to_error(*(to_numpy(t[b, c]) for t in (error, correct, region)), spacing=spacing)
        out[b, c] = torch.from_numpy(mask).to(out.device)
    return out


def batched_error_context(
    error: torch.Tensor,
    correct: torch.Tensor,
    region: torch.Tensor,
    spacing: Sequence[float] | None,
    squared_distances: Callable[[torch.Tensor, Sequence[float]], torch.Tensor],
) -> torch.Tensor:
    """
    :func:`error_context` for the whole batch with no data-dependent branch (no host synchronisation on a
    GPU): the distances of every image are computed, then the images without an error are masked out and
    those without a correct skeleton get ``d_C = ∞`` (their whole region) by tensor operations.

    Args:
        error, correct, region: bool tensors ``(B, C, *spatial)`` as for :func:`error_context`.
        spacing: voxel size per spatial axis, or ``None``.
        squared_distances: squared exact Euclidean distance to the ``True`` pixels of each image of a stack
            ``(N, *spatial)``, with a voxel size per spatial axis (cuCIM on the GPU:
            :func:`~contextloss_monai.topology.distance.squared_distances_per_image`; any exact transform on
            the host). Its values for an image without ``True`` pixels are not used.

    Returns:
        a bool tensor of the same shape and device.
    """
    spatial = tuple(error.shape[2:])
    spacing = tuple(float(s) for s in spacing) if spacing is not None else (1.0,) * len(spatial)
    flat_error, flat_correct, flat_region = (t.reshape(-1, *spatial) for t in (error, correct, region))
    per_image = (-1,) + (1,) * len(spatial)
    has_error = flat_error.flatten(1).any(1).reshape(per_image)
    has_correct = flat_correct.flatten(1).any(1).reshape(per_image)
    d_error = squared_distances(flat_error, spacing)
    d_correct = torch.where(has_correct, squared_distances(flat_correct, spacing), math.inf)
    return (has_error & (d_error < d_correct) & flat_region).reshape(error.shape)


def critical_pixel_mask(
    pred: NdarrayOrTensor,
    label: NdarrayOrTensor,
    *,
    skeleton: str = "soft",
    iters: int = 50,
    context: bool = True,
    spacing: float | Sequence[float] | None = None,
    return_parts: bool = False,
) -> NdarrayOrTensor | tuple[NdarrayOrTensor, NdarrayOrTensor]:
    """
    The critical pixel mask ``M`` of ContextLoss: the whole context of every topological error.

    Per sample and channel, with ``P`` the binarized prediction and ``Y`` the binary label:

    * missed connections — ``S = skel(Y)`` is split by the prediction into the error skeleton
      ``E = S ∧ ¬P`` and the correct skeleton ``C = S ∧ P``; the pixels closer to ``E`` than to ``C``
      (exact Euclidean distances ``d_E < d_C``, ``d_C = ∞`` when ``C`` is empty) are kept and
      cropped to the label: ``M_fn = (d_E < d_C) ∧ Y`` (empty when ``E`` is empty);
    * false-positive connections — the same with ``Y`` and ``P`` swapped:
      ``E' = skel(P) ∧ ¬Y``, ``C' = skel(P) ∧ Y``, ``M_fp = (d_E' < d_C') ∧ P``;
    * ``M = M_fn ∨ M_fp``.

    With ``context=False`` the distance competition is skipped and ``M = E ∨ E'``, the error skeleton
    alone ("Thin CLoss", the paper's Table 4 ablation). Nothing here needs or keeps gradients.

    Args:
        pred: binarized prediction, shape ``(B, C, H, W)`` or ``(B, C, H, W, D)``, values 0/1 (tensor on
            any device, or ndarray).
        label: binary label of the same shape.
        skeleton: ``"soft"`` (clDice's soft skeleton of the binary maps, the paper's choice) or
            ``"exact"`` (scikit-image ``skeletonize``).
        iters: soft-skeleton iterations (the paper uses 50).
        context: ``False`` gives the Thin CLoss mask (error skeleton only).
        spacing: voxel size, one number or one per spatial axis; makes the distances anisotropic.
        return_parts: return the two parts ``(M_fn, M_fp)`` (missed and false-positive connections)
            instead of their union.

    Returns:
        the mask ``M`` (or ``(M_fn, M_fp)``), bool, same shape and type as ``pred`` (on the same device for
        tensors).

    Raises:
        ValueError: shape mismatch, not 4D/5D, non-binary input, unknown ``skeleton``,
            non-positive ``iters`` or ``spacing``.

    Example:
        >>> label = torch.zeros(1, 1, 9, 40); label[..., 3:6, :] = 1     # a horizontal line
        >>> pred = label.clone(); pred[..., 18:22] = 0                   # ... predicted with a gap
        >>> m = critical_pixel_mask(pred, label)
        >>> m[0, 0].nonzero()[:, 1].unique().tolist()                   # the gap's columns
        [18, 19, 20, 21]
    """
    check_same_shape(pred, label, "pred", "label")
    spatial_dims = check_batched_spatial(pred, "pred")
    check_binary(pred, "pred")
    check_binary(label, "label")
    check_option(skeleton, SKELETON_METHODS, "skeleton")
    iters = check_positive_int(iters, "iters")
    spacing = check_spacing(spacing, spatial_dims)
    p = as_bool_tensor(pred)
    parts = critical_mask_kernel(p, as_bool_tensor(label, device=p.device), skeleton, iters, context, spacing, return_parts=True)
    if not isinstance(pred, torch.Tensor):
        parts = tuple(to_numpy(part) for part in parts)
    return parts if return_parts else parts[0] | parts[1]


def critical_mask_kernel(
    pred: torch.Tensor,
    label: torch.Tensor,
    skeleton: str,
    iters: int,
    context: bool,
    spacing: tuple[float, ...] | None,
    return_parts: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Kernel of :func:`critical_pixel_mask` for checked arguments: bool tensors ``(B, C, *spatial)`` on one
    device, a known ``skeleton``, positive ``iters``, a normalised ``spacing``. Callers check; this trusts
    them (``ContextLoss`` checks its target once per call and calls this directly)."""
    with torch.no_grad():
        # label and prediction in one batch (missed connections first, false positives second): one skeleton
        # pass and one context extraction for both error types, half the kernel launches on a GPU
        regions = torch.cat([label, pred])
        skel_label, skel_pred = skeleton_kernel(regions, skeleton, iters).chunk(2)
        errors = torch.cat([skel_label & ~pred, skel_pred & ~label])
        if context:
            errors = error_context(errors, torch.cat([skel_label & pred, skel_pred & label]), regions, spacing)
        parts = errors.chunk(2)
    return parts if return_parts else parts[0] | parts[1]
