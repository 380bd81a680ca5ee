"""Inference: a shipped model as a callable session on one of several backends, with tiling.

Backends (``Backend`` protocol): TensorRT, torch CUDA, torch CPU and ONNX Runtime; built
artefacts (ONNX graphs, TensorRT plans) live in an :class:`EngineCache`.
"""

from ._backend import (
    BACKENDS,
    PRECISIONS,
    Backend,
    available_backends,
    create_backend,
    precisions_here,
    resolve_backend,
)
from ._bench import BenchRow, bench, plot_bench
from ._cache import CacheEntry, EngineCache, EngineFileError, default_cache_dir
from ._cpu_choice import CpuChoice, cpu_choice, record_cpu_choice
from ._export import OPSET, export_onnx
from ._focus_session import FocusEstimate, FocusSession
from ._session import (
    CPU_VARIANTS,
    InterpSession,
    MFSRSession,
    ModelSession,
    SimSession,
    load_model,
    session_tile,
)
from ._tensorrt_ops import TENSORRT_ONNX_OPERATORS, tensorrt_unsupported
from ._tiling import tile_run_shape, tile_starts, tiled_apply, tiled_apply_stack
from ._triton_client import (
    READY_MODEL,
    ServerError,
    ServerUnreachable,
    TritonInterpolation,
    TritonSession,
    server_address,
)
from ._trust import (
    METHOD_NOTES,
    SINGLE_FRAME_METHODS,
    TRUST_FILE,
    TRUST_HEAD_FILE,
    TRUST_METHODS,
    Trust,
    TrustCalibration,
    dihedral_passes,
    head_spread,
    head_tensors,
    load_trust_head,
    pair_spread,
    range_units,
    trust_of,
)

__all__ = [
    "BACKENDS",
    "CPU_VARIANTS",
    "METHOD_NOTES",
    "OPSET",
    "PRECISIONS",
    "READY_MODEL",
    "SINGLE_FRAME_METHODS",
    "TENSORRT_ONNX_OPERATORS",
    "TRUST_FILE",
    "TRUST_HEAD_FILE",
    "TRUST_METHODS",
    "Backend",
    "BenchRow",
    "CacheEntry",
    "CpuChoice",
    "EngineCache",
    "EngineFileError",
    "FocusEstimate",
    "FocusSession",
    "InterpSession",
    "MFSRSession",
    "ModelSession",
    "ServerError",
    "ServerUnreachable",
    "SimSession",
    "TritonInterpolation",
    "TritonSession",
    "Trust",
    "TrustCalibration",
    "available_backends",
    "bench",
    "cpu_choice",
    "create_backend",
    "default_cache_dir",
    "dihedral_passes",
    "export_onnx",
    "head_spread",
    "head_tensors",
    "load_model",
    "load_trust_head",
    "pair_spread",
    "plot_bench",
    "precisions_here",
    "range_units",
    "record_cpu_choice",
    "resolve_backend",
    "server_address",
    "session_tile",
    "tensorrt_unsupported",
    "tile_run_shape",
    "tile_starts",
    "tiled_apply",
    "tiled_apply_stack",
    "trust_of",
]
