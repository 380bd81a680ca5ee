"""``live-restore bench``: model x backend x frame size x precision, timed end to end.

A row times the whole session call on a simulated-camera-like frame (normalisation, tiling,
copies, network, blending), because that is what the acquisition waits for. Each cell is warmed
up first (exports, plan builds, CUDA graph captures and cuDNN's algorithm search happen there,
not in the figures), then timed ``repeats`` times: median and p99 (with few repeats p99 is
close to the maximum). The FLOP floor is the session's counted FLOPs per frame at the device's
measured matmul rate for that precision (``_flops.py``); on a CPU the fp32 rate at every precision
(torch has no int8 matmul to measure), so a reduced precision can pass 100 %.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from live_restore.models import (
    ModelLoadError,
    ModelSpec,
    ModelTask,
    build_network,
    load_network,
    model_dir,
    read_spec,
)

from ._backend import backend_device, create_backend, resolve_backend
from ._cache import EngineCache
from ._flops import matmul_flops_per_s, network_flops, tiles_per_frame
from ._session import InterpSession, make_session, session_tile
from ._tiling import tile_run_shape

__all__ = ["BenchRow", "bench", "bench_cells", "plot_bench"]

# the published DFCAN (64 features, 4 groups x 4 blocks), for timing where its weights are not
# shipped: speed does not depend on the values of the weights
_PUBLISHED = {
    "dfcan-sr2x": ModelSpec(
        name="dfcan-sr2x",
        task=ModelTask.SUPER_RESOLUTION,
        architecture="dfcan",
        arguments={"in_channels": 1, "scale": 2},
        scale=2,
        training={"patch_size": 128},
    )
}


@dataclass(frozen=True)
class BenchRow:
    """One cell: a model on a backend at a frame size and precision."""

    model: str
    backend: str
    precision: str
    frame_px: int
    median_ms: float
    p99_ms: float
    tiles: int
    gflop_per_frame: float
    floor_ms: float
    note: str = ""

    @property
    def frames_per_s(self) -> float:
        return 1000.0 / self.median_ms if self.median_ms > 0 else float("inf")

    @property
    def floor_share(self) -> float:
        """FLOP floor / median latency: 1.0 would be every cycle spent in dense matmul."""
        return self.floor_ms / self.median_ms if self.median_ms > 0 else 0.0


def _target(name: str) -> tuple[ModelSpec, nn.Module, str]:
    try:
        spec, network, _ = load_network(name)
        return spec, network, ""
    except Exception:
        if name not in _PUBLISHED:
            raise
        spec = _PUBLISHED[name]
        return spec, build_network(spec.architecture, spec.arguments), "untrained (timing only)"


def bench_cells(
    models: list[str], backends: list[str], sizes: list[int], precisions: list[str]
) -> Iterator[tuple[str, str, str, int]]:
    """The valid (model, backend, precision, size) cells; ``auto`` precision per backend."""
    for model in models:
        try:
            spec = read_spec(model_dir(model))
            cpu_backend: str | None = spec.cpu_backend
            cpu_precisions = tuple(spec.cpu_precisions)
        except ModelLoadError:  # named by the cell's run, where it is loaded
            cpu_backend, cpu_precisions = None, ("fp32",)
        for backend in backends:
            for precision in precisions:
                try:
                    resolved = resolve_backend(backend, precision, cpu_backend, cpu_precisions)
                except (ValueError, RuntimeError):
                    continue  # a precision the backend does not run is not a cell
                for size in sizes:
                    yield model, resolved[0], resolved[1], size


def bench(
    models: list[str],
    backends: list[str],
    sizes: list[int],
    precisions: list[str],
    repeats: int = 10,
    warmup: int = 2,
    tile_px: int | None = None,
    cache: EngineCache | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BenchRow]:
    """Time every cell; rows in cell order (duplicates from ``auto`` are run once)."""
    cells = list(dict.fromkeys(bench_cells(models, backends, sizes, precisions)))
    rates: dict[tuple[str, str], float] = {}
    flops_per_tile: dict[tuple[str, tuple[int, ...]], int] = {}
    rows = []
    for model, backend, precision, size in cells:
        if progress is not None:
            progress(f"{model} on {backend} {precision} at {size}x{size}")
        spec, network, note = _target(model)
        tile_shape = session_tile(spec, tile_px)
        runtime = create_backend(network, spec, backend, precision, cache, tile_shape=tile_shape)
        session = make_session(spec, Path("."), runtime, tile_shape[1])
        # one camera frame, or a raw set of in_channels frames (SIM) for a multi-frame model
        sim = spec.task in (ModelTask.SIM_RECONSTRUCTION, ModelTask.MULTI_FRAME_SR)
        frames = (tile_shape[0],) if sim else ()
        frame = np.random.default_rng(0).poisson(100.0, (*frames, size, size)).astype(np.uint16)

        def call(session: Any = session, frame: np.ndarray = frame) -> None:
            # an interpolation model takes a pair and a fraction: the middle of two frames
            _ = session(frame, frame, 0.5) if isinstance(session, InterpSession) else session(frame)

        for _ in range(warmup):
            call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(1e3 * (time.perf_counter() - start))
        run_shape = tile_shape
        if spec.task is ModelTask.FOCUS_ESTIMATION:
            tiles = (size // tile_shape[1]) ** 2
        else:
            tiles = tiles_per_frame((size, size), tile_shape[1], spec.multiple_of)
            # a frame smaller than a tile runs as one smaller tile
            run_shape = (
                tile_shape[0],
                *tile_run_shape((size, size), tile_shape[1], spec.multiple_of),
            )
        if (model, run_shape) not in flops_per_tile:
            flops_per_tile[model, run_shape] = network_flops(network, (1, *run_shape))
        flops = flops_per_tile[model, run_shape] * tiles
        device = backend_device(backend)
        rate_precision = "fp32" if device == "cpu" else precision
        if (device, rate_precision) not in rates:
            rates[device, rate_precision] = matmul_flops_per_s(device, rate_precision)
        rows.append(
            BenchRow(
                model=model,
                backend=backend,
                precision=precision,
                frame_px=size,
                median_ms=float(np.median(times)),
                p99_ms=float(np.percentile(times, 99)),
                tiles=tiles,
                gflop_per_frame=flops / 1e9,
                floor_ms=1e3 * flops / rates[device, rate_precision],
                note=note,
            )
        )
        del session, runtime
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return rows


def plot_bench(rows: list[BenchRow], path: Path) -> Path:
    """Median ms per frame against frame side, a line per model x backend x precision."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 5), dpi=120)
    lines: dict[tuple[str, str, str], list[BenchRow]] = {}
    for row in rows:
        lines.setdefault((row.model, row.backend, row.precision), []).append(row)
    for (model, backend, precision), points in lines.items():
        points.sort(key=lambda r: r.frame_px)
        axes.plot(
            [r.frame_px for r in points],
            [r.median_ms for r in points],
            marker="o",
            label=f"{model} {backend} {precision}",
        )
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    sizes = sorted({r.frame_px for r in rows})
    axes.set_xticks(sizes, [f"{s}²" for s in sizes])
    axes.axhline(1000, color="grey", linestyle=":", linewidth=1)
    axes.text(sizes[0], 1050, "1 frame/s", color="grey", fontsize=8)
    axes.set_xlabel("frame (px)")
    axes.set_ylabel("median ms per frame (whole session call)")
    axes.set_title("restoration cost against frame size")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
