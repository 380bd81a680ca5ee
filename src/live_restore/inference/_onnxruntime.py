"""ONNX Runtime on the CPU: the exported graph (the one TensorRT gets), run where no GPU is.

One graph per input shape (DFCAN's attention DFT is built for its size), exported on first use
into the engine cache and reused from there; at int8, its calibrated QDQ graph
(``_quantize.py``). The session runs with the torch thread count and
without spinning worker threads: spinning would take cores from the acquisition thread even while
the restoration worker waits for its next frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from live_restore._version import __version__
from live_restore.models import ModelSpec

from ._cache import EngineCache, EngineFileError
from ._export import EXPORT_REVISION, OPSET, export_onnx

__all__ = ["OnnxRuntimeBackend", "cached_onnx", "exported_graph", "open_exported"]

T = TypeVar("T")

log = logging.getLogger(__name__)


def onnx_fields(spec: ModelSpec, shape: tuple[int, int, int]) -> dict[str, Any]:
    """What an exported graph depends on: weights, architecture, shape, exporter versions."""
    return {
        "model": spec.name,
        "weights_sha256": spec.weights_sha256,
        "architecture": spec.architecture,
        "arguments": spec.arguments,
        "input_chw": list(shape),
        "opset": OPSET,
        "export_revision": EXPORT_REVISION,
        "torch": torch.__version__,
        "live_restore": __version__,
    }


def cached_onnx(
    network: nn.Module, spec: ModelSpec, shape: tuple[int, int, int], cache: EngineCache
) -> Path:
    """The model's ONNX graph for inputs ``(N, *shape)``, exported once into ``cache``."""

    def write(path: Path) -> None:
        log.info("exporting %s to ONNX for input %s", spec.name, shape)
        export_onnx(network, path, (1, *shape))

    return cache.get_or_build(spec.name, "onnx", onnx_fields(spec, shape), ".onnx", write)


def exported_graph(
    network: nn.Module,
    spec: ModelSpec,
    shape: tuple[int, int, int],
    cache: EngineCache,
    precision: str = "fp32",
) -> Path:
    """The graph a CPU runtime reads for ``precision``: float (fp32, bf16) or int8 QDQ."""
    if precision == "int8":
        from ._quantize import cached_int8_onnx

        return cached_int8_onnx(network, spec, shape, cache)
    return cached_onnx(network, spec, shape, cache)


def open_exported(
    network: nn.Module,
    spec: ModelSpec,
    shape: tuple[int, int, int],
    cache: EngineCache,
    precision: str,
    open_graph: Callable[[Path], T],
    runtime: str,
) -> tuple[T, Path]:
    """``open_graph`` of the cached graph for ``shape``, re-exported once if the runtime refuses.

    The cache's hash matched, so the file is as it was written: a refusal means an exporter of
    an earlier version wrote something this runtime cannot read. EngineFileError, naming the
    file, when the fresh export is refused too.
    """
    path = exported_graph(network, spec, shape, cache, precision)
    try:
        return open_graph(path), path
    except Exception as first:  # each runtime raises its own error types
        log.warning("%s refused %s (%s); re-exporting", runtime, path, first)
        cache.remove(path)
        path = exported_graph(network, spec, shape, cache, precision)
        try:
            return open_graph(path), path
        except Exception as second:
            raise EngineFileError(
                f"{runtime} cannot load the exported graph of {spec.name} ({path}): {second}"
            ) from second


class OnnxRuntimeBackend:
    """The exported graph in an ONNX Runtime CPU session (fp32, or the int8 QDQ graph)."""

    name = "onnxruntime"

    def __init__(
        self,
        network: nn.Module,
        spec: ModelSpec,
        cache: EngineCache,
        tile_shape: tuple[int, int, int] | None = None,
        threads: int | None = None,
        precision: str = "fp32",
    ) -> None:
        import onnxruntime

        self._ort = onnxruntime
        self.precision = precision
        if precision == "int8":  # refused at load, not at the first frame
            from ._quantize import require_int8_calibration

            require_int8_calibration(spec)
        self.network = network
        self.spec = spec
        self.cache = cache
        self.threads = threads or torch.get_num_threads()
        # input (C, H, W) -> (session, graph file)
        self._sessions: dict[tuple[int, int, int], tuple[Any, Path]] = {}
        if tile_shape is not None:
            self._session(tile_shape)

    def describe(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "precision": self.precision,
            "device": f"cpu ({self.threads} threads)",
            "onnxruntime": self._ort.__version__,
            "onnx_opset": str(OPSET),
            "onnx_graphs": ", ".join(str(p) for p in self._paths()),
        }

    def _paths(self) -> list[Path]:
        return [path for _, path in self._sessions.values()]

    def _open(self, path: Path) -> Any:
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return self._ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _session(self, shape: tuple[int, int, int]) -> Any:
        if shape not in self._sessions:
            self._sessions[shape] = open_exported(
                self.network,
                self.spec,
                shape,
                self.cache,
                self.precision,
                self._open,
                "ONNX Runtime",
            )
        return self._sessions[shape][0]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        shape = (int(batch.shape[1]), int(batch.shape[2]), int(batch.shape[3]))
        session = self._session(shape)
        array = batch.float().contiguous().numpy()
        (output,) = session.run(None, {"input": array})
        return torch.from_numpy(output)
