"""A method of the paper's tables: a fine-tuning loss, its γ and, for the ContextLoss variants, the reading of the
restricted term — the one home of what names a method and builds its loss.

The bundles (``finetune.yaml``: the stage and its model), the experiment runner (model files, evaluation
folders, table rows) and the nnU-Net trainers all take a method from here. One naming rule serves the run key
(model file, stage, evaluation folder) and the table label alike: the loss, then γ (``dice_ce`` has none),
then the reading of the restricted term only where it is not the default reading :data:`DEFAULT_RESTRICTED`
(``hadamard``)::

    Method("context", 0.2)               key context_g0.2             label "CLoss (γ = 0.2)"
    Method("context", 0.2, "mask_mean")  key context_g0.2_mask_mean   label "CLoss (γ = 0.2), mask_mean reading"
    Method("dice_ce")                    key dice_ce                  label "Dice & CE"
    Method(None)                         key pretrained               label "nnU-Net-style pretraining only"

Run folders named by the earlier rule (a ContextLoss key named its reading unless it was ``mask_mean``) are
renamed by :func:`contextloss_monai.experiment.migrate_run` (``contextloss migrate-run``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contextloss_monai.checks import check_option, check_unit_interval
from contextloss_monai.layout import RunLayout
from contextloss_monai.losses.context_loss import DEFAULT_RESTRICTED, RESTRICTED_READINGS

__all__ = ["ALTERNATIVE_LOSS_NAMES", "CONTEXT_LOSS_NAMES", "DEFAULT_RESTRICTED", "LOSS_NAMES", "Method", "RESTRICTED_READINGS"]

#: loss name → what the paper's tables call the method
LOSS_NAMES = {
    "dice_ce": "Dice & CE",
    "cldice": "clDice",
    "compound_cldice": "Compound clDice",
    "context": "CLoss",
    "context_dice": "CLoss (Dice)",
    "thin_context": "Thin CLoss",
    "skeleton_recall": "Skeleton Recall",
    "cbdice": "cbDice",
}
#: the losses a user would pick instead of CLoss today (not in the paper's tables): the reports compare them with CLoss too
ALTERNATIVE_LOSS_NAMES = ("skeleton_recall", "cbdice")
#: the names that build a :class:`~contextloss_monai.losses.ContextLoss` (the ones with a restricted term and its reading)
CONTEXT_LOSS_NAMES = ("context", "context_dice", "thin_context")
_KEY = re.compile(r"^(?P<loss>[a-z_]+?)_g(?P<gamma>[0-9.e+-]+?)(?:_(?P<reading>" + "|".join(RESTRICTED_READINGS) + "))?$")


@dataclass(frozen=True)
class Method:
    """One row of the paper's tables.

    Args:
        loss_name: the fine-tuning loss, one of :data:`LOSS_NAMES`; ``None``: pretraining only.
        gamma: weight of the topology term in ``[0, 1]`` (``dice_ce`` has none: read as 0; Skeleton Recall's
            term is added to Dice & CE with this weight, its authors' default 1; so is cbDice's, whose authors also
            weigh cross-entropy ``1 + γ``).
        restricted: for the ContextLoss variants, the reading of the restricted term, one of
            :data:`RESTRICTED_READINGS`; the other losses have none (read as the default).

    Raises:
        ValueError: naming ``loss_name``, ``gamma`` or ``restricted`` when one is not a value above.
    """

    loss_name: str | None
    gamma: float = 0.2
    restricted: str = DEFAULT_RESTRICTED

    def __post_init__(self) -> None:
        if self.loss_name is not None:
            check_option(self.loss_name, LOSS_NAMES, "loss_name")
        check_option(self.restricted, RESTRICTED_READINGS, "restricted")
        gamma = float(check_unit_interval(self.gamma, "gamma"))
        # what a method does not use does not tell two methods apart
        object.__setattr__(self, "gamma", 0.0 if self.loss_name in (None, "dice_ce") else gamma)
        if self.loss_name not in CONTEXT_LOSS_NAMES:
            object.__setattr__(self, "restricted", DEFAULT_RESTRICTED)

    @property
    def names_reading(self) -> bool:
        """Whether the key and the label name the reading (a ContextLoss variant not read the default way)."""
        return self.loss_name in CONTEXT_LOSS_NAMES and self.restricted != DEFAULT_RESTRICTED

    @property
    def key(self) -> str:
        """The method's name in the run layout: ``pretrained``, ``dice_ce``, ``<loss>_g<γ>[_<reading>]``."""
        if self.loss_name is None:
            return RunLayout.PRETRAINED_KEY
        if self.loss_name == "dice_ce":
            return "dice_ce"
        key = f"{self.loss_name}_g{self.gamma:g}"
        return f"{key}_{self.restricted}" if self.names_reading else key

    @property
    def label(self) -> str:
        """The method's row name in the tables, e.g. ``CLoss (γ = 0.2)``."""
        if self.loss_name is None:
            return "nnU-Net-style pretraining only"
        name = LOSS_NAMES[self.loss_name]
        name = name if self.loss_name == "dice_ce" else f"{name} (γ = {self.gamma:g})"
        return f"{name}, {self.restricted} reading" if self.names_reading else name

    @property
    def stage(self) -> str:
        """The training stage that produces the method's model (``pretrain``, ``finetune_<key>``)."""
        return RunLayout.stage_of(self.key)

    @classmethod
    def from_key(cls, key: str) -> "Method":
        """The method a run key names (the inverse of :attr:`key`).

        Raises:
            ValueError: naming ``key`` when it is not a method's key.
        """
        if key == RunLayout.PRETRAINED_KEY:
            return cls(None)
        if key == "dice_ce":
            return cls("dice_ce")
        match = _KEY.match(key)
        if match is None or match["loss"] not in LOSS_NAMES or match["loss"] == "dice_ce":
            raise ValueError(f"key {key!r} names no method: expected 'pretrained', 'dice_ce' or '<loss>_g<gamma>[_<reading>]' "
                             f"with a loss of {sorted(LOSS_NAMES)}.")
        method = cls(match["loss"], float(match["gamma"]), match["reading"] or DEFAULT_RESTRICTED)
        if method.key != key:
            raise ValueError(f"key {key!r} is not how a method is named; the method it reads as is named {method.key!r}.")
        return method

    def build_loss(self, **options):
        """The method's loss (:func:`contextloss_monai.bundle.build_loss` with this loss name, γ and reading);
        ``options`` are that function's other arguments (``alpha``, ``iters``, ``skeleton``, ``deep_supervision``).

        Raises:
            ValueError: for pretraining only, which fine-tunes with no loss.
        """
        from contextloss_monai.bundle.losses import build_loss

        if self.loss_name is None:
            raise ValueError("loss_name is None (pretraining only): that method fine-tunes with no loss.")
        return build_loss(self.loss_name, gamma=self.gamma, restricted=self.restricted, **options)
