"""``engines/<name>/model.yaml``: what a shipped model is, how it was made and how good it is.

Loading never unpickles: weights are safetensors, checked against the sha256 in model.yaml
before they are read, and matched to the architecture tensor by tensor. Every failure is a
:class:`ModelLoadError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

__all__ = [
    "Architecture",
    "ModelLoadError",
    "ModelSpec",
    "ModelTask",
    "Normalisation",
    "engines_dir",
    "file_sha256",
    "model_dir",
    "read_spec",
    "write_spec",
]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


CpuPrecision = Literal["fp32", "bf16", "int8"]


class ModelLoadError(RuntimeError):
    """A model's files are missing, corrupt or do not match its architecture."""


class ModelTask(StrEnum):
    """What a model does to a frame."""

    SUPER_RESOLUTION = "super-resolution"
    REFOCUS = "refocus"
    FOCUS_ESTIMATION = "focus-estimation"
    SIM_RECONSTRUCTION = "sim-reconstruction"  # a 9-frame SIM raw set in, 2x image out
    INTERPOLATION = "interpolation"  # two frames (times or planes) + a fraction -> between
    MULTI_FRAME_SR = "multi-frame-super-resolution"  # N consecutive frames -> 2x of the centre


class Normalisation(BaseModel):
    """Raw counts -> network input, and network output -> counts (the same at training)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low_percentile: float = Field(0.1, ge=0.0, lt=50.0, description="Maps to 0.")
    high_percentile: float = Field(99.9, gt=50.0, le=100.0, description="Maps to 1.")
    output_range: float = Field(
        1.0,
        gt=0.0,
        description="A sigmoid output y in (0, 1) means low + output_range·(high - low) counts: "
        "restored peaks are brighter than the input's, so the range is wider than [low, high].",
    )


class Architecture(BaseModel):
    """The network a model is: its task, builder and arguments, grids and normalisation.

    What a training recipe builds and what model.yaml describes: :class:`ModelSpec` is an
    Architecture plus the model's name, optics, training and evaluation records and weights.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: ModelTask = Field(description="What the model does to a frame.")
    architecture: str = Field(description="Builder in models.ARCHITECTURES.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Builder arguments.")
    scale: int = Field(1, ge=1, le=4, description="Output grid / input grid.")
    multiple_of: int = Field(1, ge=1, description="Input sides the network needs, padded to.")
    patch_size: int | None = Field(None, description="Patch side for patch-wise models (px).")
    tile_px: int | None = Field(
        None,
        ge=16,
        description="Tile side a session cuts frames into by default (px); None: twice the "
        "training patch. A small network runs whole 512x512 frames faster than overlapping "
        "tiles (no overlap computed twice).",
    )
    cpu_backend: Literal["torch-cpu", "onnxruntime", "openvino"] = Field(
        "torch-cpu",
        description="What backend 'auto' runs this model on without a GPU: the CPU runtime "
        "measured faster for it (onnxruntime and openvino only where installed; a machine's "
        "own `live-restore bench --record` overrides it).",
    )
    normalisation: Normalisation = Normalisation()
    axis: Literal["t", "z"] | None = Field(
        None, description="The MDA axis an interpolation model fills in (t: time, z: planes)."
    )


class ModelSpec(Architecture):
    """Contents of model.yaml: the architecture's fields, with the name first."""

    model_config = ConfigDict(extra="forbid", frozen=False)

    name: str = Field(description="Registry name, e.g. dfcan-sr2x.")
    optics: dict[str, float] = Field(
        default_factory=dict, description="NA, emission_wavelength_nm, pixel_um trained for."
    )
    cpu_precisions: list[CpuPrecision] = Field(
        default_factory=lambda: list[CpuPrecision](["fp32"]),
        description="Precisions 'auto' may run this model at on a CPU, fastest first: fp32, "
        "and each reduced one that lost at most 0.1 dB PSNR and 0.002 MS-SSIM in every "
        "structure x light cell (`live-restore precision-check --record`; the table is in "
        "evaluation.cpu_precision).",
    )
    training: dict[str, Any] = Field(default_factory=dict, description="Data, steps, device.")
    evaluation: dict[str, Any] = Field(default_factory=dict, description="Measured figures.")
    weights_file: str = "weights.safetensors"
    weights_sha256: str = Field("", description="sha256 of the weights file.")

    @model_serializer(mode="wrap")
    def _name_first(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # inherited fields come first in pydantic's order; model.yaml has always begun with name
        data: dict[str, Any] = handler(self)
        if data.get("axis") is None:  # only interpolation models have one; the others' files
            data.pop("axis", None)  # stay as they were written before the field existed
        if data.get("cpu_precisions") == ["fp32"]:  # the default: files without reduced ones
            data.pop("cpu_precisions", None)  # stay as they were
        return {key: data[key] for key in ("name",) if key in data} | data

    @property
    def network(self) -> Architecture:
        """The architecture part of this description (what a training recipe names)."""
        return Architecture.model_validate(
            {field: getattr(self, field) for field in Architecture.model_fields}
        )


def engines_dir() -> Path:
    """The folder that holds the shipped models (packaged in a wheel, or the checkout's)."""
    for folder in (_PACKAGE_DIR / "engines", _PACKAGE_DIR.parent.parent / "engines"):
        if folder.is_dir():
            return folder
    raise ModelLoadError("the shipped models folder (engines/) is missing from this install")


def model_dir(name_or_path: str | Path) -> Path:
    """A model's folder: a path to a folder with model.yaml, or a shipped model's name."""
    path = Path(name_or_path).expanduser()
    if (path / "model.yaml").is_file():
        return path
    shipped = engines_dir() / str(name_or_path)
    if (shipped / "model.yaml").is_file():
        return shipped
    available = sorted(p.parent.name for p in engines_dir().glob("*/model.yaml"))
    raise ModelLoadError(
        f"no model {str(name_or_path)!r}: not a folder with model.yaml, and not one of the "
        f"shipped models ({', '.join(available) or 'none'})"
    )


def read_spec(folder: Path) -> ModelSpec:
    """Parse ``folder/model.yaml`` with the safe loader; ModelLoadError if it is not valid."""
    path = folder / "model.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return ModelSpec.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise ModelLoadError(f"{path} is not a valid model description: {error}") from error


def write_spec(folder: Path, spec: ModelSpec) -> Path:
    """Write ``folder/model.yaml``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.yaml"
    path.write_text(
        yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return path


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
