"""The ``live-restore`` command line (typer)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ._cli_common import console
from ._cli_common import fail as _fail
from ._cli_common import progress as _progress
from ._cli_inference import bench_command, engines_app
from ._version import __version__

if TYPE_CHECKING:
    from ._demo import DemoSettings

app = typer.Typer(
    name="live-restore",
    help="Real-time restoration of Micro-Manager acquisitions, with a simulated microscope.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(engines_app, name="engines")
app.command("bench")(bench_command)


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        console.print(f"live-restore {__version__}")
        raise typer.Exit()


def _model_names() -> list[str]:
    from .acquisition import restorer_names

    return restorer_names()


# options shared by `demo` and `acquire`
ModelsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        help="Restoration model (repeat for several): " + ", ".join(_model_names()) + ".",
    ),
]
OutFolderOption = Annotated[
    Path, typer.Option(help="Output folder: raw.ome.zarr, <model>.ome.zarr, frames.csv.")
]
ProcessOption = Annotated[
    str, typer.Option(help="all: restore every frame; latest: newest frame wins (display).")
]
MemoryOption = Annotated[
    float, typer.Option(min=1.0, help="Most memory the hook holds frames in (MB).")
]
OverwriteOption = Annotated[bool, typer.Option(help="Replace an existing output.")]
ConfigOption = Annotated[
    Path | None,
    typer.Option(help="Micro-Manager config (default: the simulated microscope)."),
]
BackendOption = Annotated[
    str,
    typer.Option(
        help="Where trained models run: auto (the fastest here: tensorrt, torch-cuda, "
        "torch-cpu, in that order), tensorrt, torch-cuda, torch-cpu, onnxruntime."
    ),
]
ScreenshotOption = Annotated[
    Path | None,
    typer.Option(help="Save the window as PNG here once the frames are restored, then close it."),
]


def _check_backend(backend: str) -> None:
    """Refuse an unknown backend, or one this machine cannot run, before anything starts."""
    from .inference import resolve_backend

    try:
        resolve_backend(backend)
    except (ValueError, RuntimeError) as error:
        raise _fail(str(error)) from None


def _open_window(
    config: Path | None,
    out: Path | None,
    models: list[str] | None,
    backend: str,
    process: str,
    demo: DemoSettings | None,
    screenshot: Path | None,
) -> None:
    """Run the napari window (the gui command, and the demo without --headless)."""
    try:
        from .viewer import run_window
    except ImportError as e:
        raise _fail(
            f"the napari window needs the GUI extras ({e.name} is missing): "
            "pip install 'live-restore[gui]', or use --headless"
        ) from None
    try:
        result = run_window(
            config,
            output=out,
            models=models,
            backend=backend,
            process=process,
            demo=demo,
            screenshot=screenshot,
        )
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise _fail(str(e)) from None
    console.print(
        f"window closed: {result.frames_restored} of {result.frames_received} frames restored, "
        f"{result.display_updates} display updates"
        + (f", screenshot {result.screenshot}" if result.screenshot else "")
        + (f", saved in {out}" if out else "")
    )


def _check_policy(process: str) -> None:
    if process not in ("all", "latest"):
        raise _fail(f"--process must be 'all' or 'latest', got {process!r}")


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists():
        if not overwrite:
            raise _fail(f"{out} already exists; choose another path or pass --overwrite")
        import shutil

        shutil.rmtree(out) if out.is_dir() else out.unlink()


@app.command()
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
        float, typer.Option(min=0.0, help="Time between frames (s); 0 = as fast as possible.")
    ] = 0.0,
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
    process: ProcessOption = "all",
    memory_mb: MemoryOption = 512.0,
    overwrite: OverwriteOption = False,
    screenshot: ScreenshotOption = None,
) -> None:
    """Simulated low-light time-lapse, restored while it acquires, saved as OME-Zarr.

    Without --headless, napari opens with raw and restored side by side, the microscope
    controls and the Live Restore dock, the time-lapse already running; close the window to end.

    The sample is rendered from physics (NA 1.49 oil, 525 nm, 65 nm pixels) with Poisson shot
    noise and camera read noise; the light level sets the photon budget. Each frame is restored
    off the acquisition thread (default: DFCAN 2x super-resolution, its CPU variant
    dfcan-sr2x-lite when torch sees no GPU) and the last frame is scored against the
    simulator's ground truth.
    """
    from ._demo import run_demo

    _check_policy(process)
    _check_backend(backend)
    models = model or ["dfcan-sr2x"]
    _prepare_out(out, overwrite)
    watch = watch_focus if watch_focus is not None else (drift != 0.0 or hold_focus)
    if hold_focus and not watch:
        raise _fail("--hold-focus needs the focus monitor: drop --no-watch-focus")
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
            raise _fail(str(e)) from None
        _open_window(None, out, models, backend, process, settings, screenshot)
        return
    if screenshot is not None:
        raise _fail("--screenshot needs the window: drop --headless")
    with _progress() as progress:
        acquiring = progress.add_task("acquiring", total=frames)
        restoring = progress.add_task(f"restoring ({models[0]})", total=frames)
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
                process=process,
                memory_mb=memory_mb,
                on_frame=lambda n: progress.update(acquiring, completed=n),
                on_restored=lambda n: progress.update(restoring, completed=n),
                progress=False,
            )
        except (ValueError, FileExistsError, RuntimeError) as e:
            raise _fail(str(e)) from None
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
    table.add_row(
        "latency",
        f"p50 {result.stats.latency_p50_ms:.0f} ms, p99 {result.stats.latency_p99_ms:.0f} ms "
        f"(receipt -> restored); {result.finish_seconds:.1f} s to finish after acquisition",
    )
    table.add_row(
        "vs ground truth",
        f"NRMSE raw {result.nrmse_raw:.4f} -> {result.models[0]} {result.nrmse_restored:.4f} "
        "(last frame)",
    )
    table.add_row("saved", str(result.out))
    console.print(table)


@app.command()
def gui(
    config: ConfigOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for restored stores (run-N per acquisition); default: none."),
    ] = None,
    model: ModelsOption = None,
    backend: BackendOption = "auto",
    process: ProcessOption = "all",
    screenshot: ScreenshotOption = None,
) -> None:
    """Napari with microscope controls (pymmcore-widgets) and the Live Restore dock.

    Press Start in the dock, then run an MDA from the MDA tab (or live mode): every frame is
    restored off the acquisition thread and shown beside the raw one.
    """
    _check_policy(process)
    _check_backend(backend)
    if config is not None and not config.is_file():
        raise _fail(f"Micro-Manager config not found: {config}")
    _open_window(config, out, model, backend, process, None, screenshot)


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
            "e.g. from the napari dock's Save; instead of -m/--backend/--process/--memory-mb.",
        ),
    ] = None,
    backend: BackendOption = "auto",
    out: OutFolderOption = Path("acquisition"),
    process: ProcessOption = "all",
    memory_mb: MemoryOption = 512.0,
    overwrite: OverwriteOption = False,
) -> None:
    """Run any MDA on any Micro-Manager config, restoring every frame while it acquires.

    Raw frames are saved by pymmcore-plus as OUT/raw.ome.zarr; each model's output goes to
    OUT/<model>.ome.zarr (pixel size divided by the model's scale), with OUT/frames.csv (one
    row per frame and model: latency, status, errors) and OUT/summary.json (provenance).
    """
    import useq

    from .acquisition import ConfigError, HookConfig, build_hook
    from .devices import demo_core, release_core

    if hook_config is not None:
        if model:
            raise _fail("give the models with -m or in --hook-config, not both")
        try:
            settings = HookConfig.from_file(hook_config)
        except ConfigError as e:
            raise _fail(str(e)) from None
    else:
        _check_policy(process)
        _check_backend(backend)
        settings = HookConfig.model_validate(
            {
                "models": model or ["richardson-lucy"],
                "backend": backend,
                "process": process,
                "memory_mb": memory_mb,
            }
        )
    # the command's own bars show progress; --out names the folder whatever the file says
    settings = settings.model_copy(update={"output": out, "progress": False})
    if not sequence.is_file():
        raise _fail(f"sequence file not found: {sequence}")
    try:
        mda = useq.MDASequence.from_file(sequence)
    except Exception as e:
        raise _fail(f"{sequence} is not a valid useq-schema MDA sequence: {e}") from None
    _prepare_out(out, overwrite)
    try:
        core = demo_core(config)
    except (FileNotFoundError, RuntimeError) as e:
        raise _fail(str(e)) from None
    try:
        try:
            hook = build_hook(core, settings)
        except (ValueError, RuntimeError) as e:
            raise _fail(str(e)) from None
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
            hook.events.error.connect(
                lambda e: console.print(f"[yellow]{e.stage}[/] frame {e.frame}: {e.message}")
            )
            with hook:
                hook.run(mda)
            core.mda.events.frameReady.disconnect(_acquired)
    finally:
        release_core(core)
    report = hook.report
    table = Table(title="live-restore acquire", show_header=False)
    table.add_row("frames acquired", str(report.frames_received))
    table.add_row("restored", f"{report.frames_restored} ({', '.join(settings.models)})")
    table.add_row("failed / skipped", f"{report.frames_failed} / {report.frames_skipped}")
    table.add_row("read back from raw store", str(report.frames_from_raw_store))
    table.add_row("saved", str(out))
    console.print(table)
    if report.frames_failed or report.disabled_stages:
        raise typer.Exit(code=1)


@app.command("models")
def models_list() -> None:
    """List the restoration models this installation can run (model-free and trained)."""
    from .acquisition import RESTORERS, shipped_model_names
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
    console.print(table)


def _photon_range(text: str) -> tuple[float, float]:
    """``LOW,HIGH`` -> (low, high), or a clear error."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise _fail(f"--photon-range takes LOW,HIGH (e.g. 10,150), got {text!r}") from None
    return low, high


@app.command()
def train(
    name: Annotated[
        str,
        typer.Argument(
            help="Model to train: dfcan-sr2x, dfcan-sr2x-lite, "
            "focus-est, refocus (refocus needs focus-est)."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option(help="Model folder (default: engines/NAME, the shipped one).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(min=1, help="Training steps (default: recipe).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Examples per step.")] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Peak learning rate (cosine).")
    ] = None,
    fields_per_structure: Annotated[
        int | None, typer.Option(min=1, help="Simulated fields of view per structure.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of data, noise and initial weights.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.safetensors.")] = False,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Train on files instead: a BioSR folder (Cell_*/*.mrc) or paired "
            "TIFFs (input/, target/). Super-resolution models only."
        ),
    ] = None,
    init_from: Annotated[
        str | None,
        typer.Option(
            help="Start from a trained model (name or folder): a DFCAN from a smaller one "
            "(e.g. dfcan-sr2x-lite), grown to this size with its function kept (Net2Net); any "
            "model from one of the same architecture and size, to fine-tune it."
        ),
    ] = None,
    photon_range: Annotated[
        str | None,
        typer.Option(
            help="Peak photons per pixel to train and validate at, as LOW,HIGH (log-uniform; "
            "default: the recipe's), e.g. 10,150 to fine-tune for low light."
        ),
    ] = None,
    warmup_steps: Annotated[
        int, typer.Option(min=0, help="Steps of linear learning-rate warm-up before the cosine.")
    ] = 0,
) -> None:
    """Train a model on endless simulated pairs; write weights.safetensors and model.yaml.

    Every example draws a photon level, fresh camera noise, a crop and a rotation from fields
    of view rendered once by the simulator. Progress, loss and validation NRMSE (or defocus
    error) show as it runs; history.csv keeps them; a checkpoint is saved every 100 steps.
    """
    from .models import ModelLoadError, engines_dir
    from .training import RECIPES, train_model

    if name not in RECIPES:
        raise _fail(f"no training recipe for {name!r}; known: {', '.join(RECIPES)}")
    folder = out or engines_dir() / name
    photons = _photon_range(photon_range) if photon_range else None
    try:
        _, result = train_model(
            name,
            folder,
            steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            resume=resume,
            fields_per_structure=fields_per_structure,
            data=data,
            init_from=init_from,
            photon_range=photons,
            warmup_steps=warmup_steps,
        )
    except (ValueError, FileNotFoundError, FloatingPointError, ModelLoadError) as e:
        raise _fail(str(e)) from None
    validation = ", ".join(f"{k} {v:.4g}" for k, v in result.validation.items())
    console.print(
        f"trained {name}: {result.steps_done} steps in {result.seconds / 60:.1f} min, "
        f"final loss {result.final_loss:.4g}, {validation}; written to {folder}"
    )


@app.command("eval")
def evaluate_model(
    name: Annotated[str, typer.Argument(help="Shipped model name or model folder.")],
    fields: Annotated[int, typer.Option(min=1, help="Held-out fields per structure.")] = 3,
    out: Annotated[Path, typer.Option(help="Folder for the table (CSV) and plot (PNG).")] = Path(
        "benchmarks/eval"
    ),
    record: Annotated[
        bool, typer.Option(help="Write the summary into the model's model.yaml (evaluation).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the held-out noise.")] = 0,
    structures: Annotated[
        str, typer.Option(help="Comma-separated structures (default: all six).")
    ] = ",".join(("microtubules", "clathrin", "er", "f-actin", "mitochondria", "nuclei")),
) -> None:
    """Score a model on held-out simulated data against the ground truth.

    Super-resolution: PSNR and MS-SSIM per structure x photon level for the input (bicubic
    widefield), Richardson-Lucy and the model, plus an evaluation-matrix PNG. Focus: error in
    µm and in/out-of-focus accuracy. Refocus: PSNR gain per defocus distance. SIM
    (dfcan-sim): widefield vs the classical reconstruction (its best Wiener constant per light
    level) vs the model, per structure x photon level.
    """
    from .models import ModelLoadError
    from .training._evaluate import evaluate, plot_sr_matrix, write_table

    try:
        kind, rows = evaluate(
            name, fields=fields, seed=seed, structures=[s.strip() for s in structures.split(",")]
        )
    except (ModelLoadError, ValueError) as e:
        raise _fail(str(e)) from None
    stem = Path(name).name
    table_path = write_table(rows, out / f"{stem}.csv")
    table = Table(title=f"{stem} on held-out simulated data ({kind})")
    keys = list(rows[0].condition) + list(rows[0].scores)
    for key in keys:
        table.add_column(key.replace("richardson-lucy", "RL"))
    for row in rows:
        values = [*row.condition.values(), *row.scores.values()]
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values))
    console.print(table)
    console.print(f"table: {table_path}")
    if kind == "sr":
        plot = plot_sr_matrix(rows, out / f"{stem}.png", f"{stem}: held-out simulated data")
        console.print(f"evaluation matrix: {plot}")
    if record:
        from .training._evaluate import record_summary

        console.print(f"recorded in {record_summary(name, kind, rows)}")


@app.command()
def simulate(
    kind: Annotated[str, typer.Argument(help="sr-pairs | defocus | sim")],
    out: Annotated[Path, typer.Option(help="Output folder (must not exist).")],
    structures: Annotated[str, typer.Option(help="Comma-separated structures.")] = "microtubules",
    photons: Annotated[
        str, typer.Option(help="Comma-separated peak photons per pixel.")
    ] = "20,50,100",
    n: Annotated[int, typer.Option(help="Samples per structure x photon level.")] = 4,
    frame_size: Annotated[int, typer.Option(help="Square frame side (even, 32-4096).")] = 128,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same dataset.")] = 0,
    fmt: Annotated[
        str, typer.Option("--format", help="zarr (OME-Zarr) or tiff (OME-TIFF).")
    ] = "zarr",
    defocus_range_um: Annotated[float, typer.Option(help="Focus series: ± range (µm).")] = 2.0,
    defocus_step_um: Annotated[float, typer.Option(help="Focus series: step (µm).")] = 0.25,
) -> None:
    """Write a simulated dataset with ground truth, for training and evaluation.

    sr-pairs: low-light widefield frames + in-focus widefield + 2x SR ground truth.
    defocus: focus series through known defocus. sim: 9-frame SIM raw sets + 2x ground truth.
    """
    from .simulate import DatasetKind, DatasetSpec, write_dataset

    try:
        spec = DatasetSpec(
            kind=DatasetKind(kind),
            structures=[s.strip() for s in structures.split(",") if s.strip()],
            photon_levels=[float(p) for p in photons.split(",") if p.strip()],
            samples_per_combination=n,
            frame_size=frame_size,
            seed=seed,
            defocus_range_um=defocus_range_um,
            defocus_step_um=defocus_step_um,
        )
        spec.validate()
    except ValueError as e:
        allowed = ", ".join(k.value for k in DatasetKind)
        raise _fail(f"{e} (dataset kinds: {allowed})") from None
    with _progress() as progress:
        task = progress.add_task(f"rendering {kind}", total=spec.count)
        try:
            path = write_dataset(
                spec, out, fmt, lambda done, _total: progress.update(task, completed=done)
            )
        except (ValueError, FileExistsError) as e:
            raise _fail(str(e)) from None
    console.print(f"wrote {spec.count} samples to [bold]{path}[/]")
