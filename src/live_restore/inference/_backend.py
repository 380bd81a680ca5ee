"""The ``Backend`` seam: one network, run on one runtime at one precision.

A backend takes a batch of tiles in network units (``float32``, ``(N, C, H, W)``, on the CPU) and
returns the network's output for it (``float32``, on any device). Everything around it (frame
normalisation, tiling, blending, counts) is the session's, so every backend computes the same
function and parity between them is a property of the runtime alone.

Names: ``tensorrt``, ``torch-cuda``, ``torch-cpu``, ``onnxruntime`` (CPU), and ``auto``, which
picks the first available in that order. The CPU half of the order is measured: on the 2-core VM
ONNX Runtime ran the shipped models at 0.86-1.05x torch's speed (``live-restore bench``,
benchmarks/RESULTS.md), so it is there for parity with the exported graph and for machines
where it is faster, not as the default.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

from live_restore.frames import BackendName, Precision

if TYPE_CHECKING:
    from live_restore.models import ModelSpec

    from ._cache import EngineCache

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "Backend",
    "available_backends",
    "backend_device",
    "create_backend",
    "resolve_backend",
]

BACKENDS = tuple(str(b) for b in BackendName)
PRECISIONS = tuple(str(p) for p in Precision)
# what each runtime can do here; "auto" precision is the first
_PRECISIONS_OF = {
    "tensorrt": ("fp16", "fp32"),
    "torch-cuda": ("fp16", "bf16", "fp32"),
    "torch-cpu": ("fp32",),
    "onnxruntime": ("fp32",),
}


@runtime_checkable
class Backend(Protocol):
    """A network on a runtime: CPU float32 tiles in, float32 output out."""

    name: str
    precision: str

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Output of the network for ``batch`` (``(N, C, H, W)``, float32, CPU)."""
        ...

    def describe(self) -> dict[str, str]:
        """Runtime, precision, device and versions, for provenance."""
        ...


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def available_backends() -> list[str]:
    """The backends that can run on this machine, fastest first."""
    cuda = torch.cuda.is_available()
    found = []
    if cuda and _importable("tensorrt"):
        found.append("tensorrt")
    if cuda:
        found.append("torch-cuda")
    found.append("torch-cpu")
    if _importable("onnxruntime") and _importable("onnx"):
        found.append("onnxruntime")
    return found


def resolve_backend(
    backend: str, precision: str = "auto", cpu_backend: str | None = None
) -> tuple[str, str]:
    """``(backend, precision)`` with ``auto`` resolved; ValueError/RuntimeError naming the fix.

    ``cpu_backend``: a model's measured faster CPU runtime (its model.yaml), which ``auto``
    takes instead of torch-cpu where it is available.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    available = available_backends()
    if backend == "auto":
        # the fastest that can also run the precision asked for
        fitting = [b for b in available if precision == "auto" or precision in _PRECISIONS_OF[b]]
        if not fitting:
            raise RuntimeError(f"no backend here runs {precision}; available: {available}")
        backend = fitting[0]
        if backend == "torch-cpu" and cpu_backend in fitting:
            backend = cpu_backend
    elif backend not in available:
        raise RuntimeError(_why_unavailable(backend))
    supported = _PRECISIONS_OF[backend]
    if precision == "auto":
        precision = supported[0]
    elif precision not in supported:
        raise ValueError(
            f"backend {backend} runs {', '.join(supported)}, not {precision} "
            "(half precision needs a GPU backend)"
        )
    return backend, precision


def backend_device(backend: str) -> str:
    """Where ``backend`` runs the network: ``cuda`` or ``cpu``."""
    return "cuda" if backend in ("torch-cuda", "tensorrt") else "cpu"


def _why_unavailable(backend: str) -> str:
    if backend_device(backend) == "cuda" and not torch.cuda.is_available():
        return f"backend {backend} asked for, but torch sees no CUDA device"
    if backend == "tensorrt":
        return (
            "backend tensorrt asked for, but the tensorrt package does not import; install "
            "NVIDIA TensorRT for this CUDA version (see README), or use torch-cuda"
        )
    return (
        f"backend {backend} asked for, but onnx/onnxruntime do not import: "
        "pip install 'live-restore[onnx]'"
    )


def create_backend(
    network: nn.Module,
    spec: ModelSpec,
    backend: str = "auto",
    precision: str = "auto",
    cache: EngineCache | None = None,
    tile_shape: tuple[int, int, int] | None = None,
    **options: Any,
) -> Backend:
    """``network`` on the chosen runtime.

    ``tile_shape`` ``(C, H, W)`` is the input the session will send; exported backends build
    their graph for it up front, so a failure shows at load time, not in the middle of a run.
    ``options`` go to the runtime (torch: ``channels_last``, ``cuda_graphs``, ``compile``);
    with any, ``auto`` stays on torch rather than the model's ``cpu_backend``.
    """
    name, precision = resolve_backend(backend, precision, None if options else spec.cpu_backend)
    if name in ("torch-cpu", "torch-cuda"):
        from ._torch_backend import TorchBackend

        return TorchBackend(network, name, precision, **options)
    from ._cache import EngineCache

    cache = cache if cache is not None else EngineCache()
    if name == "onnxruntime":
        from ._onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(network, spec, cache, tile_shape, **options)
    from ._tensorrt import TensorRTBackend

    return TensorRTBackend(network, spec, precision, cache, tile_shape, **options)
