"""Training data and training for ``mfsr-sr2x``: windows of moving low-light frames -> 2x.

Each example is a :class:`~live_restore.simulate.MovingScene` rendered at five consecutive frame
times (fractions -2..2 of one frame interval): every layer moves 0-2 px per frame (two
directions), the field deforms by up to 1 px per frame, 2 % bleaches per frame; the truth is
the centre frame's 2x image (``sr_photons``). Peak light 10-300 photons, log-uniform. Each batch
draws fresh camera noise per frame, a 64 px crop (128 px of truth) and one of 8 symmetries;
the window's joint percentiles normalise it (as the session does), and the target is the truth
in those units divided by the output range, as for DFCAN. A quarter of the windows have their
future replaced by the centre frame repeated (causal mode, a series' end) and a tenth their
past (a series' start): the live stage's edges are in the training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from live_restore.models import (
    DFCAN,
    Architecture,
    MFSRNet,
    ModelSpec,
    ModelTask,
    Normalisation,
    build_network,
    file_sha256,
    frame_scale,
    load_network,
    write_spec,
)
from live_restore.simulate import CameraParams, MovingScene, OpticsParams, expose

from ._losses import mse_ssim_loss
from ._trainer import Trainer, TrainResult, TrainSettings, Validation, run_facts

__all__ = ["MFSR_NETWORK", "WindowExamples", "WindowSampler", "render_windows", "train_mfsr"]

WINDOW = 5
MFSR_NETWORK = Architecture(
    task=ModelTask.MULTI_FRAME_SR,
    architecture="mfsr",
    arguments={
        "window": WINDOW,
        "features": 16,
        "groups": 2,
        "blocks": 2,
        "reduction": 4,
        "flow_features": 16,
        "spectrum_reference_px": 64,
    },
    scale=2,
    multiple_of=8,
    tile_px=512,
    cpu_backend="onnxruntime",  # 1.34 vs 1.81 s a 512x512 window on 2 cores (RESULTS.md)
    normalisation=Normalisation(low_percentile=0.1, high_percentile=99.9, output_range=4.0),
)
_PATCH_PX = 64
_RENDER_PX = 80


@dataclass(frozen=True)
class WindowExamples:
    """Noise-free windows ``(N, WINDOW, S, S)`` and their centre's 2x truth ``(N, 2S, 2S)``."""

    frames: np.ndarray
    truth: np.ndarray
    peak_photons: np.ndarray
    motion_px: np.ndarray  # per frame

    def __len__(self) -> int:
        return len(self.frames)


def render_windows(
    count: int,
    seed: int,
    size_px: int = _RENDER_PX,
    photon_range: tuple[float, float] = (10.0, 300.0),
    motion_px: tuple[float, float] = (0.0, 2.0),
    structure: str | None = None,
    progress: bool = False,
) -> WindowExamples:
    """``count`` windows, reproducible from ``seed`` (``structure``: one for all)."""
    from rich.progress import track

    rng = np.random.default_rng([seed, 5])
    frames, truth, peak, motion = [], [], [], []
    half = WINDOW // 2
    for _ in track(range(count), description="rendering windows", disable=not progress):
        photons = float(np.exp(rng.uniform(*np.log(photon_range))))
        moved = float(rng.uniform(*motion_px))
        deform = float(rng.uniform(0.0, min(1.0, moved + 0.2)))
        # per frame: the scene's interval is one frame, rendered at -2..2 intervals
        scene = MovingScene.random(rng, size_px, photons, 2 * moved, 2 * deform, structure)
        scene = _per_frame(scene)
        frames.append(np.stack([scene.photons(float(k)) for k in range(-half, half + 1)]))
        truth.append(scene.sr_photons(0.0))
        peak.append(photons)
        motion.append(moved)
    return WindowExamples(
        np.stack(frames), np.stack(truth), np.asarray(peak, np.float32),
        np.asarray(motion, np.float32),
    )  # fmt: skip


def _per_frame(scene: MovingScene) -> MovingScene:
    """The scene with its motion halved: made with margins for two frames' motion each way."""
    from dataclasses import replace

    return replace(
        scene,
        drift_px=(scene.drift_px[0] / 2, scene.drift_px[1] / 2),
        velocity_px=(scene.velocity_px[0] / 2, scene.velocity_px[1] / 2),
        displacement_px=scene.displacement_px / 2,
    )


def _dihedral(image: np.ndarray, k: int) -> np.ndarray:
    turned = np.rot90(image, k % 4, axes=(-2, -1))
    return turned[..., ::-1] if k >= 4 else turned


class WindowSampler:
    """Batches from :class:`WindowExamples`: fresh noise, crop, symmetry, edge padding."""

    def __init__(self, examples: WindowExamples, camera: CameraParams | None = None) -> None:
        self.examples = examples
        self.camera = camera or CameraParams()

    def example(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Input ``(WINDOW, P, P)`` and target ``(1, 2P, 2P)`` for window ``i``."""
        frames, truth = self.examples.frames[i], self.examples.truth[i]
        counts = np.stack([expose(f, self.camera, rng) for f in frames]).astype(np.float32)
        centre = WINDOW // 2
        edge = rng.random()
        if edge < 0.25:  # causal mode / a series' end: the future is the centre repeated
            counts[centre + 1 :] = counts[centre]
        elif edge < 0.35:  # a series' start
            counts[:centre] = counts[centre]
        scale = frame_scale(counts, MFSR_NETWORK.normalisation)
        truth_counts = self.camera.photon_conversion.counts(truth)
        target = scale.forward(truth_counts) / np.float32(MFSR_NETWORK.normalisation.output_range)
        p = _PATCH_PX
        top, left = (int(v) for v in rng.integers(0, frames.shape[-1] - p + 1, 2))
        k = int(rng.integers(8))
        window = _dihedral(scale.forward(counts)[:, top : top + p, left : left + p], k)
        target = _dihedral(target[2 * top : 2 * (top + p), 2 * left : 2 * (left + p)], k)
        return np.ascontiguousarray(window), np.ascontiguousarray(target)[None]

    def batch(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` random windows."""
        chosen = rng.integers(0, len(self.examples), size)
        pairs = [self.example(int(i), rng) for i in chosen]
        return (
            torch.from_numpy(np.stack([x for x, _ in pairs])),
            torch.from_numpy(np.stack([y for _, y in pairs])),
        )


def _loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return mse_ssim_loss(net(x), y)


def _validation(examples: WindowExamples, seed: int) -> Validation:
    sampler = WindowSampler(examples)
    rng = np.random.default_rng([seed, 11])
    pairs = []
    for i in range(len(examples)):
        while True:  # whole windows only (no edge padding) for a stable score
            x, y = sampler.example(i, rng)
            if not np.array_equal(x[-1], x[WINDOW // 2]) and not np.array_equal(x[0], x[2]):
                break
        pairs.append((x, y))
    inputs = torch.from_numpy(np.stack([x for x, _ in pairs]))
    targets = torch.from_numpy(np.stack([y for _, y in pairs]))

    def score(net: nn.Module) -> dict[str, float]:
        error = ((net(inputs) - targets) ** 2).mean(dim=(1, 2, 3)).sqrt()
        span = targets.amax(dim=(1, 2, 3)) - targets.amin(dim=(1, 2, 3))
        return {"val_nrmse": float((error / span).mean())}

    return score


def train_mfsr(
    folder: Path,
    steps: int = 3000,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    examples: int = 600,
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    max_seconds: float | None = None,
) -> tuple[ModelSpec, TrainResult]:
    """Train ``mfsr-sr2x`` on simulated windows; write its model folder."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    network = build_network(MFSR_NETWORK.architecture, MFSR_NETWORK.arguments)
    # from single-frame DFCAN (the CPU tier, the trunk's size): it learns what neighbours add
    _, dfcan, _ = load_network("dfcan-sr2x-tiny")
    assert isinstance(network, MFSRNet) and isinstance(dfcan, DFCAN)
    network.start_from_dfcan(dfcan)
    data = render_windows(examples, seed, progress=progress)
    held_out = render_windows(24, seed + 10_000, size_px=_PATCH_PX, photon_range=(10, 30))
    settings = TrainSettings(
        steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
        validate_every=max(1, min(250, steps // 10)), checkpoint_every=250,
    )  # fmt: skip
    trainer = Trainer(
        network, _loss, WindowSampler(data), _validation(held_out, seed), settings, folder
    )
    result = trainer.run(resume=resume, progress=progress)
    weights = folder / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(weights))
    optics = OpticsParams()
    spec = ModelSpec(
        name="mfsr-sr2x",
        **dict(MFSR_NETWORK),
        optics={
            "na": optics.na,
            "emission_wavelength_nm": optics.emission_wavelength_nm,
            "pixel_um": optics.pixel_um,
        },
        training={
            "description": "multi-frame 2x SR, CPU size: SPyNet-style flow (3 levels), "
            "grid_sample alignment, EDVR temporal attention, DFCAN trunk (16 features, 2x2 "
            "FCABs); window of 5, output for the centre",
            "initialised_from": "dfcan-sr2x-tiny (trunk, tail, head; fusion passing the "
            "centre frame): single-frame DFCAN at step 0",
            "data": f"simulated: {examples} windows of 5 frames, {_RENDER_PX} px; every layer "
            "moves 0-2 px per frame, deformation up to 1 px per frame, 2 % bleaching per "
            "frame; peak photons log-uniform 10-300; fresh camera noise per batch; 64 px crops, "
            "8 symmetries; 25 % causal (future = centre), 10 % series-start windows",
            "loss": "MSE + 0.1·(1 − SSIM)",
            "steps": result.steps_done,
            "batch_size": batch_size,
            "patch_size": _PATCH_PX,
            "learning_rate": f"{learning_rate} cosine to 0.05x",
            "seed": seed,
            **run_facts(result),
        },
        weights_sha256=file_sha256(weights),
    )
    write_spec(folder, spec)
    return spec, result
