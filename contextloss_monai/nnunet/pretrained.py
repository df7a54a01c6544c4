"""Loading ``-pretrained_weights`` of ``nnUNetv2_train`` as data only.

nnU-Net's own loader unpickles the checkpoint with ``weights_only=False``: a crafted ``.pth`` runs code when it
is loaded. The plug-in's ``train`` entry (``contextloss nnunet train ... -pretrained_weights
FILE``) loads it with :func:`load_pretrained_weights` instead: ``torch.load(weights_only=True)`` (tensors,
containers and the NumPy scalars nnU-Net's training log holds), then the same transfer as nnU-Net's — every
parameter but the segmentation heads (``.seg_layers.``) must be present with the network's shape.
"""

from __future__ import annotations

import os

import numpy as np
import torch

__all__ = ["load_pretrained_weights"]

#: parameters that are not transferred (the final 1x1 convolutions, whose classes may differ), as in nnU-Net
SKIPPED_PARAMETERS = (".seg_layers.",)


def _numpy_globals() -> list:
    """The NumPy types an nnU-Net checkpoint's ``logging`` entry pickles (scalars of float / int dtypes)."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # NumPy 1
        from numpy.core.multiarray import scalar
    dtypes = [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    return [scalar, np.dtype, *dtypes]


def load_pretrained_weights(network: torch.nn.Module, fname: str | os.PathLike, verbose: bool = False) -> None:
    """Load the ``network_weights`` of the nnU-Net checkpoint ``fname`` into ``network`` without unpickling code.

    Args:
        network: nnU-Net's network (``DistributedDataParallel`` and ``torch.compile`` wrappers are unwrapped).
        fname: the checkpoint (``checkpoint_final.pth`` of a pretraining).
        verbose: print the transferred parameters.

    Raises:
        ValueError: naming the file, when it is not a readable checkpoint, holds anything but data, has no
            ``network_weights``, or lacks a parameter or has one of another shape.
    """
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            checkpoint = torch.load(fname, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - empty, text, truncated or code-carrying files alike: name the file
        raise ValueError(
            f"-pretrained_weights {fname} is not a checkpoint that loads as data ({type(error).__name__}: "
            f"{str(error)[:300]}); only nnU-Net checkpoints of tensors and plain values are accepted."
        ) from error
    weights = checkpoint.get("network_weights") if isinstance(checkpoint, dict) else None
    if not isinstance(weights, dict):
        raise ValueError(f"-pretrained_weights {fname} has no 'network_weights': is it an nnU-Net checkpoint?")
    module = network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network
    module = getattr(module, "_orig_mod", module)  # torch.compile
    own = module.state_dict()
    for key, value in own.items():
        if any(skip in key for skip in SKIPPED_PARAMETERS):
            continue
        if key not in weights:
            raise ValueError(f"-pretrained_weights {fname} lacks the parameter {key}: it does not fit this network.")
        if tuple(weights[key].shape) != tuple(value.shape):
            raise ValueError(
                f"-pretrained_weights {fname}: {key} has shape {tuple(weights[key].shape)}, the network "
                f"{tuple(value.shape)}: it does not fit this network."
            )
    transferred = {k: v for k, v in weights.items() if k in own and not any(skip in k for skip in SKIPPED_PARAMETERS)}
    own.update(transferred)
    module.load_state_dict(own)
    print(f"loaded pretrained weights (as data) from {fname}: {len(transferred)} of {len(own)} parameters")
    if verbose:
        for key, value in transferred.items():
            print(key, "shape", tuple(value.shape))
