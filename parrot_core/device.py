"""The torch device a training command runs on (`--device auto|cpu|cuda[:N]`), shared by
`parrot train-prior` and `parrot train-rl`."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A --device that this machine cannot provide."""


def pick_device(name: str) -> torch.device:
    """`auto` -> CUDA when present, else CPU; an explicit CUDA device without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)
