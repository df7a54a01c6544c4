"""How nnU-Net finds this package's trainers by their ``-tr`` names.

nnU-Net v2 looks a trainer up by name in its own ``nnunetv2/training/nnUNetTrainer`` tree and then in the
folders of the ``nnUNet_extTrainer`` variable. Its own tree includes the Primus trainers, which import
``timm`` and through it ``torchvision``: in an environment without them (this project keeps torchvision out)
any name that is not in ``nnUNetTrainer.py`` fails there before the external folders are searched. So the
plug-in's entry points (``contextloss nnunet train|predict``) look names up here — this
package's trainers, then every folder of ``nnUNet_extTrainer``, then nnU-Net's tree skipping the modules whose
optional dependencies are missing — and run nnU-Net's own ``nnUNetv2_train`` / ``nnUNetv2_predict`` with
that lookup; ``train`` also loads ``-pretrained_weights`` as data only
(:mod:`contextloss_monai.nnunet.pretrained`). nnU-Net's installed files are not edited. Where torchvision and timm are installed, ``nnUNet_extTrainer=$(python -m
contextloss_monai.nnunet trainer-path)`` with nnU-Net's own commands works as well.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

from contextloss_monai.checks import check_option

__all__ = ["find_trainer_class", "nnunet_finds_our_trainers", "run_nnunet_command"]

#: the nnU-Net modules that bind the trainer lookup by name (``from ... import``), patched together
_LOOKUP_USERS = ("nnunetv2.run.run_training", "nnunetv2.inference.predict_from_raw_data")


def _find_in_nnunet(name: str) -> type | None:
    """nnU-Net's own trainer tree searched like nnU-Net does, except that a module that cannot be imported for a
    missing optional dependency (the Primus trainers without timm) is skipped instead of ending the search."""
    import importlib
    import pkgutil

    import nnunetv2.training.nnUNetTrainer as root

    for info in pkgutil.walk_packages(root.__path__, prefix=root.__name__ + ".", onerror=lambda _: None):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # ModuleNotFoundError included: an optional dependency of that module is missing
            continue
        if isinstance(getattr(module, name, None), type):
            return getattr(module, name)
    return None


def find_trainer_class(name: str) -> type:
    """The trainer class called ``name``: this package's, then one from a folder of ``nnUNet_extTrainer``, then
    one of nnU-Net's (its own variants such as ``nnUNetTrainer_5epochs`` included).

    Raises:
        RuntimeError: when no trainer has that name.
    """
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    from contextloss_monai.nnunet.trainers import TRAINERS

    if name in TRAINERS:
        return TRAINERS[name]
    folders = [f for f in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if f]
    for folder in folders:
        if os.path.isdir(folder):
            found = recursive_find_python_class(folder, name, None, base_folder=folder)
            if found is not None:
                return found
    found = _find_in_nnunet(name)
    if found is None:
        raise RuntimeError(
            f"no nnU-Net trainer is called {name!r}: not one of contextloss_monai.nnunet's ({', '.join(TRAINERS)}), "
            f"nor in the nnUNet_extTrainer folders {folders}, nor in nnU-Net's trainers."
        )
    return found


@contextmanager
def _replaced(modules: list[str], attribute: str, value: object) -> Iterator[None]:
    """Within the block, ``attribute`` of each module in ``modules`` is ``value``; the originals come back after."""
    import importlib

    loaded = [importlib.import_module(m) for m in modules]
    originals = [getattr(m, attribute) for m in loaded]
    try:
        for module in loaded:
            setattr(module, attribute, value)
        yield
    finally:
        for module, original in zip(loaded, originals):
            setattr(module, attribute, original)


def nnunet_finds_our_trainers():
    """Within the block, nnU-Net's training and prediction look trainer names up with :func:`find_trainer_class`."""
    return _replaced(list(_LOOKUP_USERS), "recursive_find_trainer_class_by_name", find_trainer_class)


def _pretrained_weights_as_data():
    """Within the block, ``nnUNetv2_train -pretrained_weights`` loads the checkpoint as data
    (:func:`contextloss_monai.nnunet.pretrained.load_pretrained_weights`), not with nnU-Net's unpickling loader."""
    from contextloss_monai.nnunet.pretrained import load_pretrained_weights

    return _replaced(["nnunetv2.run.run_training"], "load_pretrained_weights", load_pretrained_weights)


def run_nnunet_command(command: str, args: list[str]) -> int:
    """Run nnU-Net's ``nnUNetv2_train`` (``command="train"``) or ``nnUNetv2_predict`` (``"predict"``) with ``args``
    as on its command line, finding this package's trainers."""
    if check_option(command, ("train", "predict"), "command") == "train":
        from nnunetv2.run.run_training import run_training_entry as entry
    else:
        from nnunetv2.inference.predict_from_raw_data import predict_entry_point as entry
    argv = sys.argv
    sys.argv = [f"nnUNetv2_{command}", *args]
    try:
        with nnunet_finds_our_trainers(), _pretrained_weights_as_data():
            entry()
    finally:
        sys.argv = argv
    return 0

