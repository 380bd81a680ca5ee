"""``live-restore restore`` (batch restoration on Dask) and ``serve`` (a Triton server)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._cli_common import console, fail, grouped_lines, progress
from ._cli_options import BackendOption, check_backend

__all__ = ["inspect", "restore", "serve"]


def restore(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT.ome.zarr",
            help="An OME-Zarr image: a raw store of `acquire` or the demo, or any pymmcore-plus "
            "or OME-Zarr writer's (last two axes y, x).",
        ),
    ],
    model: Annotated[
        str, typer.Option("-m", "--model", help="The restorer or shipped model to run.")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", metavar="OUTPUT.ome.zarr", help="Where the restored image goes."),
    ],
    scheduler: Annotated[
        str,
        typer.Option(
            help="'local': a Dask LocalCluster on loopback; or a running scheduler's address "
            "(tcp://HOST:8786), whose workers must see INPUT and OUTPUT at the same paths."
        ),
    ] = "local",
    workers: Annotated[int, typer.Option(min=1, help="Worker processes of the local cluster.")] = 1,
    frames_per_task: Annotated[int, typer.Option(min=1, help="Output frames per Dask task.")] = 1,
    backend: BackendOption = "auto",
    interp_factor: Annotated[
        int,
        typer.Option(
            min=2, max=16, help="With interp-t / interp-z: full-rate frames per acquired step."
        ),
    ] = 2,
    window_mode: Annotated[
        str, typer.Option(help="With mfsr-sr2x: centred (both sides) or causal (before only).")
    ] = "centred",
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace an earlier restoration at OUTPUT (never anything else); without it "
            "a rerun resumes where it stopped."
        ),
    ] = False,
) -> None:
    """Restore every frame of a finished acquisition with any model, on Dask.

    Each frame is one task: workers read it from INPUT, restore it (a large frame in tiles
    with blended halos, as live) and write it to its own chunk of OUTPUT, with the model's
    provenance. Rerun the same command to resume after an interruption: frames already
    written are skipped. Exits 1 when any frame failed; they are named.
    """
    from .serving import ZarrImageError, restore_store

    check_backend(backend)
    with progress() as bar:
        task = bar.add_task(f"restoring ({model})", total=None)
        try:
            report = restore_store(
                input_path,
                model,
                out,
                scheduler=scheduler,
                workers=workers,
                backend=backend,
                frames_per_task=frames_per_task,
                overwrite=overwrite,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
                interp_factor=interp_factor,
                window_mode=window_mode,
            )
        except (ZarrImageError, ValueError, ConnectionError) as e:
            raise fail(str(e)) from None
    table = Table(title="live-restore restore", show_header=False)
    table.add_row("frames", str(report.total))
    table.add_row("written now / resumed", f"{report.written_now} / {report.resumed}")
    table.add_row("failed", str(len(report.failed)))
    table.add_row("absent from the input", str(len(report.absent)))
    table.add_row("saved", str(report.output))
    console.print(table)
    for line in grouped_lines("failed", report.failed) + grouped_lines("missing", report.absent):
        console.print(line, soft_wrap=True, markup=False)
    if not report.complete:
        raise typer.Exit(code=1)


def inspect(
    run_folder: Annotated[
        Path, typer.Argument(help="A run folder of acquire, the demo or a RestoreHook.")
    ],
) -> None:
    """What a run acquired, restored and is missing, by index; also after a crash.

    Reads the raw store (which frames were written: chunks that exist), frames.csv (each
    stage's outcomes, flushed row by row) and summary.json (written at the start, replaced at
    the end: one still marked running means the run never finished). Exits 1 when anything is
    missing or the run did not finish.
    """
    from .serving import ZarrImageError, inspect_run

    try:
        found = inspect_run(run_folder)
    except ZarrImageError as e:
        raise fail(str(e)) from None
    table = Table(title=f"live-restore inspect {run_folder}", show_header=False)
    table.add_row("finished", str(found.finished or "no: the run never finished (crashed?)"))
    table.add_row("raw frames written / planned", f"{found.acquired} / {found.planned}")
    for stage in found.stages:
        statuses = ", ".join(f"{n} {status}" for status, n in stage.by_status.items()) or "none"
        never = f"; {len(stage.never_reached)} frames never reached" if stage.never_reached else ""
        table.add_row(stage.name, statuses + never)
    console.print(table)
    lines = grouped_lines("not written", dict.fromkeys(found.not_written, "raw frame"))
    for stage in found.stages:
        lines += grouped_lines(
            f"{stage.name}: not reached",
            dict.fromkeys(stage.never_reached, "the run ended before it"),
        )
    for line in lines:
        console.print(line, soft_wrap=True, markup=False)
    if not found.complete:
        raise typer.Exit(code=1)


def _serve_python() -> Path | None:
    """The interpreter of the server environment (see ``serve``), or None."""
    import importlib.util
    import os
    import sys

    given = os.environ.get("LIVE_RESTORE_SERVE_PYTHON")
    if given:
        return Path(given)
    if importlib.util.find_spec("pytriton") is not None:
        import numpy

        if int(numpy.__version__.split(".")[0]) < 2:
            return Path(sys.executable)  # this environment can serve (NumPy 1, PyTriton)
    beside = Path(sys.prefix).parent / ".venv-serve" / "bin" / "python"  # `make serve-env`
    return beside if beside.is_file() else None


def serve(
    model: Annotated[
        list[str],
        typer.Option("-m", "--model", help="A shipped model to serve (again for each)."),
    ],
    grpc_port: Annotated[int, typer.Option(help="gRPC port (what clients use).")] = 8001,
    http_port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    metrics_port: Annotated[int, typer.Option(help="Prometheus metrics port.")] = 8002,
    host: Annotated[
        str,
        typer.Option(
            help="Interface to bind: loopback by default; 0.0.0.0 (or a LAN address) lets other "
            "machines in: only on a network you trust (there is no authentication)."
        ),
    ] = "127.0.0.1",
    backend: BackendOption = "auto",
    max_batch: Annotated[
        int, typer.Option(min=1, help="Largest batch Triton's dynamic batcher forms.")
    ] = 8,
    max_request_mpx: Annotated[
        float,
        typer.Option(min=0.01, help="Largest request (input megapixels); bigger ones are refused."),
    ] = 20.0,
    queue_timeout_s: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="A request waiting longer than this behind others is refused (so one huge "
            "request cannot starve the other microscopes).",
        ),
    ] = 30.0,
) -> None:
    """Serve models to several microscopes from one machine: a Triton inference server.

    Starts NVIDIA Triton (PyTriton) with each model under its own name and dynamic batching,
    on the GPU where there is one: single-frame models, SIM (9-frame sets), mfsr (windows),
    interp-t / interp-z (pairs and their fractions), and NAME-trust beside each model with a
    trust calibration (for NAME+trust stages). Clients: `acquire --server grpc://HOST:8001`, a
    HookConfig with `executor: grpc://HOST:8001`, or `load_model(NAME,
    server="grpc://HOST:8001")`; every answer carries the sha256 of the weights that made it,
    and clients refuse other weights.
    Runs until Ctrl-C or SIGTERM. PyTriton needs NumPy 1 and the rest of live-restore NumPy 2,
    so the server runs in its own environment: `make serve-env` (or set
    LIVE_RESTORE_SERVE_PYTHON to an interpreter with nvidia-pytriton, torch and live-restore).
    """
    import os
    import sys
    import sysconfig

    from .acquisition import shipped_model_names

    check_backend(backend)
    # every shipped model but the focus estimator (it runs beside the camera, every frame)
    servable = [n for n in shipped_model_names() if n != "focus-est"]
    unknown = [m for m in model if m not in servable]
    if unknown:
        raise fail(
            f"cannot serve {', '.join(unknown)}: the servable models are {', '.join(servable)}"
        )
    python = _serve_python()
    if python is None or not python.is_file():
        raise fail(
            "no server environment: run `make serve-env` (PyTriton needs NumPy 1, which this "
            "environment cannot have), or set LIVE_RESTORE_SERVE_PYTHON"
        )
    import subprocess

    libdir = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip() or str(sysconfig.get_config_var("LIBDIR"))
    env = dict(os.environ)
    # PyTriton's stub links a libpython; the server interpreter's own, not the system's
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [libdir, env.get("LD_LIBRARY_PATH")]))
    args = [str(python), "-m", "live_restore.serving._triton_server", "--models", *model]
    args += ["--host", host, "--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    args += ["--metrics-port", str(metrics_port), "--backend", backend]
    args += ["--max-batch", str(max_batch), "--max-request-mpx", str(max_request_mpx)]
    args += ["--queue-timeout-s", str(queue_timeout_s)]
    console.print(f"serving {', '.join(model)} on grpc://{host}:{grpc_port} (Ctrl-C stops it)")
    # flush before exec: what was printed must not be lost with the old process image
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(str(python), args, env)  # the server takes this process: its PID is ours
