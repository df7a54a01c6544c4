"""The topological post-processing of ContextLoss (paper Alg. 2): keep the structures of the fine-tuned
prediction that the pretrained prediction already has."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type

from contextloss_monai.checks import as_bool_array, check_connectivity
from contextloss_monai.topology.components import label_components

__all__ = ["TopologicalPostProcess", "TopologicalPostProcessd", "keep_components_overlapping"]


def keep_components_overlapping(finetuned: np.ndarray, pretrained: np.ndarray, connectivity: int | None = None) -> np.ndarray:
    """
    The connected components of one binary 2D or 3D mask ``finetuned`` that share at least one pixel with
    ``pretrained``.

    Args:
        finetuned: bool array ``(H, W)`` or ``(H, W, D)``.
        pretrained: bool array of the same shape.
        connectivity: 8 / 26 (default) or 4 / 6.

    Returns:
        a bool array, a subset of ``finetuned``.
    """
    connectivity = check_connectivity(connectivity, finetuned.ndim)
    labels, _ = label_components(finetuned, connectivity)
    kept = np.unique(labels[pretrained & finetuned])
    return np.isin(labels, kept[kept > 0])


class TopologicalPostProcess(Transform):
    """
    Keep each connected component of the fine-tuned binary prediction that overlaps the pretrained binary
    prediction, per channel (paper Alg. 2). Fine-tuning with ContextLoss closes gaps but can also add new
    isolated blobs; a component that bridges two pretrained structures overlaps them and stays, a blob the
    pretrained model never predicted is dropped. No pixel is ever added.

    Args:
        connectivity: foreground connectivity, 8 (2D) / 26 (3D) by default, or 4 / 6.
        spatial_dims: number of spatial axes. ``None`` reads the input as channel-first ``(C, *spatial)``, like
            MONAI's post transforms; with a value, every leading axis (e.g. ``(B, C, *spatial)``) is looped over.

    Example:
        >>> post = TopologicalPostProcess()
        >>> cleaned = post(finetuned_pred, pretrained_pred)   # (C, H, W[, D]), binary
    """

    backend = [torch.Tensor, np.ndarray]

    def __init__(self, connectivity: int | None = None, spatial_dims: int | None = None) -> None:
        if spatial_dims is not None and spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2, 3 or None, got {spatial_dims!r}.")
        if connectivity is not None and connectivity not in (4, 8, 6, 26):
            raise ValueError(f"connectivity must be 4 or 8 (2D), 6 or 26 (3D), or None, got {connectivity!r}.")
        self.connectivity = connectivity
        self.spatial_dims = spatial_dims

    def __call__(self, finetuned, pretrained):
        """
        Args:
            finetuned: binarized prediction of the fine-tuned model, ``(C, H, W[, D])`` (or with the leading
                axes set by ``spatial_dims``), array or tensor.
            pretrained: binarized prediction of the pretrained model, same shape.

        Returns:
            the post-processed prediction, same shape, type and dtype as ``finetuned``.

        Raises:
            ValueError: mismatched shapes, wrong dimensionality, non-binary input, unsupported connectivity.
        """
        if tuple(finetuned.shape) != tuple(pretrained.shape):
            raise ValueError(
                f"finetuned and pretrained must have the same shape, got {tuple(finetuned.shape)} and "
                f"{tuple(pretrained.shape)}."
            )
        spatial_dims = self.spatial_dims if self.spatial_dims is not None else finetuned.ndim - 1
        if spatial_dims not in (2, 3) or finetuned.ndim <= spatial_dims:
            raise ValueError(
                f"finetuned must be channel-first (C, H, W) or (C, H, W, D) (or have leading axes with spatial_dims), "
                f"got shape {tuple(finetuned.shape)}."
            )
        fine = as_bool_array(finetuned, "finetuned")
        pre = as_bool_array(pretrained, "pretrained")
        spatial = fine.shape[-spatial_dims:]
        flat_fine, flat_pre = fine.reshape(-1, *spatial), pre.reshape(-1, *spatial)
        kept = [keep_components_overlapping(f, p, self.connectivity) for f, p in zip(flat_fine, flat_pre)]
        out = np.stack(kept).reshape(fine.shape) if kept else np.zeros(fine.shape, dtype=bool)  # e.g. a batch of 0
        dtype = finetuned.dtype
        return convert_to_dst_type(out, finetuned, dtype=dtype)[0]


class TopologicalPostProcessd(MapTransform):
    """
    Dictionary version of :class:`TopologicalPostProcess`: replaces each of ``keys`` (fine-tuned predictions)
    by its components that overlap ``data[pretrained_key]``.

    Args:
        keys: keys of the fine-tuned binarized predictions.
        pretrained_key: key of the pretrained binarized prediction.
        connectivity: 8 / 26 (default) or 4 / 6.
        spatial_dims: see :class:`TopologicalPostProcess`.
        allow_missing_keys: don't raise for missing ``keys``.

    Raises:
        KeyError: when ``pretrained_key`` is not in the data.
    """

    backend = TopologicalPostProcess.backend

    def __init__(
        self,
        keys: KeysCollection,
        pretrained_key: str,
        connectivity: int | None = None,
        spatial_dims: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.pretrained_key = pretrained_key
        self.post = TopologicalPostProcess(connectivity, spatial_dims)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.pretrained_key not in d:
            raise KeyError(f"pretrained_key {self.pretrained_key!r} is not in the data (keys: {list(d)}).")
        for key in self.key_iterator(d):
            d[key] = self.post(d[key], d[self.pretrained_key])
        return d
