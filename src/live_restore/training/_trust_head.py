"""Training a model's trust head: the Laplace scale of its error, learned against truth.

The restoration network stays frozen: examples are simulated fields exposed at random light
(log-uniform 10-500 photons, the CPU tier's training range), restored once by the shipped
model, and paired with the error against the simulator's truth in the restored frame's range
units (``inference/_trust.py``). The head then learns ``b`` by the Laplace negative
log-likelihood ``|error| / b + log b`` on random crops, whose minimum is at ``b`` = the expected
|error| given what the head sees. Seeds are apart from training, calibration and held-out ones.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from live_restore.inference import ModelSession, head_tensors
from live_restore.models import TrustHead
from live_restore.simulate import CameraParams, expose

from ._simulated import render_fields
from ._trainer import cosine_factor
from ._trust_calibration import error_in_output_units

__all__ = ["HEAD_TRAINING_SEED", "HeadExample", "head_examples", "train_trust_head"]

HEAD_TRAINING_SEED = 60_000  # training, calibration and held-out fields use 0 / 20k / 40k


@dataclass(frozen=True)
class HeadExample:
    """One exposure: the head's inputs and the restoration's error, in range units."""

    raw: torch.Tensor  # (1, H, W)
    restored: torch.Tensor  # (1, sH, sW)
    error: torch.Tensor  # (1, sH, sW)


def head_examples(
    session: ModelSession,
    structures: Sequence[str],
    fields: int,
    frame_size: int = 128,
    exposures: int = 4,
    photon_range: tuple[float, float] = (10.0, 500.0),
    seed: int = HEAD_TRAINING_SEED,
) -> list[HeadExample]:
    """``exposures`` noisy frames of each simulated field, restored, with their errors."""
    camera = CameraParams()
    rng = np.random.default_rng(seed)
    examples = []
    for stack in render_fields(structures, fields, frame_size, seed, progress=True):
        low, high = np.log(photon_range[0]), np.log(photon_range[1])
        photons = np.exp(rng.uniform(low, high, size=exposures))
        counts = np.stack(
            [expose(stack.widefield[stack.focus_index] * p, camera, rng) for p in photons]
        ).astype(np.float32)
        restored = session.restore_batch(counts)
        for frame, output, p in zip(counts, restored, photons, strict=True):
            raw, out, out_span = head_tensors(frame, output)
            error = error_in_output_units(output, stack.sr * p) / out_span
            examples.append(HeadExample(raw[0], out[0], torch.from_numpy(error[None]).float()))
    return examples


def _crops(
    examples: Sequence[HeadExample], size: int, crop_px: int, scale: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    raws, outs, errors = [], [], []
    for index in rng.integers(len(examples), size=size):
        example = examples[int(index)]
        rows, cols = example.raw.shape[-2:]
        r = int(rng.integers(rows - crop_px + 1))
        c = int(rng.integers(cols - crop_px + 1))
        window = (slice(r * scale, (r + crop_px) * scale), slice(c * scale, (c + crop_px) * scale))
        raws.append(example.raw[:, r : r + crop_px, c : c + crop_px])
        outs.append(example.restored[(slice(None), *window)])
        errors.append(example.error[(slice(None), *window)])
    return torch.stack(raws), torch.stack(outs), torch.stack(errors)


def train_trust_head(
    examples: Sequence[HeadExample],
    scale: int,
    steps: int = 2000,
    batch_size: int = 16,
    crop_px: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> tuple[TrustHead, dict[str, float]]:
    """The head trained on ``examples``; facts of the run (final loss, seconds)."""
    from rich.progress import track

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = TrustHead(scale)
    optimiser = torch.optim.Adam(head.parameters(), lr=learning_rate)
    started = time.perf_counter()
    recent: list[float] = []
    for step in track(range(steps), description="training the trust head", transient=True):
        # cosine to a twentieth: the last steps settle instead of bouncing
        fraction = step / max(steps - 1, 1)
        rate = learning_rate * cosine_factor(fraction, 0.05)
        for group in optimiser.param_groups:
            group["lr"] = rate
        raw, restored, error = _crops(examples, batch_size, crop_px, scale, rng)
        b = head(raw, restored)
        loss = (error.abs() / b + torch.log(b)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        recent = [*recent[-99:], loss.item()]
    head.eval()
    return head, {
        "steps": steps,
        "final_loss": float(np.mean(recent)),
        "seconds": round(time.perf_counter() - started, 1),
    }
