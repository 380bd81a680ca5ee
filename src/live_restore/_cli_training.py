"""``live-restore train``, ``eval`` and ``simulate``: models and data from the simulator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ._cli_common import console, fail, progress

if TYPE_CHECKING:
    from .training import EvalRow, TrainResult

__all__ = ["calibrate_trust", "evaluate_model", "simulate", "train"]


def _photon_range(text: str) -> tuple[float, float]:
    """``LOW,HIGH`` -> (low, high), or a clear error."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise fail(f"--photon-range takes LOW,HIGH (e.g. 10,150), got {text!r}") from None
    return low, high


def train(
    name: Annotated[
        str,
        typer.Argument(
            help="Model to train: dfcan-sr2x, dfcan-sr2x-lite, dfcan-sr2x-tiny, dfgan-sr2x, "
            "dfgan-sr2x-tiny (DFGAN: fine-tunes the DFCAN of its size against a "
            "discriminator), focus-est, refocus (refocus needs focus-est), interp-t, interp-z, "
            "mfsr-sr2x."
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
    max_minutes: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Stop after this much wall-clock time (a lent GPU's minutes), writing the "
            "weights reached; model.yaml records the steps done.",
        ),
    ] = None,
    world: Annotated[
        bool,
        typer.Option(
            help="interp-z: fine-tune on the wider simulated world (sample families, NA "
            "0.8-1.49, 450-680 nm, sCMOS maps or EMCCD, autofluorescence), from --init-from "
            "(default: the shipped interp-z). The shipped one: --world --leave-out filaments."
        ),
    ] = False,
    leave_out: Annotated[
        str | None,
        typer.Option(
            help="With --world: families to leave out of training, comma-separated "
            "(layers, filaments, puncta, organelles)."
        ),
    ] = None,
) -> None:
    """Train a model on endless simulated pairs; write weights.safetensors and model.yaml.

    Every example draws a photon level, fresh camera noise, a crop and a rotation from fields
    of view rendered once by the simulator. Progress, loss and validation NRMSE (or defocus
    error) show as it runs; history.csv keeps them; a checkpoint is saved every 100 steps.
    """
    from .models import ModelLoadError, engines_dir
    from .training import INTERP_MODELS, RECIPES, train_model

    max_seconds = None if max_minutes is None else 60.0 * max_minutes

    if world or leave_out:
        if name != "interp-z" or not world:
            raise fail("--world (and --leave-out with it) trains interp-z only")
        _train_world(out or engines_dir() / name, init_from or "interp-z", leave_out, steps, seed)
        return
    if name == "mfsr-sr2x" or name in INTERP_MODELS:
        _train_new(name, out or engines_dir() / name, steps, batch_size, learning_rate, seed,
                   resume, max_seconds)  # fmt: skip
        return
    if name not in RECIPES:
        raise fail(f"no training recipe for {name!r}; known: {', '.join(RECIPES)}")
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
            max_seconds=max_seconds,
        )
    except (ValueError, FileNotFoundError, FloatingPointError, ModelLoadError) as e:
        raise fail(str(e)) from None
    _trained(name, result, folder)


def _train_new(
    name: str,
    folder: Path,
    steps: int | None,
    batch_size: int | None,
    learning_rate: float | None,
    seed: int,
    resume: bool,
    max_seconds: float | None,
) -> None:
    """interp-t, interp-z, mfsr-sr2x: their own trainers, with their own defaults."""
    from .training import train_interp, train_mfsr

    given = {"steps": steps, "batch_size": batch_size, "learning_rate": learning_rate}
    options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    try:
        if name == "mfsr-sr2x":
            _, result = train_mfsr(folder, seed=seed, resume=resume, max_seconds=max_seconds,
                                   **options)  # fmt: skip
        else:
            _, result = train_interp(name, folder, seed=seed, resume=resume,
                                     max_seconds=max_seconds, **options)  # fmt: skip
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        raise fail(str(e)) from None
    _trained(name, result, folder)


def _train_world(
    folder: Path, parent: str, leave_out: str | None, steps: int | None, seed: int
) -> None:
    from .simulate import FAMILIES
    from .training import finetune_world, render_world_examples

    excluded = tuple(f.strip() for f in leave_out.split(",")) if leave_out else ()
    unknown = [f for f in excluded if f not in FAMILIES]
    if unknown:
        raise fail(f"--leave-out {', '.join(unknown)}: the families are {', '.join(FAMILIES)}")
    families = tuple(f for f in FAMILIES if f not in excluded)
    if not families:
        raise fail("--leave-out leaves no family to train on")
    examples = render_world_examples(300 * len(families), seed, families, progress=True)
    result = finetune_world(
        parent, folder, examples, excluded, steps=steps or 1500, seed=seed, name=folder.name
    )
    _trained("interp-z", result, folder)


def _trained(name: str, result: TrainResult, folder: Path) -> None:
    validation = "".join(f", {k} {v:.4g}" for k, v in result.validation.items())
    console.print(
        f"trained {name}: {result.steps_done} steps in {result.seconds / 60:.1f} min, "
        f"final loss {result.final_loss:.4g}{validation}; written to {folder}"
    )


def _evaluate_mfsr(name: str, out: Path, seed: int) -> None:
    import numpy as np

    from .training import MFSR_EVALUATION_SEED as EVALUATION_SEED
    from .training import evaluate_mfsr, write_table

    try:
        rows = evaluate_mfsr(name, seed=EVALUATION_SEED + seed)
    except ValueError as e:
        raise fail(str(e)) from None
    stem = Path(name).name
    table = Table(title=f"{stem} on held-out simulated windows (PSNR dB after affine fit)")
    keys = [k for k in rows[0].scores if k.endswith("_psnr")]
    for key in [*rows[0].condition, *keys]:
        table.add_column(key.replace("_psnr", "").replace("motion_px_per_frame", "px/frame"))
    for row in rows:
        values = [*row.condition.values(), *(row.scores[k] for k in keys)]
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values))
    console.print(table)
    for other in ("dfcan", "dfcan-mean"):
        gains = [r.scores["mfsr_psnr"] - r.scores[f"{other}_psnr"] for r in rows]
        console.print(
            f"mfsr vs {other}: {np.mean(gains):+.2f} dB on average (cells won: "
            f"{sum(g > 0 for g in gains)}/{len(gains)})"
        )
    console.print(f"table: {write_table(rows, out / f'{stem}.csv')}")


def _print_rows(
    title: str, rows: list[EvalRow], header: Callable[[str], str], digits: int = 4
) -> None:
    """An evaluation's rows as a table: conditions, then scores (``header`` names the columns)."""
    table = Table(title=title)
    for key in [*rows[0].condition, *rows[0].scores]:
        table.add_column(header(key))
    for row in rows:
        values = [*row.condition.values(), *row.scores.values()]
        table.add_row(*(f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in values))
    console.print(table)


def _adversarial_start(name: str) -> str | None:
    """The DFCAN a DFGAN was fine-tuned from (its baseline), or None for other models."""
    from .models import ModelLoadError, model_dir, read_spec

    try:
        training = read_spec(model_dir(name)).training
    except ModelLoadError:
        return None  # evaluate() names the problem
    if "discriminator" not in training or "initialised_from" not in training:
        return None  # not a DFGAN, or one trained from scratch: no DFCAN to compare with
    return str(training["initialised_from"]).split(" ", 1)[0]


def _evaluate_gan(
    name: str, baseline: str, out: Path, fields: int, seed: int, structures: list[str]
) -> None:
    from .training import compare_generators, write_table

    stem = Path(name).name
    rows = compare_generators([baseline, name], structures, fields=fields, seed=seed)
    _print_rows(
        f"{stem} vs {baseline}: PSNR dB, FRC resolution to truth nm, SR-band power / truth's, "
        "background error % of peak",
        rows,
        lambda key: (
            key.replace(f"{baseline}_", "dfcan ")
            .replace(f"{stem}_", "gan ")
            .replace("background_error_pct", "bg err %")
        ),
        digits=3,
    )
    console.print(f"table: {write_table(rows, out / f'{stem}-vs-{baseline}.csv')}")


def _is_interpolation(name: str) -> bool:
    from .models import ModelLoadError, ModelTask, model_dir, read_spec

    try:
        return read_spec(model_dir(name)).task is ModelTask.INTERPOLATION
    except ModelLoadError:
        return False  # evaluate() names the problem


def _evaluate_interp(name: str, out: Path, seed: int) -> None:
    import numpy as np

    from .training import INTERP_EVALUATION_SEED as EVALUATION_SEED
    from .training import evaluate_interp, plot_interp, write_table

    try:
        rows = evaluate_interp(name, seed=EVALUATION_SEED + seed)
    except ValueError as e:
        raise fail(str(e)) from None
    stem = Path(name).name
    table = Table(title=f"{stem} on held-out simulated triplets (PSNR dB / MS-SSIM vs truth)")
    keys = list(rows[0].condition) + [k for k in rows[0].scores if k.endswith("psnr_db")]
    for key in keys:
        table.add_column(key.replace("_psnr_db", " dB"))
    for row in rows:
        values = [*row.condition.values()] + [row.scores[k] for k in keys[len(row.condition) :]]
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values))
    console.print(table)
    gains = [r.scores["network_psnr_db"] - r.scores["linear_psnr_db"] for r in rows]
    flow = [r.scores["network_psnr_db"] - r.scores["tv-l1_psnr_db"] for r in rows]
    console.print(
        f"network vs linear: {np.mean(gains):+.2f} dB on average (cells won: "
        f"{sum(g > 0 for g in gains)}/{len(gains)}); vs TV-L1 flow: {np.mean(flow):+.2f} dB "
        f"({sum(g > 0 for g in flow)}/{len(flow)})"
    )
    console.print(f"table: {write_table(rows, out / f'{stem}.csv')}")
    plot = plot_interp(rows, out / f"{stem}.png", f"{stem}: held-out simulated triplets")
    console.print(f"plot: {plot}")


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

    Interpolation (interp-t, interp-z): the network vs a linear blend vs TV-L1 optical-flow
    interpolation, PSNR and MS-SSIM of the middle frame per structure x motion (or z step) x
    light, with a plot.

    Super-resolution: PSNR and MS-SSIM per structure x photon level for the input (bicubic
    widefield), Richardson-Lucy and the model, plus an evaluation-matrix PNG. A DFGAN is also
    compared with the DFCAN it was fine-tuned from: FRC resolution against the truth, power
    in the SR band against the truth's (above 1: painted texture) and error in the background.
    Focus: error in µm and in/out-of-focus accuracy. Refocus: PSNR gain per defocus distance. SIM
    (dfcan-sim): widefield vs the classical reconstruction (its best Wiener constant per light
    level) vs the model, per structure x photon level.
    """
    from .models import ModelLoadError
    from .training import evaluate, plot_sr_matrix, write_table

    if _is_interpolation(name):
        _evaluate_interp(name, out, seed)
        return
    if Path(name).name == "mfsr-sr2x":
        _evaluate_mfsr(name, out, seed)
        return
    try:
        kind, rows = evaluate(
            name, fields=fields, seed=seed, structures=[s.strip() for s in structures.split(",")]
        )
    except (ModelLoadError, ValueError) as e:
        raise fail(str(e)) from None
    stem = Path(name).name
    table_path = write_table(rows, out / f"{stem}.csv")
    _print_rows(
        f"{stem} on held-out simulated data ({kind})",
        rows,
        lambda key: key.replace("richardson-lucy", "RL"),
    )
    console.print(f"table: {table_path}")
    if kind == "sr":
        plot = plot_sr_matrix(rows, out / f"{stem}.png", f"{stem}: held-out simulated data")
        console.print(f"evaluation matrix: {plot}")
        baseline = _adversarial_start(name)
        if baseline is not None:
            chosen = [s.strip() for s in structures.split(",")]
            _evaluate_gan(name, baseline, out, fields, seed, chosen)
    if record:
        from .training import record_summary

        console.print(f"recorded in {record_summary(name, kind, rows)}")


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
        raise fail(f"{e} (dataset kinds: {allowed})") from None
    with progress() as bar:
        task = bar.add_task(f"rendering {kind}", total=spec.count)
        try:
            path = write_dataset(
                spec, out, fmt, lambda done, _total: bar.update(task, completed=done)
            )
        except (ValueError, FileExistsError) as e:
            raise fail(str(e)) from None
    console.print(f"wrote {spec.count} samples to [bold]{path}[/]")


def calibrate_trust(
    model: Annotated[str, typer.Argument(help="A single-frame model (name or folder).")],
    fields: Annotated[int, typer.Option(min=1, help="Fields per structure, each set.")] = 2,
    frame_size: Annotated[int, typer.Option(min=32, help="Simulated field side (px).")] = 128,
    head_steps: Annotated[int, typer.Option(min=1, help="Trust head training steps.")] = 3000,
    head_fields: Annotated[
        int, typer.Option(min=1, help="Fields per structure to train the head on.")
    ] = 6,
    reuse_head: Annotated[
        bool, typer.Option(help="Calibrate the head already in the model folder.")
    ] = False,
    write: Annotated[
        bool, typer.Option(help="Write trust.yaml (and the head); --no-write prints only.")
    ] = True,
) -> None:
    """Calibrate a model's per-pixel trust map (MODEL+trust stages use it).

    Trains the model's trust head, calibrates each candidate (head, 8-pass tta, pair) on
    simulated fields so that 95 % of pixels have |error| <= 2 sigma, checks it on held-out
    fields, measures each one's cost, and writes the chosen default to the model folder's
    trust.yaml. Minutes on a CPU for a small model (the head's training dominates).
    """
    from .training import calibrate_model_trust

    try:
        calibrate_model_trust(
            model,
            fields=fields,
            frame_size=frame_size,
            head_steps=head_steps,
            head_fields=head_fields,
            reuse_head=reuse_head,
            write=write,
            say=lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True),
        )
    except ValueError as e:
        raise fail(str(e)) from None
