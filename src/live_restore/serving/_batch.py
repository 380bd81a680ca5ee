"""Batch restoration of a finished acquisition on dask.distributed: ``live-restore restore``.

The unit of work is an output frame: a task reads its input frames straight from the input
store, restores them with the model (which tiles a large frame itself, with halos and blending,
exactly as it does live and in ``load_model(name)(frame)``), and writes the result straight
into its own chunk of the output store. Only index lists and messages cross the scheduler, so
the same code runs on a ``LocalCluster`` on loopback or on any cluster whose workers see the
paths. Each worker process loads the model once.

A rerun with the same input, model and output resumes: the output's ``live_restore.done`` lists
every frame written (updated by the driver as tasks finish), and only the rest is submitted.
Groups follow the model's grouping, by the same plan as live (``Grouping.batch_plan``): a SIM
set is the frames along its axis; a temporal window is the frame with those around it in t
(centred) or before it (causal), the series' ends repeated as live; an interpolation pair fills
the full-rate axis between two acquired frames, as live.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from live_restore.acquisition import StageRecipe, instrument_for_pixel
from live_restore.frames import BatchPlan, Grouping, Restorer

from ._zarr_image import (
    InputImage,
    ZarrImageError,
    absent_frames,
    attributes_of,
    create_container,
    create_output,
    open_inputs,
)

__all__ = ["BatchReport", "plan_outputs", "restore_store"]

Index = tuple[int, ...]


@dataclass(frozen=True)
class _Item:
    """One group: the output frames it fills and the input frames it reads, oldest first."""

    outputs: tuple[Index, ...]
    inputs: tuple[Index, ...]
    series: str = ""  # the image in a bioformats2raw container ("" for a single image)
    label: str = ""  # how records name it: "p=1;t=3" (set by restore_store)


@dataclass
class BatchReport:
    """What a batch restoration did, frame by frame."""

    output: Path
    total: int
    written_now: int = 0
    resumed: int = 0  # written by an earlier run and skipped
    failed: dict[str, str] = field(default_factory=dict)  # index -> why
    absent: dict[str, str] = field(default_factory=dict)  # index -> its input frames not there

    @property
    def complete(self) -> bool:
        """Whether every output frame is on disk."""
        return not self.failed and not self.absent


def _label(axes: tuple[str, ...], item: _Item) -> str:
    parts = [f"p={item.series}"] if item.series else []
    parts += [f"{a}={i}" for a, i in zip(axes, item.outputs[-1], strict=True)]
    return ";".join(parts)


def plan_outputs(image: InputImage, grouping: Grouping) -> tuple[BatchPlan, list[_Item]]:
    """The grouping's plan over ``image`` and an item per group; ValueError if it cannot fit."""
    try:
        plan = grouping.batch_plan(image.axes[:-2], image.shape[:-2])
    except ValueError as e:
        raise ValueError(f"{image.path}: {e}") from None
    return plan, [_Item(g.outputs, g.inputs) for g in plan.groups]


# -- the work, in the workers -----------------------------------------------------------------

_LOADED: dict[StageRecipe, Restorer] = {}  # per worker process: each model loads once


@dataclass(frozen=True)
class _Job:
    recipe: StageRecipe
    input_path: str
    datasets: dict[str, str]  # series -> the array's path in its group
    output_path: str
    grouped: bool
    threads: int | None


def _restore_items(job: _Job, items: list[_Item]) -> list[tuple[_Item, str | None]]:
    """Restore ``items`` and write them; (output index, None or why it failed) for each."""
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    restorer = _LOADED.get(job.recipe)
    if restorer is None:
        restorer = _LOADED[job.recipe] = job.recipe()
    done: list[tuple[_Item, str | None]] = []
    for item in items:
        series = zarr.open_group(str(Path(job.input_path) / item.series), mode="r")
        source = series[job.datasets[item.series]]
        assert isinstance(source, zarr.Array)
        target = zarr.open_array(str(Path(job.output_path) / item.series / "0"), mode="r+")
        try:
            frames = np.stack([np.asarray(source[index]) for index in item.inputs])
            output = np.asarray(restorer(frames if job.grouped else frames[0]), np.float32)
            stacked = restorer.grouping.stacked_outputs(len(item.inputs))
            expected = target.shape[-2:] if stacked is None else (stacked, *target.shape[-2:])
            if output.shape != expected:
                raise ValueError(f"returned shape {output.shape}, expected {expected}")
            if not np.isfinite(output).all():
                raise ValueError("returned non-finite pixels (NaN/inf)")
            images = output[None] if stacked is None else output
            for index, image in zip(item.outputs, images, strict=True):
                target[index] = image  # a write that fails (disk full) fails the group
        except Exception as e:
            done.append((item, f"{type(e).__name__}: {e}"))
            continue
        done.append((item, None))
    return done


# -- the driver -------------------------------------------------------------------------------


def _ours(output: Path) -> dict[str, Any] | None:
    """The record of a restoration this tool wrote at ``output``, or None."""
    try:
        record = attributes_of(zarr.open_group(str(output), mode="r")).get("live_restore")
    except Exception:
        return None
    return dict(record) if isinstance(record, dict) else None


def _make_room(output: Path, input_path: Path, overwrite: bool) -> None:
    """Refuse an output that is (or holds, or is inside) the input; remove an old one if asked."""
    out, source = output.resolve(), input_path.resolve()
    if out == source or source.is_relative_to(out) or out.is_relative_to(source):
        raise ZarrImageError(f"--out {output} would write into the input {input_path}")
    if not output.exists():
        return
    record = _ours(output)
    if record is not None and record.get("state") == "creating":
        shutil.rmtree(output)  # an earlier run stopped while creating it: nothing was written
    elif overwrite:
        if record is None:
            raise ZarrImageError(
                f"{output} is not a restoration this tool wrote; not removing it (give another "
                "--out)"
            )
        shutil.rmtree(output)


def _open_or_create(
    output: Path,
    images: dict[str, InputImage],
    restorer: Restorer,
    plans: dict[str, BatchPlan],
    attributes: dict[str, Any],
) -> set[str]:
    """The labels already done (resume), after checking the output is this job's."""
    if not output.exists():
        grouping, scale = restorer.grouping, restorer.scale
        # the record says "creating" until every array exists: a rerun then starts afresh
        creating = {**attributes, "state": "creating"}
        if list(images) == [""]:
            create_output(output, images[""], grouping, plans[""].shape, scale, creating)
        else:
            create_container(output, creating)
            for series, image in images.items():
                create_output(output / series, image, grouping, plans[series].shape, scale, {})
        group = zarr.open_group(str(output), mode="r+")
        group.attrs["live_restore"] = {**attributes, "state": "created"}
        return set()
    earlier = _ours(output)
    if earlier is None:
        raise ZarrImageError(
            f"{output} exists and is not a restoration this tool wrote; give another --out"
        )
    for key in ("input", "input_shapes", "model", "weights_sha256", "scale"):
        if str(earlier.get(key)) != str(attributes.get(key)):
            raise ZarrImageError(
                f"{output} holds another restoration ({key}: {earlier.get(key)!r}, this run: "
                f"{attributes.get(key)!r}); give another --out or --overwrite"
            )
    return set(earlier.get("done", []))


def _client(scheduler: str, workers: int) -> tuple[Any, Any, int | None]:
    from distributed import Client, LocalCluster

    if scheduler != "local":
        try:
            return Client(scheduler, timeout="10s"), None, None  # type: ignore[no-untyped-call]
        except OSError as e:
            raise ConnectionError(f"no Dask scheduler answers at {scheduler}: {e}") from None
    threads = max(1, (os.cpu_count() or 1) // workers)
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=workers,
        threads_per_worker=1,  # one model call at a time per worker; torch uses `threads`
        processes=True,
        host="127.0.0.1",  # loopback only
        dashboard_address="127.0.0.1:0",  # no fixed port (two runs at once), loopback only
    )
    return Client(cluster), cluster, threads  # type: ignore[no-untyped-call]


def restore_store(
    input_path: str | Path,
    model: str,
    output: str | Path,
    *,
    scheduler: str = "local",
    workers: int = 1,
    backend: str = "auto",
    precision: str = "auto",
    frames_per_task: int = 1,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    interp_factor: int = 2,
    window_mode: str = "centred",
) -> BatchReport:
    """Restore every frame of ``input_path`` with ``model`` into ``output`` (see module doc).

    ``on_progress(done, total)`` is called as frames finish. ZarrImageError for an input or
    output that cannot be used, ValueError for a model that does not fit the image.
    ``overwrite`` replaces an earlier restoration at ``output`` (only once the input and the
    model are found good, and never anything this tool did not write). ``interp_factor`` and
    ``window_mode`` are the hook's (interpolation into a full-rate image; mfsr windows).
    """
    if importlib.util.find_spec("distributed") is None:
        raise ValueError(
            "batch restoration runs on dask.distributed, which is not installed: "
            "pip install 'live-restore[dask]'"
        )
    images = open_inputs(input_path)
    output = Path(output)
    first = next(iter(images.values()))
    instrument = instrument_for_pixel(first.pixel_um)
    recipe = StageRecipe(model, instrument, backend, precision, interp_factor, window_mode)
    restorer = recipe()  # here first: an unknown model or corrupt weights fail before a cluster
    try:
        items: list[_Item] = []
        plans: dict[str, BatchPlan] = {}
        for series, image in images.items():
            plans[series], planned = plan_outputs(image, restorer.grouping)
            for i in planned:
                item = replace(i, series=series)
                items.append(replace(item, label=_label(plans[series].axes, item)))
        attributes = {
            **restorer.provenance(),
            "input": str(Path(input_path).resolve()),
            "input_axes": "".join(first.axes),
            "input_shapes": {series: list(image.shape) for series, image in images.items()},
            "scale": restorer.scale,
            "done": [],
        }
        _make_room(output, Path(input_path), overwrite)
        done = _open_or_create(output, images, restorer, plans, attributes)
        grouped = restorer.grouping.group_size > 1
    finally:
        restorer.close()
    report = BatchReport(output, total=len(items))
    report.absent = _absent_inputs(images, items)
    todo = [item for item in items if item.label not in done and item.label not in report.absent]
    report.resumed = sum(1 for item in items if item.label in done)
    if on_progress:
        on_progress(report.resumed, report.total)
    try:
        if todo:
            datasets = {series: image.dataset for series, image in images.items()}
            job = _Job(recipe, str(Path(input_path)), datasets, str(output), grouped, None)
            _run(todo, done, report, job, scheduler, workers, frames_per_task, on_progress)
    finally:  # also on Ctrl-C: what was written is recorded, and a rerun resumes from it
        _finish(output, done, report)
    return report


def _absent_inputs(images: dict[str, InputImage], items: list[_Item]) -> dict[str, str]:
    """Items whose input frames were never written (a deleted chunk, a crashed run): why."""
    absent: dict[str, str] = {}
    for series, image in images.items():
        mine = [item for item in items if item.series == series]
        missing = absent_frames(image, sorted({i for item in mine for i in item.inputs}))
        axes = image.axes[:-2]
        for item in mine:
            if lost := [i for i in item.inputs if i in missing]:
                if item.inputs == item.outputs:  # a frame restored on its own: it is absent
                    absent[item.label] = "not in the input (never written)"
                    continue
                names = ", ".join(
                    ";".join(f"{a}={v}" for a, v in zip(axes, i, strict=True)) for i in lost
                )
                absent[item.label] = f"input frames {names} are not in the input (never written)"
    return absent


def _chunks(items: list[_Item], size: int) -> Iterator[list[_Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _run(
    todo: list[_Item],
    done: set[str],
    report: BatchReport,
    job: _Job,
    scheduler: str,
    workers: int,
    frames_per_task: int,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    from distributed import as_completed

    client, cluster, threads = _client(scheduler, workers)
    job = replace(job, threads=threads)
    group = zarr.open_group(job.output_path, mode="r+")
    try:
        chunks = list(_chunks(todo, frames_per_task))
        futures = [client.submit(_restore_items, job, chunk, pure=False) for chunk in chunks]
        chunk_of = {future.key: chunk for future, chunk in zip(futures, chunks, strict=True)}
        recorded_at = time.monotonic()
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            try:
                results = future.result()
            except Exception as e:  # a worker lost, the model not loading there: name them
                why = f"{type(e).__name__}: {e}"
                results = [(item, why) for item in chunk_of[future.key]]
            for item, error in results:
                if error is None:
                    done.add(item.label)
                    report.written_now += 1
                else:
                    report.failed[item.label] = error
            # the driver alone writes the record (every 2 s, and at the end): a rerun resumes
            # from it, and redoes at most what finished since
            if time.monotonic() - recorded_at > 2.0:
                record = attributes_of(group)["live_restore"]
                group.attrs["live_restore"] = {**record, "done": sorted(done)}
                recorded_at = time.monotonic()
            if on_progress:
                on_progress(report.resumed + report.written_now + len(report.failed), report.total)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _finish(output: Path, done: set[str], report: BatchReport) -> None:
    group = zarr.open_group(str(output), mode="r+")
    record = dict(attributes_of(group)["live_restore"])
    record.update(
        done=sorted(done),
        missing=sorted({*report.failed, *report.absent}),
        failed=report.failed,
        absent=report.absent,
        finished="completed" if len(done) == report.total else "incomplete",
    )
    group.attrs["live_restore"] = record
