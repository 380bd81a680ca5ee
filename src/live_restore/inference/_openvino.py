"""OpenVINO on the CPU: the exported ONNX graph (or its int8 QDQ graph), compiled for this CPU.

Measured on the 2-core VM (benchmarks/RESULTS.md): a 512x512 frame of dfcan-sr2x-tiny took
216 ms on OpenVINO and 291 ms on ONNX Runtime (the same graph, outputs equal to 1e-5), and 143 ms
at bf16 (on CPUs with AVX-512 BF16 or AMX); int8 (VNNI) took 189 ms. bf16 is OpenVINO's
inference precision on the float graph: weights and activations rounded to bfloat16 inside its
kernels, accumulation in float32. The compiled model is per input shape, like the graph;
OpenVINO compiles in well under a second, so compiled blobs are not cached.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from live_restore.models import ModelSpec

from ._cache import EngineCache
from ._export import OPSET
from ._onnxruntime import open_exported

__all__ = ["OpenVinoBackend", "cpu_runs_bf16"]

log = logging.getLogger(__name__)

# OpenVINO's name for the float arithmetic inside its kernels
_INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


@functools.lru_cache(maxsize=1)
def _core() -> Any:
    import openvino

    return openvino.Core()


@functools.lru_cache(maxsize=1)
def cpu_runs_bf16() -> bool:
    """Whether OpenVINO's CPU plugin has bfloat16 kernels on this CPU."""
    try:
        capabilities = _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # no CPU plugin: nothing runs, and the backend says so when built
        return False
    return "BF16" in capabilities


class OpenVinoBackend:
    """The exported graph compiled by OpenVINO for this CPU (fp32, bf16 or int8)."""

    name = "openvino"

    def __init__(
        self,
        network: nn.Module,
        spec: ModelSpec,
        cache: EngineCache,
        tile_shape: tuple[int, int, int] | None = None,
        precision: str = "fp32",
        threads: int | None = None,
    ) -> None:
        if precision not in _INFERENCE_PRECISION:
            raise ValueError(f"openvino runs fp32, bf16 or int8, not {precision!r}")
        if precision == "bf16" and not cpu_runs_bf16():
            raise ValueError("this CPU has no bfloat16 instructions: use fp32 or int8")
        if precision == "int8":  # refused at load, not at the first frame
            from ._quantize import require_int8_calibration

            require_int8_calibration(spec)
        import openvino

        self._version = openvino.get_version()
        self.network = network
        self.spec = spec
        self.cache = cache
        self.precision = precision
        self.threads = threads or torch.get_num_threads()
        # input (N, C, H, W) -> (infer request, graph file): compiled for a static shape, as
        # OpenVINO's CPU kernels run faster than on a dynamic one
        self._requests: dict[tuple[int, ...], tuple[Any, Path]] = {}
        if tile_shape is not None:
            self._request((1, *tile_shape))

    def describe(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "precision": self.precision,
            "device": f"cpu ({self.threads} threads)",
            "openvino": self._version,
            "onnx_opset": str(OPSET),
            "onnx_graphs": ", ".join(sorted({str(path) for _, path in self._requests.values()})),
        }

    def _compile(self, path: Path, shape: tuple[int, ...]) -> Any:
        model = _core().read_model(str(path))
        model.reshape({model.input(0): list(shape)})
        config = {
            "INFERENCE_PRECISION_HINT": _INFERENCE_PRECISION[self.precision],
            "INFERENCE_NUM_THREADS": self.threads,
            "PERFORMANCE_HINT": "LATENCY",
        }
        return _core().compile_model(model, "CPU", config).create_infer_request()

    def _request(self, shape: tuple[int, ...]) -> Any:
        if shape not in self._requests:
            chw = (shape[1], shape[2], shape[3])
            self._requests[shape] = open_exported(
                self.network,
                self.spec,
                chw,
                self.cache,
                self.precision,
                lambda path: self._compile(path, shape),
                "OpenVINO",
            )
        return self._requests[shape][0]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        request = self._request(tuple(int(side) for side in batch.shape))
        array = batch.float().contiguous().numpy()
        request.infer({0: array})
        return torch.from_numpy(request.get_output_tensor(0).data.copy())
