"""Training data and training for ``interp-t`` (time) and ``interp-z`` (planes).

Examples come from the simulator with exact truth (``simulate/_scenes.py``):
- time: a :class:`MovingScene` rendered at fractions 0, ``f`` and 1 of an interval: every layer
  translates 0-5 px per interval (two directions), the field deforms by up to 2 px, 2 % bleaches;
- z: a :class:`LayeredSample` (3-6 structures over 3 µm of depth) at two planes a user's step
  apart (0.3-0.9 µm; twice the axial Nyquist step is 0.43 µm at NA 1.49) and the plane at ``f``.

The noise-free frames are rendered once; each batch draws fresh camera noise for the two real
frames, a random 64 px crop and one of the square's 8 symmetries. Inputs are normalised by the
pair's joint percentiles (``models/_normalise.py``, what the session does); the target is the
noise-free frame in the same units. Fractions: half at 1/2, the rest uniform in (0.05, 0.95).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from live_restore.models import (
    Architecture,
    ModelSpec,
    ModelTask,
    Normalisation,
    build_network,
    file_sha256,
    interp_inputs,
    write_spec,
)
from live_restore.simulate import (
    CameraParams,
    LayeredSample,
    MovingScene,
    OpticsParams,
    axial_nyquist_um,
    expose,
)

from ._trainer import Trainer, TrainResult, TrainSettings, Validation, run_facts

__all__ = [
    "INTERP_MODELS",
    "InterpExamples",
    "InterpSampler",
    "render_interp_examples",
    "train_interp",
]

INTERP_MODELS = {"interp-t": "t", "interp-z": "z"}
_NETWORK = Architecture(
    task=ModelTask.INTERPOLATION,
    architecture="interp",
    arguments={"features": [16, 24, 32, 48]},
    multiple_of=16,
    tile_px=512,
    cpu_backend="onnxruntime",  # 345 vs 383 ms a 512x512 pair on 2 cores (RESULTS.md)
    normalisation=Normalisation(low_percentile=0.1, high_percentile=99.9, output_range=1.0),
)
_PATCH_PX = 64
_RENDER_PX = 80  # rendered side; batches crop _PATCH_PX from it


@dataclass(frozen=True)
class InterpExamples:
    """Noise-free triplets: ``before``, ``truth`` at ``fraction``, ``after`` (photons)."""

    axis: str  # t | z
    before: np.ndarray  # (N, S, S) float32 expected photons
    after: np.ndarray
    truth: np.ndarray
    fraction: np.ndarray  # (N,)
    peak_photons: np.ndarray  # (N,)
    motion: np.ndarray  # (N,) px per interval (t) or the step in µm (z)

    def __len__(self) -> int:
        return len(self.fraction)


def _fraction(rng: np.random.Generator) -> float:
    return 0.5 if rng.random() < 0.5 else float(rng.uniform(0.05, 0.95))


def render_interp_examples(
    axis: str,
    count: int,
    seed: int,
    size_px: int = _RENDER_PX,
    photon_range: tuple[float, float] = (20.0, 1000.0),
    motion_px: tuple[float, float] = (0.0, 5.0),
    step_um: tuple[float, float] = (0.3, 0.9),
    fractions: tuple[float, ...] | None = None,
    structure: str | None = None,
    progress: bool = False,
) -> InterpExamples:
    """``count`` examples along ``axis`` (``t`` or ``z``), reproducible from ``seed``.

    ``fractions``: draw from these (evaluation); default half 1/2, half uniform. ``structure``:
    one structure for every time example (default: a random one each).
    """
    if axis not in ("t", "z"):
        raise ValueError(f"axis must be 't' or 'z', got {axis!r}")
    from rich.progress import track

    rng = np.random.default_rng([seed, ord(axis)])
    before, after, truth, fraction, peak, motion = [], [], [], [], [], []
    for _ in track(range(count), description=f"rendering {axis} triplets", disable=not progress):
        photons = float(np.exp(rng.uniform(*np.log(photon_range))))
        f = float(rng.choice(fractions)) if fractions else _fraction(rng)
        if axis == "t":
            moved = float(rng.uniform(*motion_px))
            deformation = float(rng.uniform(0, 2))
            scene = MovingScene.random(rng, size_px, photons, moved, deformation, structure)
            frames = scene.photons(0.0), scene.photons(f), scene.photons(1.0)
        else:
            moved = float(rng.uniform(*step_um))
            sample = LayeredSample.random(rng, size_px, photons)
            z0 = float(rng.uniform(-1.5, 1.5 - moved))
            frames = sample.photons(z0), sample.photons(z0 + f * moved), sample.photons(z0 + moved)
        before.append(frames[0])
        truth.append(frames[1])
        after.append(frames[2])
        fraction.append(f)
        peak.append(photons)
        motion.append(moved)
    return InterpExamples(
        axis,
        np.stack(before),
        np.stack(after),
        np.stack(truth),
        np.asarray(fraction, np.float32),
        np.asarray(peak, np.float32),
        np.asarray(motion, np.float32),
    )


def _dihedral(image: np.ndarray, k: int) -> np.ndarray:
    turned = np.rot90(image, k % 4, axes=(-2, -1))
    return turned[..., ::-1] if k >= 4 else turned


class InterpSampler:
    """Batches from :class:`InterpExamples`: fresh noise, random crop and symmetry."""

    def __init__(
        self, examples: InterpExamples, camera: CameraParams | None = None, patch_px: int = 64
    ) -> None:
        self.examples = examples
        self.camera = camera or CameraParams()
        self.patch_px = patch_px

    def example(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Input ``(3, P, P)`` and target ``(1, P, P)`` for example ``i``."""
        e, p = self.examples, self.patch_px
        side = e.before.shape[-1]
        top, left = (int(v) for v in rng.integers(0, side - p + 1, 2))
        k = int(rng.integers(8))
        crop = (slice(top, top + p), slice(left, left + p))
        triplet = [_dihedral(a[i][crop], k) for a in (e.before, e.truth, e.after)]
        counts = [expose(np.ascontiguousarray(a), self.camera, rng) for a in triplet[::2]]
        planes, scale = interp_inputs(
            counts[0], counts[1], [float(e.fraction[i])], _NETWORK.normalisation
        )
        conversion = self.camera.photon_conversion
        target = scale.forward(conversion.counts(triplet[1]))
        return planes[0], target[None]

    def batch(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` random examples."""
        chosen = rng.integers(0, len(self.examples), size)
        pairs = [self.example(int(i), rng) for i in chosen]
        inputs = torch.from_numpy(np.stack([x for x, _ in pairs]))
        targets = torch.from_numpy(np.stack([y for _, y in pairs]))
        return inputs, targets


def _charbonnier(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    loss: torch.Tensor = torch.sqrt((net(x) - y) ** 2 + 1e-6).mean()
    return loss


def _validation(examples: InterpExamples, seed: int) -> tuple[Validation, float]:
    sampler = InterpSampler(examples)
    rng = np.random.default_rng([seed, 7])
    pairs = [sampler.example(i, rng) for i in range(len(examples))]
    inputs = torch.from_numpy(np.stack([x for x, _ in pairs]))
    targets = torch.from_numpy(np.stack([y for _, y in pairs]))
    linear = inputs[:, 0:1] * (1 - inputs[:, 2:3]) + inputs[:, 1:2] * inputs[:, 2:3]

    def psnr(prediction: torch.Tensor) -> float:
        mse = ((prediction - targets) ** 2).mean(dim=(1, 2, 3))
        return float((-10 * torch.log10(mse.clamp_min(1e-12))).mean())

    baseline = psnr(linear)

    def score(net: nn.Module) -> dict[str, float]:
        model = psnr(net(inputs))
        return {"val_psnr_db": model, "gain_over_linear_db": model - baseline}

    return score, baseline


def train_interp(
    name: str,
    folder: Path,
    steps: int = 5000,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    examples: int = 1500,
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    max_seconds: float | None = None,
) -> tuple[ModelSpec, TrainResult]:
    """Train ``interp-t`` or ``interp-z`` on simulated triplets; write its model folder."""
    if name not in INTERP_MODELS:
        raise ValueError(f"no interpolation model {name!r}; known: {', '.join(INTERP_MODELS)}")
    axis = INTERP_MODELS[name]
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    network = build_network(_NETWORK.architecture, _NETWORK.arguments)
    data = render_interp_examples(axis, examples, seed, progress=progress)
    held_out = render_interp_examples(axis, 48, seed + 10_000, size_px=_PATCH_PX)
    validate, baseline = _validation(held_out, seed)
    settings = TrainSettings(
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        validate_every=max(1, min(250, steps // 10)),
        checkpoint_every=250,
        max_seconds=max_seconds,
    )
    trainer = Trainer(
        network,
        _charbonnier,
        InterpSampler(data),
        validate,
        settings,
        folder,
    )
    result = trainer.run(resume=resume, progress=progress)
    weights = folder / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(weights))
    optics = OpticsParams()
    what = (
        "moving scenes: every layer translates 0-5 px per interval, the field deforms up to 2 px"
        if axis == "t"
        else f"layered samples (3-6 structures over 3 µm), steps 0.3-0.9 µm (2x axial Nyquist "
        f"= {2 * axial_nyquist_um(optics):.2f} µm)"
    )
    spec = ModelSpec(
        name=name,
        **(dict(_NETWORK) | {"axis": axis}),
        optics={
            "na": optics.na,
            "emission_wavelength_nm": optics.emission_wavelength_nm,
            "pixel_um": optics.pixel_um,
        },
        training={
            "description": f"IFRNet-style interpolation ({'time' if axis == 't' else 'z'}), "
            "CPU size: pyramid 16/24/32/48 channels",
            "data": f"simulated: {examples} triplets of {_RENDER_PX} px, {what}; peak photons "
            "log-uniform 20-1000; fresh camera noise per batch; 64 px crops, 8 symmetries",
            "loss": "Charbonnier vs the noise-free frame at the fraction",
            "steps": result.steps_done,
            "batch_size": batch_size,
            "patch_size": _PATCH_PX,
            "learning_rate": f"{learning_rate} cosine to 0.05x",
            "seed": seed,
            **run_facts(result, digits=4),
        },
        weights_sha256=file_sha256(weights),
    )
    spec.training["validation"]["linear_psnr_db"] = round(baseline, 4)
    write_spec(folder, spec)
    return spec, result
