"""Endless training pairs from the simulated microscope.

Rendering is the slow part, noise is cheap: each field of view (structure, sample seed, stage
position) is rendered once without noise, at a set of defocus values and with its 2x truth,
per unit of peak photons. Every training example then draws a photon level (log-uniform), fresh
camera noise, a crop and a flip/rotation, so no two examples repeat. Normalisation uses the
whole noisy frame, as inference does (:func:`live_restore.models.frame_scale`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np
import torch

from live_restore.models import FrameScale, Normalisation, frame_scale
from live_restore.simulate import (
    CameraParams,
    ManualClock,
    OpticsParams,
    SimMicroscope,
    SimPatternParams,
    expose,
)

__all__ = [
    "FieldStack",
    "FocusSampler",
    "RefocusSampler",
    "SRSampler",
    "render_fields",
]


@dataclass(frozen=True)
class FieldStack:
    """One field of view, noise-free, in expected photons per unit of peak photons."""

    structure: str
    defocus_um: np.ndarray  # (Z,)
    widefield: np.ndarray  # (Z, H, W) at each defocus
    in_focus: np.ndarray  # (H, W)
    sr: np.ndarray  # (2H, 2W), per camera-pixel area

    @property
    def focus_index(self) -> int:
        """Index of the plane nearest focus."""
        return int(np.argmin(np.abs(self.defocus_um)))


def field_scope(
    structure: str,
    sample_seed: int,
    frame_size: int,
    rng: np.random.Generator,
    optics: OpticsParams | None = None,
    sim: SimPatternParams | None = None,
) -> SimMicroscope:
    """A still simulated microscope for rendering training fields, at a random stage position.

    Nothing moves or bleaches, and an exposure (10 ms at 100 %) gives one photon at the
    widefield peak, so a rendered field times a photon level is that level's expected image.
    ``rng`` draws the stage position.
    """
    scope = SimMicroscope(
        structure=structure,
        seed=sample_seed,
        frame_shape=(frame_size, frame_size),
        optics=optics,
        sim=sim,
        peak_photons_per_ms=0.1,  # x 10 ms x 100 %: one photon at the widefield peak
        motion_um_per_min=0.0,
        bleach_half_dose_s=1e12,
        clock=ManualClock(),
    )
    scope.exposure_ms, scope.excitation_percent = 10.0, 100.0
    span_um = frame_size * scope.optics.pixel_um
    scope.stage_um[0], scope.stage_um[1] = (float(v) for v in rng.uniform(-span_um, span_um, 2))
    return scope


def render_fields(
    structures: Sequence[str],
    fields_per_structure: int,
    frame_size: int = 128,
    seed: int = 0,
    defocus_um: Sequence[float] = (0.0,),
    optics: OpticsParams | None = None,
    progress: bool = False,
) -> list[FieldStack]:
    """Render ``fields_per_structure`` fields of each structure (reproducible from ``seed``)."""
    from rich.progress import track

    planes = np.asarray(defocus_um, np.float64)
    jobs = [(s, i) for s in structures for i in range(fields_per_structure)]
    stacks = []
    for structure, index in track(
        jobs, description="rendering fields", disable=not progress, transient=True
    ):
        rng = np.random.default_rng([seed, index, len(structure)])
        scope = field_scope(structure, seed * 100_003 + index, frame_size, rng, optics)
        widefield = []
        for z in planes:
            scope.stage_um[2] = float(z)
            widefield.append(scope.expected_photons(scope.record_exposure()))
        scope.stage_um[2] = 0.0
        truth = scope.ground_truth(scope.record_exposure())
        stacks.append(
            FieldStack(
                structure,
                planes,
                np.stack(widefield).astype(np.float32),
                truth.in_focus_widefield.astype(np.float32),
                truth.sr_2x.astype(np.float32),
            )
        )
    return stacks


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _augment(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random rotation by 90° steps and flip for every array of one example."""
    turns, flip = int(rng.integers(4)), bool(rng.integers(2))
    out = []
    for array in arrays:
        array = np.rot90(array, turns)
        out.append(np.ascontiguousarray(array[:, ::-1] if flip else array))
    return out


@dataclass(frozen=True)
class _Draw:
    """One drawn example before its target: the field, light, plane, scale and input crop."""

    field: FieldStack
    photons: float
    plane: int
    scale: FrameScale
    top: int
    left: int
    raw: np.ndarray


class _Field(Protocol):
    @property
    def sr(self) -> np.ndarray:
        """The 2x truth: twice the field's side."""
        ...


FieldT = TypeVar("FieldT", bound=_Field)


class _Sampler(Generic[FieldT]):
    """Shared: a photon range, a camera, a normalisation and a patch size."""

    def __init__(
        self,
        fields: Sequence[FieldT],
        patch_size: int,
        photon_range: tuple[float, float],
        normalisation: Normalisation,
        camera: CameraParams | None = None,
    ) -> None:
        if not fields:
            raise ValueError("no fields to sample from")
        size = fields[0].sr.shape[-1] // 2
        if patch_size > size:
            raise ValueError(f"patch {patch_size} px is larger than the fields ({size} px)")
        self.fields = list(fields)
        self.patch_size = patch_size
        self.photon_range = photon_range
        self.normalisation = normalisation
        self.camera = camera or CameraParams()

    def _counts(self, photons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return expose(photons, self.camera, rng).astype(np.float32)

    def _noise_free_counts(self, photons: np.ndarray) -> np.ndarray:
        return self.camera.photon_conversion.counts(photons)

    def _corner(self, rng: np.random.Generator, size: int) -> tuple[int, int]:
        top, left = rng.integers(0, size - self.patch_size + 1, 2)
        return int(top), int(left)

    def batch(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` examples as (inputs, targets) tensors."""
        pairs = [self.example(rng) for _ in range(size)]
        inputs = torch.from_numpy(np.stack([p[0] for p in pairs]))
        targets = torch.from_numpy(np.stack([p[1] for p in pairs]))
        return inputs, targets

    def example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class _WidefieldSampler(_Sampler[FieldStack]):
    """Draws one widefield frame (a plane of a field) per example."""

    def _draw(self, rng: np.random.Generator, random_plane: bool) -> _Draw:
        """Field, photons, (plane), noise, crop: in this order, so a seed means one example."""
        field = self.fields[int(rng.integers(len(self.fields)))]
        photons = _log_uniform(rng, *self.photon_range)
        plane = int(rng.integers(len(field.defocus_um))) if random_plane else field.focus_index
        counts = self._counts(field.widefield[plane] * photons, rng)
        scale = frame_scale(counts, self.normalisation)
        top, left = self._corner(rng, counts.shape[0])
        p = self.patch_size
        raw = scale.forward(counts[top : top + p, left : left + p])
        return _Draw(field, photons, plane, scale, top, left, raw)


class SRSampler(_WidefieldSampler):
    """Noisy in-focus widefield patch -> 2x ground-truth patch, both in network units."""

    def example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        draw = self._draw(rng, random_plane=False)
        top, left, p = draw.top, draw.left, self.patch_size
        truth_counts = self._noise_free_counts(
            draw.field.sr[2 * top : 2 * (top + p), 2 * left : 2 * (left + p)] * draw.photons
        )
        target = draw.scale.forward(truth_counts) / np.float32(self.normalisation.output_range)
        raw, target = _augment([draw.raw, target], rng)
        return raw[None], target[None]


class RefocusSampler(_WidefieldSampler):
    """Noisy widefield patch at a random defocus -> the noise-free in-focus patch."""

    def example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        draw = self._draw(rng, random_plane=True)
        top, left, p = draw.top, draw.left, self.patch_size
        target = draw.scale.forward(
            self._noise_free_counts(
                draw.field.in_focus[top : top + p, left : left + p] * draw.photons
            )
        )
        raw, target = _augment([draw.raw, target], rng)
        return raw[None], target[None]


class FocusSampler(_WidefieldSampler):
    """Noisy widefield patch at a random defocus -> its signed defocus in µm."""

    def example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        draw = self._draw(rng, random_plane=True)
        (raw,) = _augment([draw.raw], rng)
        return raw[None], np.asarray([draw.field.defocus_um[draw.plane]], np.float32)
