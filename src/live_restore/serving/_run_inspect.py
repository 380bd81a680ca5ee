"""What a run folder holds, also after a crash: ``live-restore inspect RUN_FOLDER``.

A run that ended writes summary.json with its counts. One that never ended (the process was
killed, the machine lost power) leaves the raw store written up to the kill, frames.csv
(flushed row by row) and the summary.json written at its start. From those this says what was
acquired (the raw frames actually written, from which chunks exist), what each stage restored
(frames.csv's rows) and what is missing, by index.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._zarr_image import ZarrImageError, absent_frames, open_inputs

__all__ = ["RunInspection", "StageInspection", "inspect_run"]


@dataclass
class StageInspection:
    """One stage's outcomes in the run, as frames.csv and its store say."""

    name: str
    by_status: dict[str, int]
    store: bool  # its <stage>.ome.zarr exists
    never_reached: list[str]  # acquired frames with no row: the run ended before them


@dataclass
class RunInspection:
    """A run folder's acquisition and restorations (see the module docstring)."""

    folder: Path
    finished: str | None  # how it ended, or None: it never finished
    planned: int  # raw frames the acquisition's store was made for
    acquired: int  # raw frames actually written
    not_written: list[str]  # planned raw frames never written (past a crash, lost chunks)
    stages: list[StageInspection] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Finished, every planned frame acquired, every stage reached every frame."""
        return (
            self.finished is not None
            and not self.not_written
            and not any(s.never_reached for s in self.stages)
        )


def _label(axes: tuple[str, ...], index: tuple[int, ...], series: str) -> str:
    parts = [f"{a}={i}" for a, i in zip(axes, index, strict=True)]
    return ";".join(parts + ([f"p={series}"] if series else []))


def inspect_run(folder: str | Path) -> RunInspection:
    """Read ``folder`` (a run of ``acquire``, the demo or a hook); ZarrImageError if it is none."""
    folder = Path(folder)
    summary_path, raw_path = folder / "summary.json", folder / "raw.ome.zarr"
    if not summary_path.is_file() and not raw_path.exists():
        raise ZarrImageError(f"{folder} is not a run folder (no summary.json, no raw.ome.zarr)")
    summary: dict[str, Any] = {}
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ZarrImageError(f"{summary_path} cannot be read ({e})") from None
    finished = summary.get("finished")
    planned, written, not_written = 0, list[str](), list[str]()
    keys: set[str] = set()  # the axes a raw frame's label has
    if raw_path.exists():
        for series, image in open_inputs(raw_path).items():
            axes, lead = image.axes[:-2], image.shape[:-2]
            keys |= set(axes) | ({"p"} if series else set())
            frames = [tuple(i) for i in _indices(lead)]
            absent = absent_frames(image, frames)
            planned += len(frames)
            for index in frames:
                (not_written if index in absent else written).append(_label(axes, index, series))
    rows = _rows(folder / "frames.csv")
    names = list(summary.get("stages") or sorted({r["stage"] for r in rows} - {"focus", "*"}))
    inspection = RunInspection(folder, finished, planned, len(written), not_written)
    for name in names:
        mine = [r for r in rows if r.get("stage") == name]
        # a set's row (SIM) has no channel: raw labels are compared on the rows' own axes
        own = {k for r in mine for k, _ in _on_axes(r.get("index", ""), keys)} or keys
        reached = {_on_axes(r.get("index", ""), own) for r in mine}
        never = [lab for lab in written if _on_axes(lab, own) not in reached]
        inspection.stages.append(
            StageInspection(
                name,
                dict(sorted(Counter(r.get("status", "") for r in mine).items())),
                (folder / f"{name}.ome.zarr").exists(),
                never,
            )
        )
    return inspection


def _on_axes(label: str, keys: set[str]) -> frozenset[tuple[str, str]]:
    """An index label ("t=3;c=0") as its parts on the axes ``keys``.

    c is not an axis of a single-channel raw store, so frames.csv's "t=3;c=0" is raw's "t=3".
    """
    parts = (p.split("=", 1) for p in label.split(";") if "=" in p)
    return frozenset((k, v) for k, v in parts if k in keys)


def _indices(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    import itertools

    return list(itertools.product(*map(range, shape)))


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        return list(csv.DictReader(f))
