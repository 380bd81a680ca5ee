"""Architectures by name and the loading of shipped models: an explicit table, no scanning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ._spec import ModelLoadError, ModelSpec, file_sha256, model_dir, read_spec
from .dfcan import DFCAN
from .focusnet import FocusNet
from .interp import InterpNet
from .mfsr import MFSRNet
from .unet import RefocusUNet

__all__ = ["ARCHITECTURES", "build_network", "load_network", "register_architecture"]

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "dfcan": DFCAN,
    "refocus-unet": RefocusUNet,
    "focusnet": FocusNet,
    "interp": InterpNet,
    "mfsr": MFSRNet,
}


def register_architecture(name: str, builder: Callable[..., nn.Module]) -> None:
    """Add an architecture; a name that is taken is refused."""
    if name in ARCHITECTURES:
        raise ValueError(f"an architecture named {name!r} is already registered")
    ARCHITECTURES[name] = builder


def build_network(architecture: str, arguments: dict[str, Any]) -> nn.Module:
    """An untrained network; ValueError naming a wrong architecture or argument."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        )
    try:
        return ARCHITECTURES[architecture](**arguments)
    except TypeError as error:
        raise ValueError(f"wrong arguments {arguments} for {architecture}: {error}") from error


def load_network(name_or_path: str | Path) -> tuple[ModelSpec, nn.Module, Path]:
    """The trained network of a model (eval mode, CPU), its spec and its folder.

    The weights file is hashed and compared with model.yaml before it is parsed, read with
    safetensors (no pickle), and must hold exactly the architecture's tensors and shapes.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = model_dir(name_or_path)
    spec = read_spec(folder)
    weights = folder / spec.weights_file
    if not weights.is_file():
        raise ModelLoadError(f"{weights} is missing: the model {spec.name!r} has no weights")
    if spec.weights_sha256 and file_sha256(weights) != spec.weights_sha256:
        raise ModelLoadError(
            f"{weights} does not match the sha256 in model.yaml: the file is corrupt or was "
            "replaced; re-install it or retrain with `live-restore train`"
        )
    network = build_network(spec.architecture, spec.arguments)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelLoadError(f"{weights} is not a readable safetensors file: {error}") from error
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong_shape:
        raise ModelLoadError(
            f"{weights} does not fit the architecture {spec.architecture} {spec.arguments}: "
            f"{len(missing)} tensors missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:2]}), {len(wrong_shape)} of the wrong shape "
            f"(e.g. {wrong_shape[:2]})"
        )
    network.load_state_dict(state)
    network.eval()
    return spec, network, folder
