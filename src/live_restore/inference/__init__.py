"""Inference: a shipped model as a callable session (torch CPU / CUDA), with tiling."""

from ._export import export_onnx
from ._session import BACKENDS, FocusEstimate, FocusSession, ModelSession, load_model
from ._tiling import tile_starts, tiled_apply

__all__ = [
    "BACKENDS",
    "FocusEstimate",
    "FocusSession",
    "ModelSession",
    "export_onnx",
    "load_model",
    "tile_starts",
    "tiled_apply",
]
