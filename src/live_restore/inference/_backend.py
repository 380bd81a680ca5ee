"""The ``Backend`` seam: one network, run on one runtime at one precision.

A backend takes a batch of tiles in network units (``float32``, ``(N, C, H, W)``, on the CPU) and
returns the network's output for it (``float32``, on any device). Everything around it (frame
normalisation, tiling, blending, counts) is the session's, so every backend computes the same
function and parity between them is a property of the runtime alone.

Names: ``tensorrt``, ``torch-cuda``, ``torch-cpu``, ``onnxruntime`` and ``openvino`` (CPU), and
``auto``. On a GPU ``auto`` takes the first available of tensorrt, torch-cuda. On a CPU it
takes, in this order: what ``live-restore bench --record`` measured fastest on this machine for
the model (kept in the engine cache); the model's ``cpu_backend`` (measured on the 2-core VM,
model.yaml); torch-cpu. Its precision is the first of the model's ``cpu_precisions`` (fp32, and
the reduced ones that passed the quality check) that the runtime runs here.
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
    "precisions_here",
    "resolve_backend",
]

BACKENDS = tuple(str(b) for b in BackendName)
PRECISIONS = tuple(str(p) for p in Precision)
# what each runtime can do; on a GPU "auto" precision is the first
_PRECISIONS_OF = {
    "tensorrt": ("fp16", "fp32"),
    "torch-cuda": ("fp16", "bf16", "fp32"),
    "torch-cpu": ("fp32",),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
}
CPU_BACKENDS = ("torch-cpu", "onnxruntime", "openvino")


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
    """The backends that can run on this machine: the GPU ones first."""
    cuda = torch.cuda.is_available()
    found = []
    if cuda and _importable("tensorrt"):
        found.append("tensorrt")
    if cuda:
        found.append("torch-cuda")
    found.append("torch-cpu")
    if _importable("onnxruntime") and _importable("onnx"):
        found.append("onnxruntime")
        # OpenVINO reads the exported ONNX graph, and its int8 graph is ONNX Runtime's QDQ one
        if _importable("openvino"):
            found.append("openvino")
    return found


def precisions_here(backend: str) -> tuple[str, ...]:
    """The precisions ``backend`` runs on this machine (bf16 on a CPU needs its instructions)."""
    supported = _PRECISIONS_OF[backend]
    if backend == "openvino":
        from ._openvino import cpu_runs_bf16

        if not cpu_runs_bf16():
            supported = tuple(p for p in supported if p != "bf16")
    return supported


def resolve_backend(
    backend: str,
    precision: str = "auto",
    cpu_backend: str | None = None,
    cpu_precisions: tuple[str, ...] = ("fp32",),
) -> tuple[str, str]:
    """``(backend, precision)`` with ``auto`` resolved; ValueError/RuntimeError naming the fix.

    ``cpu_backend``: a model's measured faster CPU runtime (this machine's bench record, else
    model.yaml), which ``auto`` takes instead of torch-cpu where it is available (OpenVINO's
    graph is ONNX Runtime's, so without openvino onnxruntime stands in). ``cpu_precisions``: the
    precisions ``auto`` may take on a CPU runtime, preferred first (the ones that passed the
    model's quality check).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    available = available_backends()
    if backend == "auto":
        # the fastest that can also run the precision asked for
        fitting = [b for b in available if precision == "auto" or precision in precisions_here(b)]
        if not fitting:
            raise RuntimeError(f"no backend here runs {precision}; available: {available}")
        backend = fitting[0]
        if backend in CPU_BACKENDS:
            stand_ins = [cpu_backend, "onnxruntime"] if cpu_backend == "openvino" else [cpu_backend]
            backend = next((b for b in stand_ins if b in fitting), backend)
    elif backend not in available:
        raise RuntimeError(_why_unavailable(backend))
    supported = precisions_here(backend)
    if precision == "auto":
        # a reduced precision was measured on the chosen runtime, not on its stand-in
        allowed = [p for p in cpu_precisions if p in supported] if backend == cpu_backend else []
        precision = allowed[0] if allowed else supported[0]
    elif precision not in supported:
        raise ValueError(f"backend {backend} runs {', '.join(supported)} here, not {precision}")
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
    if backend == "openvino":
        return (
            "backend openvino asked for, but openvino (or onnx/onnxruntime, which export and "
            "quantise its graph) does not import: pip install 'live-restore[openvino]'"
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
    with any, ``auto`` stays on torch rather than the model's CPU choice (``_cpu_choice.py``).
    """
    from ._cache import EngineCache
    from ._cpu_choice import cpu_choice

    cache = cache if cache is not None else EngineCache()
    if options:  # torch's options: no CPU choice to read
        name, precision = resolve_backend(backend, precision)
    else:
        choice = cpu_choice(spec, cache, torch.get_num_threads())
        name, precision = resolve_backend(backend, precision, choice.backend, choice.precisions)
    if name in ("torch-cpu", "torch-cuda"):
        from ._torch_backend import TorchBackend

        return TorchBackend(network, name, precision, **options)
    if name == "onnxruntime":
        from ._onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(network, spec, cache, tile_shape, precision=precision, **options)
    if name == "openvino":
        from ._openvino import OpenVinoBackend

        return OpenVinoBackend(network, spec, cache, tile_shape, precision=precision, **options)
    from ._tensorrt import TensorRTBackend

    return TensorRTBackend(network, spec, precision, cache, tile_shape, **options)
