"""Splitting a ``PairedNetwork`` output (fine-tuned and pretrained model on one input) into its two halves,
for the paper's Algorithm 2."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform

__all__ = ["SplitPair", "SplitPaird"]


class SplitPair(Transform):
    """Split a channel-first image ``(2C, *spatial)`` into its first and second ``C`` channels.

    Raises:
        ValueError: when the channel count is odd.

    Example:
        >>> first, second = SplitPair()(torch.zeros(4, 8, 8))
        >>> first.shape, second.shape
        (torch.Size([2, 8, 8]), torch.Size([2, 8, 8]))
    """

    def __call__(self, img: NdarrayOrTensor, name: str = "img") -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        channels = img.shape[0]
        if channels % 2:
            raise ValueError(f"{name} must have an even number of channels (fine-tuned + pretrained), got {channels}.")
        return img[: channels // 2], img[channels // 2 :]


class SplitPaird(MapTransform):
    """Dictionary version of :class:`SplitPair`: the first half stays under the key, the second goes to
    ``pretrained_key``.

    Args:
        keys: the prediction key(s).
        pretrained_key: where the pretrained model's half goes (one key; with several ``keys``,
            ``<key>_pretrained``).
    """

    def __init__(self, keys: KeysCollection, pretrained_key: str = "pred_pretrained", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.pretrained_key = pretrained_key
        self.splitter = SplitPair()

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        for key in keys:
            target = self.pretrained_key if len(keys) == 1 else f"{key}_pretrained"
            d[key], d[target] = self.splitter(d[key], name=str(key))
        return d
