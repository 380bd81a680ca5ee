"""Checkpoints as safetensors only: network weights, Adam's moments, and a JSON header.

Resuming needs the optimizer's state; torch's own ``optimizer.state_dict()`` is pickled, so it
is flattened to named tensors here (``adam.<param index>.<exp_avg|exp_avg_sq|step>``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["load_checkpoint", "save_checkpoint"]


def save_checkpoint(
    path: Path,
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    info: dict[str, Any],
    loss: nn.Module | None = None,
) -> None:
    """Write a checkpoint atomically (a crash mid-write leaves the previous one intact).

    ``loss``: a loss with learned parameters of its own (the SIM physics prior's PSF).
    """
    from safetensors.torch import save_file

    tensors = {f"net.{k}": v.detach().contiguous() for k, v in network.state_dict().items()}
    if loss is not None:
        tensors |= {f"loss.{k}": v.detach().contiguous() for k, v in loss.state_dict().items()}
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    for index, parameter in enumerate(parameters):
        for key, value in optimizer.state.get(parameter, {}).items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"adam.{index}.{key}"] = value.detach().contiguous()
    partial = path.with_suffix(".partial")
    save_file(tensors, str(partial), metadata={"info": json.dumps(info)})
    partial.replace(path)


def load_checkpoint(
    path: Path,
    network: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    loss: nn.Module | None = None,
) -> dict[str, Any]:
    """Restore a checkpoint into ``network`` (and ``optimizer``); return its info header."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as handle:
        info: dict[str, Any] = json.loads((handle.metadata() or {}).get("info", "{}"))
    network.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    if loss is not None:
        loss.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("loss.")})
    if optimizer is not None:
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        for key, value in tensors.items():
            if key.startswith("adam."):
                _, index, name = key.split(".", 2)
                optimizer.state[parameters[int(index)]][name] = value
    return info
