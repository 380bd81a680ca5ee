"""ONNX export of the models, in the form engines can run.

DFCAN's attention is exported with its sampled-DFT spectrum (MatMul and element-wise ops only;
see ``models/_fourier.py``), so the graph needs no ONNX ``DFT``. The DFT matrices are built for
the example's size: an exported DFCAN runs at that input size (the tile size of its session).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from live_restore.models.dfcan import FourierChannelAttention

__all__ = ["export_onnx"]

OPSET = 17
# what the exporter writes for the same weights changed (2: DFCAN's attention folds the input
# where the spectrum's size divides it); cached graphs of another revision are rebuilt
EXPORT_REVISION = 2


def export_onnx(network: nn.Module, path: Path, example_shape: tuple[int, ...]) -> Path:
    """Write ``network`` as ONNX to ``path`` for inputs of ``example_shape`` (N, C, H, W)."""
    network = network.eval()
    _spectrum_method(network, "dft")
    example = torch.rand(*example_shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            # tracing warns that shapes become constants (intended: the graph is per size) and
            # that the TorchScript exporter is deprecated (the dynamo one needs onnxscript and
            # emits ONNX DFT for the FFT)
            warnings.simplefilter("ignore")
            torch.onnx.export(
                network,
                (example,),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
    finally:
        _spectrum_method(network, "fft")
    return path


def _spectrum_method(network: nn.Module, method: str) -> None:
    """Every Fourier channel attention (DFCAN's, or a trunk of one in another network)."""
    for module in network.modules():
        if isinstance(module, FourierChannelAttention):
            module.spectrum_method = method  # type: ignore[assignment]
