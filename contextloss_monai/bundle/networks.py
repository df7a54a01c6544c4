"""The paper's Algorithm 2 as a network: the fine-tuned and the pretrained model run together, so that one
sliding-window pass serves both (``contextloss_monai.transforms.SplitPaird`` splits the output again)."""

from __future__ import annotations

import torch

__all__ = ["PairedNetwork"]


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
