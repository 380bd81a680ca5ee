"""Datasets for training and evaluation, rendered by the simulator with their ground truth.

Kinds:
- ``sr-pairs``: low-light widefield frames (uint16 counts) with the in-focus widefield and the
  2x super-resolved ground truth (float32, expected photons per camera-pixel area);
- ``defocus``: focus series through known defocus, with the signed defocus of every frame;
- ``sim``: 9-frame SIM raw sets (3 angles x 3 phases) with the 2x ground truth.

Written as OME-Zarr (NGFF 0.5 on zarr v3: one image group per array) or as OME-TIFF files,
plus ``samples.csv`` (one row per sample: structure, photons, seed, stage, defocus) and
``dataset.json`` (what was asked for, the optics, the camera). Reproducible from the seed.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from live_restore._version import __version__

from ._camera import CameraParams, expose
from ._microscope import ManualClock, SimMicroscope
from ._optics import OpticsParams
from ._samples import parse_structure

__all__ = ["DatasetKind", "DatasetSpec", "write_dataset"]

_EXPOSURE_MS = 10.0


class DatasetKind(StrEnum):
    """What a dataset holds."""

    SR_PAIRS = "sr-pairs"
    DEFOCUS = "defocus"
    SIM = "sim"


@dataclass(frozen=True)
class DatasetSpec:
    """What to render. Photon levels are peak photons per pixel of the in-focus sample."""

    kind: DatasetKind
    structures: Sequence[str]
    photon_levels: Sequence[float]
    samples_per_combination: int = 4
    frame_size: int = 128
    seed: int = 0
    defocus_range_um: float = 2.0
    defocus_step_um: float = 0.25

    def validate(self) -> None:
        """Raise ValueError naming the first value out of range."""
        for name in self.structures:
            parse_structure(name)
        if not self.structures:
            raise ValueError("give at least one structure")
        if not self.photon_levels:
            raise ValueError("give at least one photon level")
        for level in self.photon_levels:
            if not level > 0:
                raise ValueError(f"photon level {level} must be positive (photons per pixel)")
        if self.samples_per_combination < 1:
            raise ValueError(
                f"samples per combination must be >= 1, got {self.samples_per_combination}"
            )
        SimMicroscope._check_frame_shape((self.frame_size, self.frame_size))
        if not 0 < self.defocus_step_um <= self.defocus_range_um <= 20:
            raise ValueError(
                f"defocus step {self.defocus_step_um} µm and range ±{self.defocus_range_um} µm: "
                "need 0 < step <= range <= 20"
            )

    @property
    def defocus_values_um(self) -> np.ndarray:
        """Defocus positions of a focus series."""
        n = round(self.defocus_range_um / self.defocus_step_um)
        return np.arange(-n, n + 1) * self.defocus_step_um

    @property
    def count(self) -> int:
        """Number of samples the dataset will hold."""
        return len(self.structures) * len(self.photon_levels) * self.samples_per_combination


@dataclass
class _Item:
    arrays: dict[str, np.ndarray]
    row: dict[str, Any]


def _scope_for(
    spec: DatasetSpec, structure: str, sample_seed: int, photons: float
) -> SimMicroscope:
    scope = SimMicroscope(
        structure=structure,
        seed=sample_seed,
        frame_shape=(spec.frame_size, spec.frame_size),
        peak_photons_per_ms=photons / _EXPOSURE_MS,
        motion_um_per_min=0.0,
        clock=ManualClock(),
    )
    scope.exposure_ms = _EXPOSURE_MS
    scope.excitation_percent = 100.0
    return scope


def _items(spec: DatasetSpec) -> Iterator[_Item]:
    px_um = OpticsParams().pixel_um
    index = 0
    for structure in spec.structures:
        for photons in spec.photon_levels:
            for _ in range(spec.samples_per_combination):
                sample_seed = spec.seed * 1_000_003 + index
                rng = np.random.default_rng([spec.seed, index])
                scope = _scope_for(spec, structure, sample_seed, photons)
                # a random field of view over the (periodic) sample
                span_um = spec.frame_size * px_um
                scope.stage_um[0], scope.stage_um[1] = (
                    float(v) for v in rng.uniform(-span_um, span_um, 2)
                )
                row: dict[str, Any] = {
                    "index": index,
                    "structure": structure,
                    "peak_photons": photons,
                    "sample_seed": sample_seed,
                    "stage_x_um": round(scope.stage_um[0], 4),
                    "stage_y_um": round(scope.stage_um[1], 4),
                }
                yield _render_item(spec, scope, rng, row)
                index += 1


def _render_item(
    spec: DatasetSpec, scope: SimMicroscope, rng: np.random.Generator, row: dict[str, Any]
) -> _Item:
    camera = scope.camera
    if spec.kind is DatasetKind.SR_PAIRS:
        record = scope.record_exposure()
        truth = scope.ground_truth(record)
        raw = expose(truth.expected_photons, camera, rng)
        return _Item(
            {"raw": raw, "gt_widefield": truth.in_focus_widefield, "gt_sr": truth.sr_2x}, row
        )
    if spec.kind is DatasetKind.DEFOCUS:
        frames = []
        for z in spec.defocus_values_um:
            scope.stage_um[2] = float(z)
            frames.append(expose(scope.expected_photons(scope.record_exposure()), camera, rng))
        scope.stage_um[2] = 0.0
        truth = scope.ground_truth(scope.record_exposure())
        return _Item({"raw": np.stack(frames), "gt_widefield": truth.in_focus_widefield}, row)
    frames = []
    for pattern in range(1, 10):
        scope.pattern_index = pattern
        frames.append(expose(scope.expected_photons(scope.record_exposure()), camera, rng))
    scope.pattern_index = 0
    truth = scope.ground_truth(scope.record_exposure())
    return _Item(
        {"raw": np.stack(frames), "gt_widefield": truth.in_focus_widefield, "gt_sr": truth.sr_2x},
        row,
    )


def _ome_zarr_writer(
    root: Path, shapes: dict[str, tuple[tuple[int, ...], np.dtype[Any]]], px_um: float
) -> Callable[[int, dict[str, np.ndarray]], None]:
    import zarr

    group = zarr.open_group(str(root), mode="w")
    arrays = {}
    for name, (shape, dtype) in shapes.items():
        image = group.create_group(name)
        ndim = len(shape)
        pixel = px_um / 2 if name == "gt_sr" else px_um
        axes = [{"name": "n", "type": "other"}]
        if ndim == 4:
            axes.append({"name": "z" if name == "raw" else "c", "type": "other"})
        axes += [
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"},
        ]
        scale = [1.0] * (ndim - 2) + [pixel, pixel]
        image.attrs["ome"] = {
            "version": "0.5",
            "multiscales": [
                {
                    "name": name,
                    "axes": axes,
                    "datasets": [
                        {
                            "path": "0",
                            "coordinateTransformations": [{"type": "scale", "scale": scale}],
                        }
                    ],
                }
            ],
        }
        chunks = (1, *shape[1:])
        arrays[name] = image.create_array(
            "0", shape=shape, dtype=dtype, chunks=chunks, fill_value=0
        )

    def write(i: int, item_arrays: dict[str, np.ndarray]) -> None:
        for name, data in item_arrays.items():
            arrays[name][i] = data

    return write


def write_dataset(
    spec: DatasetSpec,
    out: Path,
    fmt: str = "zarr",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render ``spec`` into ``out`` (a folder). Written under a temporary name, renamed at the end.

    An interrupted run leaves only ``<out>.partial``, never a store that looks complete.
    """
    spec.validate()
    if fmt not in ("zarr", "tiff"):
        raise ValueError(f"format must be 'zarr' or 'tiff', got {fmt!r}")
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose another path or remove it")
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    px_um = OpticsParams().pixel_um
    rows: list[dict[str, Any]] = []
    collected: dict[str, list[np.ndarray]] = {}
    writer = None
    for i, item in enumerate(_items(spec)):
        if fmt == "zarr":
            if writer is None:
                shapes = {k: ((spec.count, *v.shape), v.dtype) for k, v in item.arrays.items()}
                writer = _ome_zarr_writer(partial / "data.ome.zarr", shapes, px_um)
            writer(i, item.arrays)
        else:
            for k, v in item.arrays.items():
                collected.setdefault(k, []).append(v)
        rows.append(item.row)
        if progress:
            progress(i + 1, spec.count)
    if fmt == "tiff":
        import tifffile

        for name, stack in collected.items():
            data = np.stack(stack)
            # OME axes: samples along T; a focus series along Z; the 9 SIM frames along C
            axes = (
                "TYX"
                if data.ndim == 3
                else ("TZYX" if spec.kind is DatasetKind.DEFOCUS else "TCYX")
            )
            pixel = px_um / 2 if name == "gt_sr" else px_um
            tifffile.imwrite(
                partial / f"{name}.ome.tif",
                data,
                ome=True,
                metadata={"axes": axes, "PhysicalSizeX": pixel, "PhysicalSizeY": pixel},
            )
    with open(partial / "samples.csv", "w", newline="") as f:
        table = csv.DictWriter(f, fieldnames=list(rows[0]))
        table.writeheader()
        table.writerows(rows)
    meta = {
        "kind": str(spec.kind),
        "structures": list(spec.structures),
        "photon_levels": list(spec.photon_levels),
        "samples_per_combination": spec.samples_per_combination,
        "frame_size": spec.frame_size,
        "seed": spec.seed,
        "exposure_ms": _EXPOSURE_MS,
        "optics": OpticsParams().model_dump(),
        "camera": CameraParams().model_dump(),
        "units": "raw: camera counts; gt_*: expected photons per camera-pixel area",
        "live_restore_version": __version__,
    }
    if spec.kind is DatasetKind.DEFOCUS:
        meta["defocus_um"] = [float(z) for z in spec.defocus_values_um]
    if spec.kind is DatasetKind.SIM:
        meta["sim_frame_order"] = "angle-major: A0P0, A0P1, A0P2, A1P0, ..."
    (partial / "dataset.json").write_text(json.dumps(meta, indent=2))
    partial.rename(out)
    return out
