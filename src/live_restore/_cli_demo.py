"""``live-restore demo``: the simulated low-light time-lapse, restored while it acquires."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ._cli_common import console, fail, progress
from ._cli_options import (
    BackendOption,
    MemoryOption,
    ModelsOption,
    OldProcessOption,
    OutFolderOption,
    OverwriteOption,
    PolicyOption,
    ScreenshotOption,
    check_backend,
    check_policy,
    open_window,
    prepare_out,
)

if TYPE_CHECKING:
    from ._demo import DemoResult

__all__ = ["DEFAULT_INTERVAL_S", "demo"]

DEFAULT_INTERVAL_S = 1.0


def demo(
    out: OutFolderOption = Path("demo-output"),
    frames: Annotated[int, typer.Option(min=1, help="Number of time points.")] = 50,
    headless: Annotated[
        bool, typer.Option(help="Run without the napari window; print a summary at the end.")
    ] = False,
    structure: Annotated[
        str, typer.Option(help="Sample: microtubules, clathrin, er, f-actin, mitochondria, nuclei.")
    ] = "microtubules",
    light: Annotated[
        str, typer.Option(help="Light level preset: VeryLow, Low, Medium, High.")
    ] = "Low",
    exposure_ms: Annotated[float, typer.Option(min=0.01, help="Camera exposure (ms).")] = 10.0,
    interval_s: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Time between frames (s): the pace of a low-light live-cell time-lapse, which "
            "the CPU tier keeps up with on 2 cores. 0 = as fast as the camera (restoration "
            "catches up after).",
        ),
    ] = DEFAULT_INTERVAL_S,
    frame_size: Annotated[
        int, typer.Option(help="Square frame side in pixels (even, 32-4096).")
    ] = 512,
    seed: Annotated[int, typer.Option(help="Sample and noise seed.")] = 0,
    drift: Annotated[
        float,
        typer.Option(help="Focus drift of the sample (µm/min); turns on the focus monitor."),
    ] = 0.0,
    hold_focus: Annotated[
        bool,
        typer.Option(
            "--hold-focus",
            help="Move the focus stage by the drift the focus monitor trusts, between frames "
            "(with --interval-s 0, frames come every 0.5 s so each correction acts in time).",
        ),
    ] = False,
    watch_focus: Annotated[
        bool | None,
        typer.Option(
            help="Run the focus monitor (focus-est + focus score; flags defocus). "
            "Default: on with --drift or --hold-focus."
        ),
    ] = None,
    sample_seconds_per_frame: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Simulated sample time per frame (s), so drift shows within a short demo. "
            "Default: 6 with --drift (50 frames = 5 min of sample time), else the wall clock.",
        ),
    ] = None,
    model: ModelsOption = None,
    backend: BackendOption = "auto",
    policy: PolicyOption = "all",
    process: OldProcessOption = None,
    memory_mb: MemoryOption = 512.0,
    overwrite: OverwriteOption = False,
    screenshot: ScreenshotOption = None,
) -> None:
    """Simulated low-light time-lapse, restored while it acquires, saved as OME-Zarr.

    Without --headless, napari opens with raw and restored side by side, the microscope
    controls and the Live Restore dock, the time-lapse already running; close the window to end.

    The sample is rendered from physics (NA 1.49 oil, 525 nm, 65 nm pixels) with Poisson shot
    noise and camera read noise; the light level sets the photon budget. Each frame is restored
    off the acquisition thread (default: DFCAN 2x super-resolution, its CPU tier
    dfcan-sr2x-tiny when torch sees no GPU), one frame a second by default, and the last frame
    is scored against the simulator's ground truth, beside Richardson-Lucy on the same frame.
    """
    from ._demo import run_demo

    policy = check_policy(policy, process)
    check_backend(backend)
    models = model or ["dfcan-sr2x"]
    prepare_out(out, overwrite)
    watch = watch_focus if watch_focus is not None else (drift != 0.0 or hold_focus)
    if hold_focus and not watch:
        raise fail("--hold-focus needs the focus monitor: drop --no-watch-focus")
    if sample_seconds_per_frame is None:
        sample_seconds_per_frame = 6.0 if drift != 0.0 else 0.0
    if hold_focus and interval_s == 0.0:
        # a correction can only act on frames the monitor has already seen: at full speed the
        # worker lags by many frames on a CPU and the hold would steer by stale readings
        interval_s = 0.5
        console.print("--hold-focus: frames every 0.5 s (--interval-s), so corrections act in time")
    if not headless:
        from ._demo import DemoSettings

        try:
            settings = DemoSettings(
                frames,
                structure,
                light,
                exposure_ms,
                interval_s,
                frame_size,
                seed,
                drift,
                sample_seconds_per_frame,
            )
        except ValueError as e:
            raise fail(str(e)) from None
        open_window(None, out, models, backend, policy, settings, screenshot)
        return
    if screenshot is not None:
        raise fail("--screenshot needs the window: drop --headless")
    with progress() as bar:
        acquiring = bar.add_task("acquiring", total=frames)
        restoring = bar.add_task(f"restoring ({models[0]})", total=frames)
        try:
            result = run_demo(
                out,
                frames=frames,
                structure=structure,
                light_level=light,
                exposure_ms=exposure_ms,
                interval_s=interval_s,
                frame_size=frame_size,
                seed=seed,
                focus_drift_um_per_min=drift,
                sample_seconds_per_frame=sample_seconds_per_frame,
                watch_focus=watch,
                hold_focus=hold_focus,
                models=models,
                backend=backend,
                policy=policy,
                memory_mb=memory_mb,
                on_frame=lambda n: bar.update(acquiring, completed=n),
                on_restored=lambda n: bar.update(restoring, completed=n),
                progress=False,
                on_ready=lambda names: bar.update(restoring, description=f"restoring ({names[0]})"),
            )
        except (ValueError, FileExistsError, RuntimeError) as e:
            raise fail(str(e)) from None
    table = Table(title="live-restore demo", show_header=False)
    table.add_row("frames", f"{result.frames} x {result.frame_shape[0]}x{result.frame_shape[1]}")
    table.add_row(
        "acquired in", f"{result.seconds:.2f} s ({result.frames / result.seconds:.1f} frames/s)"
    )
    table.add_row("sample", f"{structure}, light {light}, exposure {exposure_ms} ms")
    table.add_row(
        "peak signal", f"{result.peak_photons:.1f} photons/pixel (brightest in-focus pixel)"
    )
    table.add_row("mean counts", f"{result.mean_counts:.1f} (offset 100)")
    table.add_row(
        "sample time",
        f"{result.sample_minutes:.1f} min"
        + (
            f" (simulated, {sample_seconds_per_frame:g} s per frame)"
            if sample_seconds_per_frame
            else ""
        ),
    )
    table.add_row("defocus at end", f"{result.final_defocus_um:+.3f} µm (ground truth)")
    if watch:
        first = result.first_flagged_frame
        table.add_row(
            "focus",
            f"{result.frames_flagged} frames flagged out of focus"
            + (f", first at frame {first}" if first is not None else "")
            + f"; largest true |defocus| {result.max_true_defocus_um:.2f} µm"
            + (f"; focus hold moved {result.focus_moves} times" if hold_focus else ""),
        )
    table.add_row(
        "restored",
        f"{result.frames_restored} of {result.frames} with {', '.join(result.models)} "
        f"({result.frames_from_raw_store} read back from the raw store)",
    )
    table.add_row("latency", _latency_text(result, interval_s))
    table.add_row(
        "vs ground truth",
        f"NRMSE raw {result.nrmse_raw:.4f}, richardson-lucy {result.nrmse_richardson_lucy:.4f}"
        f", {result.models[0]} {result.nrmse_restored:.4f} (last frame; lower is better)",
    )
    table.add_row("saved", str(result.out))
    console.print(table)


def _latency_text(result: DemoResult, interval_s: float) -> str:
    """Median and p99 latency, and whether restoration kept up with the frame interval."""
    p50_s, p99_s = result.stats.latency_p50_ms / 1e3, result.stats.latency_p99_ms / 1e3
    text = f"p50 {p50_s:.2f} s, p99 {p99_s:.2f} s (frame received -> restored)"
    if interval_s > 0:
        verdict = "kept up" if p50_s <= interval_s else "fell behind"
        text += f"; {verdict}: p50 = {p50_s / interval_s:.2f} frame intervals of {interval_s:g} s"
    return text + f"; {result.finish_seconds:.1f} s to finish after the acquisition"
