"""The ``live-restore`` command line (typer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ._cli_adapt import adapt
from ._cli_common import RepeatedErrors, console
from ._cli_common import fail as _fail
from ._cli_common import progress as _progress
from ._cli_demo import demo
from ._cli_export import export_app
from ._cli_inference import bench_command, engines_app, precision_check_command
from ._cli_options import (
    BackendOption,
    ConfigOption,
    MemoryOption,
    ModelsOption,
    OldProcessOption,
    OverwriteOption,
    PolicyOption,
    ScreenshotOption,
    check_backend,
    check_policy,
    config_from_options,
    open_window,
    prepare_out,
)
from ._cli_serving import inspect, restore, serve
from ._cli_training import calibrate_trust, evaluate_model, simulate, train
from ._version import __version__

app = typer.Typer(
    name="live-restore",
    help="Real-time restoration of Micro-Manager acquisitions, with a simulated microscope.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(engines_app, name="engines")
app.add_typer(export_app, name="export")
app.command("bench")(bench_command)
app.command("precision-check")(precision_check_command)
app.command()(demo)
app.command()(train)
app.command("eval")(evaluate_model)
app.command("calibrate-trust")(calibrate_trust)
app.command()(adapt)
app.command()(simulate)
app.command()(restore)
app.command()(serve)
app.command()(inspect)


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        console.print(f"live-restore {__version__}")
        raise typer.Exit()


@app.command()
def gui(
    config: ConfigOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for restored stores (run-N per acquisition); default: none."),
    ] = None,
    model: ModelsOption = None,
    backend: BackendOption = "auto",
    policy: PolicyOption = "all",
    process: OldProcessOption = None,
    screenshot: ScreenshotOption = None,
) -> None:
    """Napari with microscope controls (pymmcore-widgets) and the Live Restore dock.

    Press Start in the dock, then run an MDA from the MDA tab (or live mode): every frame is
    restored off the acquisition thread and shown beside the raw one.
    """
    policy = check_policy(policy, process)
    check_backend(backend)
    if config is not None and not config.is_file():
        raise _fail(f"Micro-Manager config not found: {config}")
    open_window(config, out, model, backend, policy, None, screenshot)


@app.command()
def acquire(
    config: ConfigOption = None,
    sequence: Annotated[
        Path, typer.Option(help="useq-schema MDA sequence (.yaml, .yml or .json).")
    ] = Path("sequence.yaml"),
    model: ModelsOption = None,
    hook_config: Annotated[
        Path | None,
        typer.Option(
            "--hook-config",
            help="A saved hook configuration (YAML/JSON: models, backend, policy, focus, ...), "
            "e.g. from the napari dock's Save; instead of -m/--backend/--policy/--memory-mb.",
        ),
    ] = None,
    backend: BackendOption = "auto",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output folder: raw.ome.zarr, <model>.ome.zarr, frames.csv (default: the "
            "hook config's output, else ./acquisition)."
        ),
    ] = None,
    policy: PolicyOption = "all",
    process: OldProcessOption = None,
    memory_mb: MemoryOption = 512.0,
    executor: Annotated[
        str,
        typer.Option(
            help="Where stages run: thread (the hook's worker thread) or process (a worker "
            "process that owns the models: CPU-heavy stages then leave the camera its cores "
            "and the GIL; a crash of it is reported per frame and it restarts)."
        ),
    ] = "thread",
    server: Annotated[
        str | None,
        typer.Option(
            metavar="grpc://HOST:PORT",
            help="Run the models on this Triton server (`live-restore serve`) instead: one GPU "
            "machine for several microscopes.",
        ),
    ] = None,
    interp_factor: Annotated[
        int,
        typer.Option(
            min=2,
            max=16,
            help="With -m interp-t (or interp-z): full-rate frames per acquired step. Acquire "
            "every k-th time point (plane), with the light of k times fewer frames; k-1 are "
            "filled in between, saved in OUT/interp-t.ome.zarr on the full-rate axis.",
        ),
    ] = 2,
    window_mode: Annotated[
        str,
        typer.Option(
            help="With -m mfsr-sr2x: centred (each frame fused with 2 before and 2 after it: "
            "better, 2 frames of latency) or causal (the newest frame with the ones before it: "
            "no added latency)."
        ),
    ] = "centred",
    overwrite: OverwriteOption = False,
) -> None:
    """Run any MDA on any Micro-Manager config, restoring every frame while it acquires.

    Raw frames are saved by pymmcore-plus as OUT/raw.ome.zarr; each model's output goes to
    OUT/<model>.ome.zarr (pixel size divided by the model's scale), with OUT/frames.csv (one
    row per frame and model: latency, status, errors) and OUT/summary.json (provenance).
    """
    import useq

    from .acquisition import ConfigError, HookConfig, build_hook
    from .devices import demo_core, release_core, sequence_problems

    if hook_config is not None:
        if model:
            raise _fail("give the models with -m or in --hook-config, not both")
        if executor != "thread" or server is not None:
            raise _fail("give the executor in --hook-config (executor: ...), not both")
        try:
            settings = HookConfig.from_file(hook_config)
        except ConfigError as e:
            raise _fail(str(e)) from None
    else:
        policy = check_policy(policy, process)
        check_backend(backend)
        if executor not in ("thread", "process"):
            raise _fail(f"--executor must be thread or process, not {executor!r}")
        if server is not None:
            if executor != "thread":
                raise _fail("give --executor process or --server, not both")
            executor = server
        settings = config_from_options(
            {
                "models": model or ["richardson-lucy"],
                "backend": backend,
                "policy": policy,
                "memory_mb": memory_mb,
                "executor": executor,
                "interp_factor": interp_factor,
                "window_mode": window_mode,
            },
            {"models": "-m", "executor": "--server" if server is not None else "--executor"},
        )
    # --out wins over the file's output; the command's own bars show progress
    out = out or settings.output or Path("acquisition")
    # acquire runs one MDA and exits: live mode never happens here
    settings = settings.model_copy(update={"output": out, "progress": False, "live": False})
    if not sequence.is_file():
        raise _fail(f"sequence file not found: {sequence}")
    try:
        mda = useq.MDASequence.from_file(sequence)
    except Exception as e:
        raise _fail(f"{sequence} is not a valid useq-schema MDA sequence: {e}") from None
    try:
        core = demo_core(config)
    except (FileNotFoundError, RuntimeError) as e:
        raise _fail(str(e)) from None
    try:
        problems = sequence_problems(core, mda)
        if problems:
            raise _fail(f"{sequence} cannot run on this config: {'; '.join(problems)}")
        try:
            hook = build_hook(core, settings)
        except (ValueError, RuntimeError) as e:
            raise _fail(str(e)) from None
        try:
            prepare_out(out, overwrite)  # last: an --overwrite is not spent on a failed start
        except BaseException:
            hook.close()  # a worker process it started goes with it
            raise
        _acquire_with_bars(core, hook, mda)
    finally:
        release_core(core)
    report = hook.report
    if report.frames_received == 0:
        # nothing was acquired: leave nothing that looks like a run
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        raise _fail(
            f"the acquisition delivered no frames (see the log above); nothing was saved in {out}"
        )
    console.print(_acquire_table(report, settings.models, out))
    incomplete = report.frames_unsaved or report.frames_dropped or not report.complete
    if report.frames_failed or report.disabled_stages or incomplete:
        raise typer.Exit(code=1)  # frames.csv and summary.json name each one


def _acquire_with_bars(core: Any, hook: Any, mda: Any) -> None:
    """Run ``mda`` with the hook open: bars for acquiring and the first stage, errors grouped."""
    first = hook.stages[0][0]
    with _progress() as progress:
        acquiring = progress.add_task("acquiring", total=len(list(mda.iter_events())))
        restoring = progress.add_task(f"restoring ({first})", total=hook.outputs_for(mda))
        done = {"acquired": 0, "restored": 0}

        def _acquired(*_: Any) -> None:
            done["acquired"] += 1
            progress.update(acquiring, completed=done["acquired"])

        def _restored(frame: Any) -> None:
            if frame.stage == first:
                done["restored"] += 1
                progress.update(restoring, completed=done["restored"])

        core.mda.events.frameReady.connect(_acquired)
        hook.events.restored.connect(_restored)
        errors = RepeatedErrors()
        hook.events.error.connect(errors)
        with hook:
            hook.run(mda)
        errors.flush()
        core.mda.events.frameReady.disconnect(_acquired)


def _acquire_table(report: Any, models: list[str], out: Path) -> Table:
    """What acquire did, for the console (frames.csv and summary.json name each frame)."""
    table = Table(title="live-restore acquire", show_header=False)
    table.add_row("frames acquired", str(report.frames_received))
    table.add_row("restored", f"{report.frames_restored} ({', '.join(models)})")
    table.add_row("failed / skipped", f"{report.frames_failed} / {report.frames_skipped}")
    not_kept = f"{report.frames_unsaved} / {len(report.undone)} / {report.frames_dropped}"
    table.add_row("not saved / undone / dropped", not_kept)
    table.add_row("read back from raw store", str(report.frames_from_raw_store))
    table.add_row("saved", str(out))
    return table


@app.command("models")
def models_list() -> None:
    """List the restoration models this installation can run (model-free and trained)."""
    from .acquisition import RESTORERS, shipped_model_names, trust_calibrated
    from .inference import TrustCalibration
    from .models import ModelLoadError, model_dir, read_spec

    table = Table(title="models")
    table.add_column("name")
    table.add_column("what it does")
    table.add_column("trained")
    for name, (_, description) in RESTORERS.items():
        table.add_row(name, description, "(model-free)")
    for name in shipped_model_names():
        try:
            spec = read_spec(model_dir(name))
        except ModelLoadError as error:
            table.add_row(name, f"[red]unreadable: {error}[/]", "")
            continue
        training = spec.training
        table.add_row(
            name,
            f"{spec.task.value}: {training.get('description', spec.architecture)}",
            f"{training.get('steps', '?')} steps on {training.get('device', '?')}",
        )
    for name in trust_calibrated(shipped_model_names()):
        try:
            calibration = TrustCalibration.read(model_dir(name))
        except ValueError as error:  # one bad file must not hide the other models
            table.add_row(f"{name}+trust", "[red]unusable trust calibration[/red]", str(error))
            continue
        measured = calibration.details.get("candidates", {}).get(calibration.method, {})
        table.add_row(
            f"{name}+trust",
            f"{name}'s per-pixel trust map: sigma, its expected error ({calibration.method}: "
            f"{measured.get('cost_ratio', '?')}x a restoration's time)",
            f"calibrated (trust.yaml): {calibration.coverage_2sigma:.0%} within 2 sigma",
        )
    console.print(table)
