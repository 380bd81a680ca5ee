"""How much arithmetic a frame costs, and how fast this device multiplies matrices.

FLOPs are counted from the architecture by torch's ``FlopCounterMode`` (convolutions, matrix
products, transposed convolutions), for one tile and times the tiles a frame needs, overlap
included: that is the work the session really does. FFTs are not counted (DFCAN's attention
spectrum is under 1 % of its convolution FLOPs). The floor is that work at the device's measured
dense matmul rate: no backend can beat it, and the ratio floor / latency says how close one gets.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ._tiling import padded_side, tile_starts
from ._torch_backend import TORCH_DTYPES

__all__ = ["matmul_flops_per_s", "network_flops", "tiles_per_frame"]


def network_flops(network: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs (multiply and add counted as 2) of one forward pass on ``input_shape``."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network.eval()(torch.zeros(*input_shape))
    return int(counter.get_total_flops())


def tiles_per_frame(frame_shape: tuple[int, int], tile: int, multiple_of: int = 1) -> int:
    """How many tiles ``tiled_apply`` runs for a frame (as it pads and places them)."""
    counts = []
    for side in frame_shape:
        need = padded_side(side, tile, multiple_of)
        run_tile = min(tile, need)
        counts.append(len(tile_starts(need, run_tile, min(tile // 4, run_tile // 2))))
    return counts[0] * counts[1]


def matmul_flops_per_s(device: str = "cpu", precision: str = "fp32", size: int = 0) -> float:
    """Measured dense matmul rate (FLOP/s) of ``device`` at ``precision`` (median of repeats)."""
    size = size or (8192 if device == "cuda" else 1024)
    dtype = TORCH_DTYPES[precision]
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        a @ b
    sync()
    times = []
    for _ in range(10):
        start = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return 2.0 * size**3 / times[len(times) // 2]
