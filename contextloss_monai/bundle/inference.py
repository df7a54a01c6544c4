"""The paper's Algorithm 2 as bundle parts: run the fine-tuned and the pretrained model together,
then split their outputs for ``TopologicalPostProcessd``."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["PairedNetwork", "SplitPaird"]


class PairedNetwork(torch.nn.Module):
    """Two networks on the same input, outputs concatenated on the channel axis: ``(B, 2C, *spatial)``
    with the fine-tuned model's ``C`` channels first. One sliding-window pass then serves both models.

    Args:
        finetuned: the fine-tuned network.
        pretrained: the pretrained network (same output channels).
    """

    def __init__(self, finetuned: torch.nn.Module, pretrained: torch.nn.Module) -> None:
        super().__init__()
        self.finetuned, self.pretrained = finetuned, pretrained

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.finetuned(x), self.pretrained(x)], dim=1)


class SplitPaird(MapTransform):
    """Split a channel-first ``PairedNetwork`` output under ``keys`` into its two halves: the first half
    stays under the key, the second goes to ``pretrained_key``.

    Args:
        keys: the prediction key(s).
        pretrained_key: where the pretrained model's half goes (one key; with several ``keys``,
            ``<key>_pretrained``).

    Raises:
        ValueError: when the channel count is odd.
    """

    def __init__(self, keys: KeysCollection, pretrained_key: str = "pred_pretrained", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.pretrained_key = pretrained_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        for key in keys:
            channels = d[key].shape[0]
            if channels % 2:
                raise ValueError(f"{key} must have an even number of channels (fine-tuned + pretrained), got {channels}.")
            target = self.pretrained_key if len(keys) == 1 else f"{key}_pretrained"
            d[key], d[target] = d[key][: channels // 2], d[key][channels // 2 :]
        return d
