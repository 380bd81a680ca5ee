"""OME-Zarr images for batch restoration: read any (ours, pymmcore-plus's), write a restored one.

An input is an OME-Zarr image (NGFF 0.4 or 0.5) whose first multiscale level holds the frames,
its last two axes y and x; or a bioformats2raw container of such images (one per stage
position, as pymmcore-plus writes a multi-position MDA), restored series by series into the
same layout. The output is an NGFF 0.5 group with the same axes (less any
axis the model's group spans), y and x scaled by the model, one chunk per output frame, float32,
and the provenance under the ``live_restore`` attribute, as the live stores carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import zarr

from live_restore.frames import Grouping

__all__ = [
    "InputImage",
    "ZarrImageError",
    "absent_frames",
    "attributes_of",
    "create_container",
    "create_output",
    "open_inputs",
]


class ZarrImageError(ValueError):
    """The path is not an OME-Zarr image this tool can read, or the output is in the way."""


@dataclass(frozen=True)
class InputImage:
    """Where an input's frames are and what its axes are."""

    path: Path  # the image group (a series' group inside a container)
    dataset: str  # the array's path inside the group (the full-resolution level)
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    scale: tuple[float, ...]  # per axis, from the coordinate transformation (1.0 if none)
    axis_types: tuple[str, ...]
    units: tuple[str | None, ...]

    @property
    def pixel_um(self) -> float | None:
        """The x pixel size in µm, when the store says so."""
        # only an explicit unit: a bare scale of 1.0 is a default, not a 1 µm pixel
        if self.units[-1] == "micrometer" and self.scale[-1] > 0:
            return float(self.scale[-1])
        return None

    def array(self) -> zarr.Array[Any]:
        """The frames (opened read-only)."""
        node = zarr.open_group(str(self.path), mode="r")[self.dataset]
        assert isinstance(node, zarr.Array)
        return node


def attributes_of(group: zarr.Group) -> dict[str, Any]:
    """A group's attributes as a plain dict (zarr types them as JSON)."""
    return cast(dict[str, Any], dict(group.attrs))


def _multiscales(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    found = attrs.get("ome", attrs).get("multiscales")
    return found if isinstance(found, list) and found else None


def open_inputs(path: str | Path) -> dict[str, InputImage]:
    """The images at ``path`` by series name ("" for a single image); ZarrImageError if none."""
    path = Path(path)
    if not path.exists():
        raise ZarrImageError(f"input not found: {path}")
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as e:  # zarr raises several kinds for "not a group"
        raise ZarrImageError(
            f"{_metadata_file(path)} is not a Zarr group's metadata ({type(e).__name__}: {e})"
        ) from None
    attrs = attributes_of(group)
    if "bioformats2raw.layout" in attrs.get("ome", attrs):
        series = sorted((k for k, v in group.groups() if k.isdigit()), key=int)
        if not series:
            raise ZarrImageError(f"{path} is a bioformats2raw container with no image in it")
        return {name: _open_image(path / name, zarr.open_group(str(path / name), mode="r"))
                for name in series}  # fmt: skip
    return {"": _open_image(path, group)}


def _open_image(path: Path, group: zarr.Group) -> InputImage:
    multiscales = _multiscales(attributes_of(group))
    if multiscales is None:
        raise ZarrImageError(f"{path} is a Zarr group but not an OME-Zarr image (no multiscales)")
    first = multiscales[0]
    axes_meta = first.get("axes") or []
    dataset = first["datasets"][0]
    try:
        node = group.get(dataset["path"])
    except Exception as e:  # a corrupt array metadata file
        where = _metadata_file(path / str(dataset["path"]))
        raise ZarrImageError(f"{where} cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(node, zarr.Array):
        raise ZarrImageError(f"{path}: the image's dataset {dataset['path']!r} is missing")
    axes = tuple(str(a["name"]) if isinstance(a, dict) else str(a) for a in axes_meta)
    if len(axes) != node.ndim or axes[-2:] != ("y", "x"):
        raise ZarrImageError(
            f"{path}: axes {axes} do not end in (y, x) for an array of {node.ndim} dimensions"
        )
    if node.dtype.kind not in "uif":
        raise ZarrImageError(f"{path}: the frames hold {node.dtype}, not numbers")
    scale = [1.0] * node.ndim
    for transform in dataset.get("coordinateTransformations", []):
        if transform.get("type") == "scale":
            scale = [float(s) for s in transform["scale"]]
    return InputImage(
        path=path,
        dataset=str(dataset["path"]),
        axes=axes,
        shape=tuple(int(n) for n in node.shape),
        dtype=node.dtype,
        scale=tuple(scale),
        axis_types=tuple(str(a.get("type", "")) if isinstance(a, dict) else "" for a in axes_meta),
        units=tuple(a.get("unit") if isinstance(a, dict) else None for a in axes_meta),
    )


def _metadata_file(folder: Path) -> Path:
    """The Zarr metadata file of ``folder`` (v3 zarr.json, else v2's), to name in errors."""
    for name in ("zarr.json", ".zarray", ".zgroup"):
        if (folder / name).is_file():
            return folder / name
    return folder


def absent_frames(image: InputImage, frames: list[tuple[int, ...]]) -> set[tuple[int, ...]]:
    """Those of ``frames`` (leading indices) whose chunk was never written to ``image``.

    A chunk that does not exist reads as fill (zeros), indistinguishable from a dark frame by
    its pixels: a deleted chunk, or frames past the last one a crashed acquisition wrote. In a
    sharded array a shard that exists counts as present (its inner chunks are not checked).
    """
    from zarr.core.sync import sync

    array = zarr.open_group(str(image.path), mode="r")[image.dataset]
    assert isinstance(array, zarr.Array)
    try:
        store, prefix = array.store_path.store, array.store_path.path
        chunks = array.metadata.chunks if hasattr(array.metadata, "chunks") else array.chunks
        encode = array.metadata.encode_chunk_key
    except AttributeError:  # a zarr that does not say: every frame counts as present
        return set()
    leading = len(image.shape) - 2
    absent = set()
    keys: dict[tuple[int, ...], bool] = {}
    for frame in frames:
        coords = (*tuple(i // c for i, c in zip(frame, chunks[:leading], strict=True)), 0, 0)
        if coords not in keys:
            key = f"{prefix}/{encode(coords)}" if prefix else encode(coords)
            keys[coords] = bool(sync(store.exists(key)))
        if not keys[coords]:
            absent.add(frame)
    return absent


def create_container(path: str | Path, attributes: dict[str, Any]) -> None:
    """A bioformats2raw container for several restored series (create_output makes each)."""
    group = zarr.open_group(str(path), mode="w-", zarr_format=3)
    group.attrs.update({"ome": {"version": "0.5", "bioformats2raw.layout": 3}})
    group.attrs["live_restore"] = attributes


def create_output(
    path: str | Path,
    image: InputImage,
    grouping: Grouping,
    lead_shape: tuple[int, ...],
    scale_factor: int,
    attributes: dict[str, Any],
) -> zarr.Array[Any]:
    """The restored image's array, created (``path`` must not exist: resumes open, see batch).

    ``lead_shape``: the output's leading (non y, x) shape, from the grouping's batch plan; a
    full-rate axis (interpolation) gets its finer step in the scale.
    """
    keep = [i for i, a in enumerate(image.axes) if a != grouping.removed_axis]
    shape = [*lead_shape, image.shape[-2] * scale_factor, image.shape[-1] * scale_factor]
    scale = [image.scale[i] for i in keep]
    scale[-2:] = [scale[-2] / scale_factor, scale[-1] / scale_factor]
    if grouping.full_rate is not None:
        rate_axis, factor = grouping.full_rate
        where = [image.axes[i] for i in keep].index(rate_axis)
        scale[where] = scale[where] / factor
    axes = []
    for i in keep:
        axis: dict[str, Any] = {"name": image.axes[i]}
        if image.axis_types[i]:
            axis["type"] = image.axis_types[i]
        if image.units[i]:
            axis["unit"] = image.units[i]
        axes.append(axis)
    ome: dict[str, Any] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": axes,
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
                ],
            }
        ],
    }
    group = zarr.open_group(str(path), mode="w-", zarr_format=3)
    group.attrs.update({"ome": ome, "live_restore": attributes} if attributes else {"ome": ome})
    chunks = [1] * (len(shape) - 2) + shape[-2:]
    return group.create_array(
        "0",
        shape=tuple(shape),
        chunks=tuple(chunks),
        dtype="float32",
        fill_value=0.0,
        dimension_names=[image.axes[i] for i in keep],
    )
