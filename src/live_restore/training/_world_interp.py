"""interp-z on the wider world (``simulate/_world.py``), with families left out at will.

Each example is a triplet of one draw (planes a step of 0.3-0.9 µm apart, the truth at a
fraction between) with that draw's own camera (sCMOS maps or an EMCCD) for the noise,
drawn afresh each batch. The target is the noise-free plane in the counts the user's camera
would give it with its mean gain and offset: what the session's output means to the user.

``finetune_world`` starts from the shipped weights (a warm start: a CPU budget, not a retrain
from scratch) and trains on every family but ``exclude``: the leave-one-out table's models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from live_restore.models import file_sha256, interp_inputs, load_network, write_spec
from live_restore.simulate import WorldCamera, draw_world, layered_sample

from ._interp import _charbonnier, _dihedral
from ._trainer import Trainer, TrainResult, TrainSettings, run_facts

__all__ = ["WorldExamples", "WorldSampler", "finetune_world", "render_world_examples"]

_RENDER_PX = 80
_PATCH_PX = 64


@dataclass(frozen=True)
class WorldExamples:
    """Noise-free z triplets of world draws, each with its family and camera."""

    before: np.ndarray  # (N, S, S) photons
    truth: np.ndarray
    after: np.ndarray
    fraction: np.ndarray
    families: tuple[str, ...]
    cameras: tuple[WorldCamera, ...]

    def __len__(self) -> int:
        return len(self.fraction)

    def only(self, families: set[str]) -> WorldExamples:
        """The examples of these families."""
        keep = [i for i, f in enumerate(self.families) if f in families]
        return WorldExamples(
            self.before[keep], self.truth[keep], self.after[keep], self.fraction[keep],
            tuple(self.families[i] for i in keep), tuple(self.cameras[i] for i in keep),
        )  # fmt: skip


def render_world_examples(
    count: int, seed: int, families: tuple[str, ...] | None = None, progress: bool = False
) -> WorldExamples:
    """``count`` triplets, families in turn (default all), reproducible from ``seed``."""
    from rich.progress import track

    from live_restore.simulate import FAMILIES

    families = families or FAMILIES
    rng = np.random.default_rng([seed, 43])
    before, truth, after, fraction, names, cameras = [], [], [], [], [], []
    for i in track(range(count), description="rendering world triplets", disable=not progress):
        draw = draw_world(rng, families[i % len(families)])
        sample = layered_sample(draw, _RENDER_PX)
        step = float(rng.uniform(0.3, 0.9))
        f = 0.5 if rng.random() < 0.5 else float(rng.uniform(0.05, 0.95))
        z0 = float(rng.uniform(-2.0, 2.0 - step))
        frames = [sample.photons(z0 + k * step) for k in (0.0, f, 1.0)]
        if draw.autofluorescence > 0:
            frames = [a + np.float32(draw.autofluorescence * draw.peak_photons) for a in frames]
        before.append(frames[0])
        truth.append(frames[1])
        after.append(frames[2])
        fraction.append(f)
        names.append(draw.family)
        cameras.append(WorldCamera.random(rng, (_RENDER_PX, _RENDER_PX)))
    return WorldExamples(
        np.stack(before), np.stack(truth), np.stack(after), np.asarray(fraction, np.float32),
        tuple(names), tuple(cameras),
    )  # fmt: skip


class WorldSampler:
    """Batches of world examples: each example's own camera, a random crop and symmetry."""

    def __init__(self, examples: WorldExamples, normalisation: object, patch_px: int = _PATCH_PX):
        self.examples = examples
        self.normalisation = normalisation
        self.patch_px = patch_px

    def example(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Input ``(3, P, P)`` and target ``(1, P, P)`` for example ``i``."""
        e, p = self.examples, self.patch_px
        side = e.before.shape[-1]
        top, left = (int(v) for v in rng.integers(0, side - p + 1, 2))
        crop = (slice(top, top + p), slice(left, left + p))
        camera = e.cameras[i]
        window = WorldCamera(
            camera.kind, camera.offset_adu[crop], camera.gain_adu_per_e[crop],
            camera.read_noise_e[crop],
        )  # fmt: skip
        k = int(rng.integers(8))
        counts = [_dihedral(window.expose(a[i][crop], rng), k) for a in (e.before, e.after)]
        planes, scale = interp_inputs(
            counts[0],
            counts[1],
            [float(e.fraction[i])],
            self.normalisation,  # type: ignore[arg-type]
        )
        truth_counts = e.truth[i][crop] * camera.mean_gain_adu_per_e + camera.mean_offset_adu
        return planes[0], scale.forward(_dihedral(truth_counts, k))[None]

    def batch(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` random examples."""
        pairs = [self.example(int(i), rng) for i in rng.integers(0, len(self.examples), size)]
        return (
            torch.from_numpy(np.ascontiguousarray(np.stack([x for x, _ in pairs]))),
            torch.from_numpy(np.ascontiguousarray(np.stack([y for _, y in pairs]))),
        )


def finetune_world(
    parent: str | Path,
    folder: Path,
    examples: WorldExamples,
    exclude: tuple[str, ...] = (),
    steps: int = 600,
    batch_size: int = 16,
    learning_rate: float = 3e-4,
    seed: int = 0,
    name: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune ``parent`` on the examples of every family but ``exclude``; write ``folder``."""
    from safetensors.torch import save_file

    families = sorted(set(examples.families) - set(exclude))
    if not families:
        raise ValueError("no family left to train on")
    chosen = examples.only(set(families))
    spec, network, _ = load_network(parent)
    torch.manual_seed(seed)
    warmup = min(50, steps - 1)
    settings = TrainSettings(
        steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
        validate_every=steps, checkpoint_every=steps, warmup_steps=warmup,
    )  # fmt: skip
    network.train()
    result = Trainer(
        network, _charbonnier, WorldSampler(chosen, spec.normalisation), lambda _: {}, settings,
        folder, device="cpu",
    ).run(progress=progress)  # fmt: skip
    (folder / "checkpoint.safetensors").unlink(missing_ok=True)
    weights = folder / spec.weights_file
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(weights))
    write_spec(
        folder,
        spec.model_copy(
            update={
                "name": name or f"{spec.name}-world",
                "weights_sha256": file_sha256(weights),
                "training": {
                    **spec.training,
                    "world": {
                        "parent": spec.name,
                        "parent_weights_sha256": spec.weights_sha256,
                        "families": families,
                        "left_out": list(exclude),
                        "examples": len(chosen),
                        "data": "simulate/_world.py draws: NA 0.8-1.49 with its immersion, "
                        "450-680 nm, sCMOS maps or EMCCD, autofluorescence 0-15 % (a constant "
                        "background in these 80 px triplets), peak "
                        "photons 20-1000, steps 0.3-0.9 µm",
                        "steps": result.steps_done,
                        "batch_size": batch_size,
                        "learning_rate": f"{learning_rate} cosine, {warmup} warm-up steps",
                        **run_facts(result, digits=4),
                    },
                },
            }
        ),
    )
    return result
