"""torch on the CPU or a CUDA device.

On CUDA, half precision runs under autocast rather than on a half-cast network: autocast keeps
the operations that need range in float32 (DFCAN's FFT and its |F|^0.8, the sigmoid's input sum)
and runs convolutions and matrix products in fp16/bf16 on the tensor cores. Tiles go through
pinned host buffers with non-blocking copies on the backend's own stream, so the host side of the
next call is not serialised behind the device. With ``cuda_graphs`` each input shape is captured
once and replayed (a frame's tiles always have one shape, so this removes per-kernel launch cost);
``compile`` runs ``torch.compile`` first.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

__all__ = ["TORCH_DTYPES", "TorchBackend"]

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend:
    """A network in eager torch (optionally compiled or captured as CUDA graphs)."""

    def __init__(
        self,
        network: nn.Module,
        name: str = "torch-cpu",
        precision: str = "fp32",
        channels_last: bool = True,
        cuda_graphs: bool = True,
        compile: bool = False,
    ) -> None:
        if name not in ("torch-cpu", "torch-cuda"):
            raise ValueError(f"TorchBackend runs torch-cpu or torch-cuda, not {name!r}")
        if precision not in TORCH_DTYPES:
            raise ValueError(f"unknown precision {precision!r}; known: {', '.join(TORCH_DTYPES)}")
        self.name = name
        self.precision = precision
        self.device = torch.device("cuda" if name == "torch-cuda" else "cpu")
        if self.device.type == "cpu" and precision != "fp32":
            raise ValueError("torch-cpu runs fp32 only")
        # our own copy: moving to a device or a memory format must not touch the caller's
        module = copy.deepcopy(network).eval().to(self.device)
        self.channels_last = channels_last and self.device.type == "cuda"
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.network: Any = torch.compile(module) if compile else module
        self.compiled = compile
        self.use_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]] = {}
        self._pinned: dict[tuple[int, ...], torch.Tensor] = {}
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    def describe(self) -> dict[str, str]:
        details = {"backend": self.name, "precision": self.precision, "torch": torch.__version__}
        if self.device.type == "cuda":
            details["device"] = torch.cuda.get_device_name(self.device)
            details["cuda"] = str(torch.version.cuda)
            details["options"] = (
                f"channels_last={self.channels_last}, cuda_graphs={self.use_graphs}, "
                f"compile={self.compiled}"
            )
        else:
            details["device"] = f"cpu ({torch.get_num_threads()} threads)"
        return details

    def _autocast(self) -> Any:
        if self.precision == "fp32":
            return nullcontext()
        # no weight-cast cache: a CUDA graph must not capture casts cached outside it (torch docs)
        return torch.autocast(
            self.device.type, dtype=TORCH_DTYPES[self.precision], cache_enabled=False
        )

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            output: torch.Tensor = self.network(batch)
        return output.float()

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cpu":
            with torch.inference_mode():
                return self._forward(batch.float())
        return self._run_cuda(batch)

    # --- CUDA ---------------------------------------------------------------------------------

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        shape = tuple(batch.shape)
        pinned = self._pinned.get(shape)
        if pinned is None:
            pinned = self._pinned[shape] = torch.empty(shape, pin_memory=True)
        pinned.copy_(batch)
        device_batch = pinned.to(self.device, non_blocking=True)
        if self.channels_last:
            device_batch = device_batch.contiguous(memory_format=torch.channels_last)
        return device_batch

    def _run_cuda(self, batch: torch.Tensor) -> torch.Tensor:
        assert self._stream is not None  # set for every CUDA backend in __init__
        with torch.cuda.stream(self._stream), torch.no_grad():
            device_batch = self._to_device(batch.float())
            if self.use_graphs:
                output = self._replay(device_batch)
            else:
                output = self._forward(device_batch)
            host = output.to("cpu", non_blocking=True)
        self._stream.synchronize()
        return host

    def _replay(self, device_batch: torch.Tensor) -> torch.Tensor:
        shape = tuple(device_batch.shape)
        if shape not in self._graphs:
            self._graphs[shape] = self._capture(device_batch)
        graph, static_input, static_output = self._graphs[shape]
        static_input.copy_(device_batch)
        graph.replay()
        # the static output is overwritten by the next replay: hand out a copy
        result: torch.Tensor = static_output.clone()
        return result

    def _capture(
        self, example: torch.Tensor
    ) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        static_input = example.clone()
        # warm up on the side stream first: cuDNN picks its algorithms and allocates there
        for _ in range(3):
            self._forward(static_input)
        torch.cuda.current_stream().synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self._stream):
            static_output = self._forward(static_input)
        return graph, static_input, static_output
