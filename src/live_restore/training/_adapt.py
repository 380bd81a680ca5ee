"""Adapt a shipped interpolation model to the user's own stack, without ground truth.

``live-restore adapt interp-z STACK --out DIR``: the acquired planes (or time points) are their
own teacher. Each triplet of consecutive planes ``(i - 1, i, i + 1)`` is an example: the model
gets ``i - 1`` and ``i + 1`` and predicts the frame half-way, whose target is the acquired
plane ``i``. That target is noisy, but its noise is independent of the inputs' and has zero
mean, so the network learns its expectation (Noise2Noise, Lehtinen et al. 2018), which is what
InterpolAI does on the user's own data (fine-tuning its interpolator on the stack in hand).

An honest check: the last fifth of each series is held out (its frames are never an input or a
target in training), and the held-out error of the same triplet task is measured before and
after. When adapting does not lower it, the parent's weights are kept and the record says so.
The model folder records the parent, its weights' sha256, the input's digest and shape, the
steps, the minutes and both held-out errors.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from live_restore.models import ModelTask, file_sha256, interp_inputs, load_network, write_spec

from ._trainer import Trainer, TrainSettings

__all__ = ["AdaptResult", "adapt_model", "read_stack"]

HELD_OUT_FRACTION = 0.2
MIN_POSITIONS = 6  # 2 training triplets' frames and 1 held-out triplet, disjoint
_PATCH_PX = 64


@dataclass(frozen=True)
class AdaptResult:
    """What adapting did, as the model folder records it."""

    folder: Path
    kept: str  # "adapted" or "parent"
    held_out_before: float
    held_out_after: float
    held_out_linear: float
    steps: int
    seconds: float
    training_triplets: int
    held_out_triplets: int


def read_stack(path: str | Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Every frame of an OME-Zarr image (NGFF 0.4/0.5, our raw stores) or OME-TIFF, its axes.

    The last two axes are y, x. ValueError naming the file when it is neither.
    """
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff") or path.name.lower().endswith(".ome.tif"):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                axes = tuple(series.axes.lower().replace("q", "t"))
                data = series.asarray()
        except (OSError, ValueError, tifffile.TiffFileError) as e:
            raise ValueError(f"{path} is not a readable (OME-)TIFF: {e}") from None
        return np.asarray(data), axes
    import zarr

    from live_restore.serving import ZarrImageError, open_inputs

    try:
        images = open_inputs(path)
    except ZarrImageError as e:
        raise ValueError(str(e)) from None
    image = next(iter(images.values()))
    array = zarr.open_group(str(image.path), mode="r")[image.dataset]
    assert isinstance(array, zarr.Array)
    return np.asarray(array[...]), image.axes


def _series(stack: np.ndarray, axes: tuple[str, ...], axis: str) -> list[np.ndarray]:
    """Each 1-D run of frames along ``axis`` (one per combination of the other axes)."""
    if axis not in axes[:-2]:
        raise ValueError(f"the input has no '{axis}' axis to adapt along (axes: {''.join(axes)})")
    moved = np.moveaxis(stack, axes.index(axis), -3)
    runs = moved.reshape(-1, *moved.shape[-3:])
    return [np.asarray(run, np.float32) for run in runs]


def _triplets(run: np.ndarray, centres: range) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [(run[i - 1], run[i], run[i + 1]) for i in centres]


def _example(
    triplet: tuple[np.ndarray, np.ndarray, np.ndarray], spec: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Network input ``(3, H, W)`` (the outer frames at fraction 1/2) and target ``(1, H, W)``."""
    before, middle, after = triplet
    planes, scale = interp_inputs(before, after, [0.5], spec.normalisation)
    return planes[0], scale.forward(middle)[None]


class _Triplets:
    """Random crops and symmetries of the training triplets (the Trainer's batch source)."""

    def __init__(self, examples: list[tuple[np.ndarray, np.ndarray]], patch_px: int) -> None:
        self.examples = examples
        self.patch_px = patch_px

    def batch(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = [], []
        for i in rng.integers(0, len(self.examples), size):
            x, y = self.examples[int(i)]
            side_y, side_x = x.shape[-2:]
            p_y, p_x = min(self.patch_px, side_y), min(self.patch_px, side_x)
            top = int(rng.integers(0, side_y - p_y + 1))
            left = int(rng.integers(0, side_x - p_x + 1))
            k = int(rng.integers(4 if p_y != p_x else 8))
            pair = [a[:, top : top + p_y, left : left + p_x] for a in (x, y)]
            pair = [np.rot90(a, k % 4, axes=(-2, -1)) for a in pair]
            if k >= 4:
                pair = [a[..., ::-1] for a in pair]
            inputs.append(np.ascontiguousarray(pair[0]))
            targets.append(np.ascontiguousarray(pair[1]))
        return torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(targets))


def _held_out_error(network: nn.Module, examples: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean absolute error on the held-out triplets (normalised units), whole frames."""
    network.eval()
    errors = []
    with torch.no_grad():
        for x, y in examples:
            pad = [(-s) % 16 for s in x.shape[-2:]]
            inputs = torch.from_numpy(np.pad(x, ((0, 0), (0, pad[0]), (0, pad[1])), "reflect"))
            out = network(inputs[None])[0, :, : x.shape[-2], : x.shape[-1]].numpy()
            errors.append(float(np.mean(np.abs(out - y))))
    return float(np.mean(errors))


def _linear_error(examples: list[tuple[np.ndarray, np.ndarray]]) -> float:
    return float(np.mean([np.mean(np.abs(0.5 * (x[0] + x[1]) - y[0])) for x, y in examples]))


def adapt_model(
    model: str | Path,
    input_path: str | Path,
    out: str | Path,
    *,
    minutes: float = 10.0,
    axis: str | None = None,
    name: str | None = None,
    max_steps: int = 100_000,
    learning_rate: float = 1e-4,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> AdaptResult:
    """Fine-tune ``model`` on ``input_path`` for at most ``minutes``; write the folder ``out``.

    ValueError, in one line, for a model that cannot adapt here, an input too small to adapt
    on, or an output folder that exists.
    """
    from safetensors.torch import save_file

    spec, network, parent_folder = load_network(model)
    if spec.task is not ModelTask.INTERPOLATION:
        raise ValueError(
            f"{spec.name} cannot adapt here: adapting is built for the interpolation models "
            "(interp-t, interp-z), whose acquired frames are their own targets"
        )
    axis = axis or spec.axis or "t"
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} exists; give a new folder for the adapted model")
    stack, axes = read_stack(input_path)
    if stack.dtype.kind not in "uif" or not np.isfinite(stack).all():
        raise ValueError(f"{input_path} holds {stack.dtype} frames with non-finite values")
    runs = _series(stack, axes, axis)
    length = runs[0].shape[0]
    if length < MIN_POSITIONS:
        raise ValueError(
            f"{input_path} has {length} positions along '{axis}'; adapting needs at least "
            f"{MIN_POSITIONS} (training triplets and a held-out one, disjoint)"
        )
    cut = length - max(3, round(HELD_OUT_FRACTION * length))  # the held-out frames: cut..end
    training = [_example(t, spec) for run in runs for t in _triplets(run, range(1, cut - 1))]
    held_out = [
        _example(t, spec) for run in runs for t in _triplets(run, range(cut + 1, length - 1))
    ]
    before = _held_out_error(network, held_out)
    linear = _linear_error(held_out)
    parent_state = {k: v.clone() for k, v in network.state_dict().items()}

    def validate(net: nn.Module) -> dict[str, float]:
        error = _held_out_error(net, held_out)
        net.train()
        return {"held_out_error": error}

    out.mkdir(parents=True)
    settings = TrainSettings(
        steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        final_learning_rate_fraction=1.0,  # a fine-tune stopped by the clock: a flat rate
        seed=seed,
        validate_every=max_steps,
        checkpoint_every=max_steps,
        max_seconds=minutes * 60.0,
    )
    torch.manual_seed(seed)
    network.train()
    started = time.monotonic()
    trainer = Trainer(
        network, _l2, _Triplets(training, _PATCH_PX), validate, settings, out, device="cpu"
    )
    result = trainer.run(progress=progress)
    seconds = time.monotonic() - started
    after = _held_out_error(network, held_out)
    kept = "adapted" if after < before else "parent"
    if kept == "parent":
        network.load_state_dict(parent_state)
    (out / "checkpoint.safetensors").unlink(missing_ok=True)  # history.csv stays: the run's log
    weights = out / spec.weights_file
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(weights))
    digest = hashlib.sha256(np.ascontiguousarray(stack).tobytes()).hexdigest()
    adapted = spec.model_copy(
        update={
            "name": name or f"{spec.name}-adapted",
            "weights_sha256": file_sha256(weights),
            "training": {
                **spec.training,
                "adapted": {
                    "parent": spec.name,
                    "parent_folder": str(parent_folder),
                    "parent_weights_sha256": spec.weights_sha256,
                    "input": str(Path(input_path).resolve()),
                    "input_sha256": digest,
                    "input_shape": list(stack.shape),
                    "input_axes": "".join(axes),
                    "axis": axis,
                    "method": "Noise2Noise on acquired triplets: (i-1, i+1) at 1/2 -> i",
                    "training_triplets": len(training),
                    "held_out_triplets": len(held_out),
                    "held_out": f"the last {length - cut} of {length} positions of each series",
                    "steps": result.steps_done,
                    "minutes": round(seconds / 60, 2),
                    "held_out_error_before": round(before, 6),
                    "held_out_error_after": round(after, 6),
                    "held_out_error_linear": round(linear, 6),
                    "error": "mean |prediction - acquired middle frame|, normalised units",
                    "kept": kept,
                },
            },
        }
    )
    write_spec(out, adapted)
    return AdaptResult(
        out, kept, before, after, linear, result.steps_done, seconds, len(training), len(held_out)
    )


def _l2(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # with a squared error the network learns the noisy target's expectation (Noise2Noise):
    # the noise-free middle frame, not its noise
    loss: torch.Tensor = ((net(x) - y) ** 2).mean()
    return loss
