"""TensorRT: the exported ONNX graph compiled to a plan for this GPU, run on torch's memory.

Written against TensorRT's documented Python API (10.x; 8.6 works too) and **never run on this
project's machines**: TensorRT cannot be installed here and the lent GPU image has none
(../shared/ENVIRONMENT.md). Its tests skip where ``tensorrt`` does not import.

- Build: ONNX parser -> builder config with a workspace limit, fp16 when asked, a timing cache
  kept per GPU and TensorRT version (later builds reuse the kernel timings), and one optimisation
  profile over the batch (MIN 1 / OPT ``opt_batch`` / MAX ``max_batch``) at the tile's fixed
  height and width (DFCAN's attention DFT is built for its size).
- Cache: plans live in the engine cache keyed by the ONNX file's sha256, GPU name, compute
  capability, TensorRT version, precision and profile. A plan whose hash does not match its record,
  or that TensorRT will not deserialise, is rebuilt once; if that fails too, the error names it.
- Run: device memory and the stream are torch's (no pycuda): ``set_tensor_address`` takes the
  tensors' ``data_ptr()`` and ``execute_async_v3`` the stream handle.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from live_restore.models import ModelSpec, file_sha256

from ._cache import TIMING_FOLDER, EngineCache, EngineFileError, cache_key
from ._onnxruntime import cached_onnx

__all__ = ["TensorRTBackend"]

log = logging.getLogger(__name__)

_WORKSPACE_BYTES = 4 << 30


class TensorRTBackend:
    """The model as a TensorRT plan (fp16 or fp32 inside; float32 in and out)."""

    name = "tensorrt"

    def __init__(
        self,
        network: nn.Module,
        spec: ModelSpec,
        precision: str,
        cache: EngineCache,
        tile_shape: tuple[int, int, int] | None = None,
        opt_batch: int = 8,
        max_batch: int = 16,
    ) -> None:
        import tensorrt as trt

        if precision not in ("fp16", "fp32"):
            raise ValueError(f"the TensorRT backend builds fp16 or fp32 plans, not {precision}")
        if not torch.cuda.is_available():
            raise RuntimeError("the TensorRT backend needs a CUDA device")
        if not 1 <= opt_batch <= max_batch:
            raise ValueError(f"need 1 <= opt_batch ({opt_batch}) <= max_batch ({max_batch})")
        self._trt = trt
        self.precision = precision
        self.network = network
        self.spec = spec
        self.cache = cache
        self.opt_batch, self.max_batch = opt_batch, max_batch
        self.device = torch.device("cuda")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._stream = torch.cuda.Stream(self.device)
        # input (C, H, W) -> (engine, execution context, plan file)
        self._engines: dict[tuple[int, int, int], tuple[Any, Any, Path]] = {}
        if tile_shape is not None:
            self._engine(tile_shape)

    def describe(self) -> dict[str, str]:
        major, minor = torch.cuda.get_device_capability(self.device)
        return {
            "backend": self.name,
            "precision": self.precision,
            "device": torch.cuda.get_device_name(self.device),
            "compute_capability": f"{major}.{minor}",
            "tensorrt": self._trt.__version__,
            "profile": f"batch 1/{self.opt_batch}/{self.max_batch}",
            "plans": ", ".join(str(plan) for _, _, plan in self._engines.values()),
        }

    # --- build --------------------------------------------------------------------------------

    def _gpu_fields(self) -> dict[str, Any]:
        major, minor = torch.cuda.get_device_capability(self.device)
        return {
            "gpu": torch.cuda.get_device_name(self.device),
            "compute_capability": f"{major}.{minor}",
            "tensorrt": self._trt.__version__,
        }

    def plan_fields(self, onnx_path: Path, shape: tuple[int, int, int]) -> dict[str, Any]:
        """Everything a plan depends on (its cache key)."""
        return {
            "onnx_sha256": file_sha256(onnx_path),
            **self._gpu_fields(),
            "precision": self.precision,
            "profile": {
                "min": [1, *shape],
                "opt": [self.opt_batch, *shape],
                "max": [self.max_batch, *shape],
            },
        }

    def _timing_cache_path(self) -> Path:
        return self.cache.folder / TIMING_FOLDER / f"{cache_key(self._gpu_fields())}.cache"

    def _build(self, onnx_path: Path, shape: tuple[int, int, int], out: Path) -> None:
        trt = self._trt
        log.info(
            "building a TensorRT %s plan for %s %s (minutes)", self.precision, self.spec.name, shape
        )
        builder = trt.Builder(self._logger)
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT 8.x
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        graph = builder.create_network(flags)
        parser = trt.OnnxParser(graph, self._logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineFileError(f"TensorRT's ONNX parser refused {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, _WORKSPACE_BYTES)
        if self.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        timing_path = self._timing_cache_path()
        timing = config.create_timing_cache(
            timing_path.read_bytes() if timing_path.exists() else b""
        )
        # a timing cache from another GPU or version is ignored rather than trusted
        config.set_timing_cache(timing, ignore_mismatch=True)
        profile = builder.create_optimization_profile()
        profile.set_shape("input", (1, *shape), (self.opt_batch, *shape), (self.max_batch, *shape))
        config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(graph, config)
        if plan is None:
            raise EngineFileError(
                f"TensorRT could not build {self.spec.name} from {onnx_path} (see its log above)"
            )
        out.write_bytes(bytes(plan))
        timing_path.parent.mkdir(parents=True, exist_ok=True)
        timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))

    def _load(self, onnx_path: Path, shape: tuple[int, int, int]) -> tuple[Any, Path]:
        fields = self.plan_fields(onnx_path, shape)
        plan_path = self.cache.get_or_build(
            self.spec.name, "plan", fields, ".plan", lambda out: self._build(onnx_path, shape, out)
        )
        engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
        return engine, plan_path

    def _engine(self, shape: tuple[int, int, int]) -> tuple[Any, Any]:
        if shape in self._engines:
            engine, context, _ = self._engines[shape]
            return engine, context
        onnx_path = cached_onnx(self.network, self.spec, shape, self.cache)
        engine, plan_path = self._load(onnx_path, shape)
        if engine is None:
            # the hash matched its record, yet TensorRT refuses it: rebuild once
            log.warning("TensorRT could not deserialise %s; rebuilding it", plan_path)
            self.cache.remove(plan_path)
            engine, plan_path = self._load(onnx_path, shape)
            if engine is None:
                raise EngineFileError(f"TensorRT cannot deserialise the plan it built: {plan_path}")
        context = engine.create_execution_context()
        self._engines[shape] = (engine, context, plan_path)
        return engine, context

    # --- run ----------------------------------------------------------------------------------

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        shape = (int(batch.shape[1]), int(batch.shape[2]), int(batch.shape[3]))
        _, context = self._engine(shape)
        outputs = []
        with torch.cuda.stream(self._stream):
            for start in range(0, int(batch.shape[0]), self.max_batch):
                chunk = batch[start : start + self.max_batch].float()
                device_in = chunk.pin_memory().to(self.device, non_blocking=True).contiguous()
                context.set_input_shape("input", tuple(device_in.shape))
                device_out = torch.empty(
                    tuple(context.get_tensor_shape("output")), device=self.device
                )
                context.set_tensor_address("input", device_in.data_ptr())
                context.set_tensor_address("output", device_out.data_ptr())
                if not context.execute_async_v3(self._stream.cuda_stream):
                    raise RuntimeError(f"TensorRT failed to run {self.spec.name} on {shape}")
                outputs.append(device_out.to("cpu", non_blocking=True))
        self._stream.synchronize()
        return torch.cat(outputs)

    def close(self) -> None:
        """Free the engines and contexts (device memory)."""
        self._engines.clear()

    def __enter__(self) -> TensorRTBackend:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
