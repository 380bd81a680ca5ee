"""Adapt a shipped model to the user's own stack, without ground truth.

``live-restore adapt interp-z STACK --out DIR``: the acquired frames are their own teacher, in
one of three ways (``method``; the tasks are in ``_adapt_sources.py``):

- ``pairs`` (default along z): each pair of neighbouring planes, the pair the model is used on,
  is recorrupted (``_recorrupt.py``: Poisson-Gaussian noise fitted from the stack, R2R / ZS-
  DeconvNet): the network gets ``(y_hat_i, y_hat_i+1)`` and learns the half-way blend of
  ``(y_bar_i, y_bar_i+1)``, whose noise is independent of its input's, so it learns to
  denoise and blend at the stack's own step. On a simulated user stack (a family left out of
  interp-z's training, planes 0.5 µm apart) this beat the best Gaussian-smoothed blend of each
  pair; ``triplets`` there lost 3.9 dB (``benchmarks/bench_adapt.py``, the results page).
- ``triplets`` (default along t): each triplet ``(i - 1, i, i + 1)`` is an example: the model
  gets ``i - 1`` and ``i + 1`` and the acquired ``i`` is the target (Noise2Noise, Lehtinen et
  al. 2018; what InterpolAI does on the user's own data). The pair spans twice the acquired
  step, which suits steady motion in time better than defocus in z.
- ``consistency`` (the single-frame super-resolution models, dfcan-sr2x-*): each frame is
  recorrupted; the 2x output on ``y_hat``, blurred by the widefield kernel of the user's optics
  (NA, wavelength, pixel) and binned 2x2, must equal ``y_bar`` (ZS-DeconvNet's self-supervised
  deconvolution loss, Qiao et al. 2024), and stays near the parent's output on ``y`` (the
  kernel has a null space: what the blur removes, only the parent's prior says).

An honest check: the last fifth of each series is held out (its frames are never an input or a
target in training), and the held-out squared error of the same task is measured before and
after (an unbiased measure: the targets' noise is independent of the inputs'). When adapting
does not lower it, the parent's weights are kept and the record says so. The model folder
records the parent, its weights' sha256, the input's digest and shape, the method, the steps,
the minutes and both held-out errors.
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

from live_restore.models import (
    MIN_POSITIONS,
    ModelTask,
    adapt_plan,
    file_sha256,
    least_positions,
    load_network,
    write_spec,
)

from ._adapt_sources import ConsistencyTask, PairTask, Task, TripletTask, window_scale
from ._recorrupt import NoiseModel
from ._trainer import Trainer, TrainSettings

__all__ = ["ADAPT_METHODS", "AdaptResult", "adapt_model", "read_stack"]

ADAPT_METHODS = ("pairs", "triplets", "consistency")
HELD_OUT_FRACTION = 0.2
_PATCH_PX = 64
# the widefield kernel from the 2x truth to the camera image on the simulator (NA 1.49, 525 nm):
# a Gaussian of sigma 3.5 px at 32.5 nm (_physics_prior.py); it scales with lambda / NA
_KERNEL_SIGMA_UM = 3.5 * 0.0325
_KERNEL_LAMBDA_OVER_NA_UM = 0.525 / 1.49
_ANCHOR_WEIGHT = 0.1


@dataclass(frozen=True)
class AdaptResult:
    """What adapting did, as the model folder records it."""

    folder: Path
    method: str  # "pairs", "triplets" or "consistency"
    kept: str  # "adapted" or "parent"
    held_out_before: float
    held_out_after: float
    held_out_reference: float  # the no-network baseline's error (reference_name)
    reference_name: str
    steps: int
    seconds: float
    training_examples: int  # pairs, triplets or frames
    held_out_examples: int


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


def adapt_model(
    model: str | Path,
    input_path: str | Path,
    out: str | Path,
    *,
    minutes: float = 10.0,
    axis: str | None = None,
    method: str | None = None,
    name: str | None = None,
    na: float | None = None,
    emission_nm: float | None = None,
    pixel_um: float | None = None,
    max_steps: int = 100_000,
    learning_rate: float | None = None,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> AdaptResult:
    """Fine-tune ``model`` on ``input_path`` for at most ``minutes``; write the folder ``out``.

    ``method`` (module docstring): the interpolation models take ``pairs`` (default along z) or
    ``triplets`` (default along t); the single-frame super-resolution models ``consistency``,
    with the user's optics (``na``, ``emission_nm``, ``pixel_um``; default the model's).
    ValueError, in one line, for a model that cannot adapt here, an input too small to adapt
    on, or an output folder that exists.
    """
    from safetensors.torch import save_file

    spec, network, parent_folder = load_network(model)
    optics_given = [n for n, v in (("--na", na), ("--emission-nm", emission_nm),
                                   ("--pixel-um", pixel_um)) if v is not None]  # fmt: skip
    super_resolution, axis, method = adapt_plan(spec, axis, method, optics_given)
    # the rates measured on a user stack: 3e-4 for pairs (1e-4 gained less in 3 minutes);
    # triplets lost less at lower rates (issue 43: -2.5 dB at 2e-4, -0.5 dB at 3e-5)
    learning_rate = learning_rate or {"pairs": 3e-4, "triplets": 1e-4, "consistency": 1e-4}[method]
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} exists; give a new folder for the adapted model")
    stack, axes = read_stack(input_path)
    if stack.dtype.kind not in "uif" or not np.isfinite(stack).all():
        raise ValueError(f"{input_path} holds {stack.dtype} frames with non-finite values")
    if super_resolution:
        task, held_out_task, facts = _consistency_tasks(
            spec, network, stack, axes, input_path, na, emission_nm, pixel_um
        )
    else:
        task, held_out_task, facts = _interpolation_tasks(
            spec, stack, axes, axis or "t", method, input_path
        )
    held_out = held_out_task.whole(seed + 1)
    before_errors = task.held_out_errors(network, held_out)
    before = before_errors.mean
    reference = float(np.mean([task.reference_error(x, y) for x, y in held_out]))
    parent_state = {k: v.clone() for k, v in network.state_dict().items()}

    def validate(net: nn.Module) -> dict[str, float]:
        error = task.held_out_errors(net, held_out).mean
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
        progress_by_time=True,
    )
    torch.manual_seed(seed)
    network.train()
    started = time.monotonic()
    trainer = Trainer(network, task.loss, task, validate, settings, out, device="cpu")
    result = trainer.run(progress=progress)
    seconds = time.monotonic() - started
    after_errors = task.held_out_errors(network, held_out)
    after = after_errors.mean
    # a gain is claimed only where it was measured: the fall in held-out error must exceed two
    # standard errors of its paired per-tile differences (a fall within the noise keeps the parent)
    standard_error = after_errors.standard_error_of_change(before_errors)
    kept = "adapted" if after - before < -2.0 * standard_error else "parent"
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
                    **({"axis": axis} if axis else {}),
                    "method": method,
                    "method_text": _METHOD_TEXT[method],
                    **facts,
                    "learning_rate": learning_rate,
                    "training_examples": task.count(),
                    "held_out_examples": held_out_task.count(),
                    "steps": result.steps_done,
                    "minutes": round(seconds / 60, 2),
                    "held_out_error_before": round(before, 6),
                    "held_out_error_after": round(after, 6),
                    "held_out_error_reference": round(reference, 6),
                    "held_out_error_saved": round(after if kept == "adapted" else before, 6),
                    "held_out_change_standard_error": round(standard_error, 8),
                    "held_out_tiles": int(before_errors.sums.size // before_errors.draws),
                    "rule": "adapted weights only when the held-out error fell by more than "
                    "two standard errors of its paired per-tile differences",
                    "reference": task.reference_name,
                    "error": "mean squared error against the held-out targets, normalised units",
                    "kept": kept,
                },
            },
        }
    )
    write_spec(out, adapted)
    return AdaptResult(
        out, method, kept, before, after, reference, task.reference_name, result.steps_done,
        seconds, task.count(), held_out_task.count(),
    )  # fmt: skip


def _interpolation_tasks(
    spec: Any, stack: np.ndarray, axes: tuple[str, ...], axis: str, method: str,
    input_path: str | Path,
) -> tuple[Task, Task, dict[str, Any]]:  # fmt: skip
    runs = _series(stack, axes, axis)
    length = runs[0].shape[0]
    if length < MIN_POSITIONS:
        raise ValueError(
            f"{input_path} has {length} positions along '{axis}'; adapting needs at least "
            f"{MIN_POSITIONS} (training triplets and a held-out one, disjoint)"
        )
    cut = length - max(3, round(HELD_OUT_FRACTION * length))  # the held-out frames: cut..end
    facts: dict[str, Any] = {
        "held_out": f"the last {length - cut} of {length} positions of each series"
    }
    if method == "triplets":
        training = TripletTask(runs, [range(1, cut - 1)] * len(runs), spec, _PATCH_PX)
        held = TripletTask(runs, [range(cut + 1, length - 1)] * len(runs), spec, _PATCH_PX)
        return training, held, facts
    noise = NoiseModel.fit(np.concatenate([run[:cut] for run in runs]))
    facts["noise_model"] = noise.describe()

    def pairs(indices: range) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(run[i], run[i + 1]) for run in runs for i in indices]

    return (
        PairTask(pairs(range(cut - 1)), noise, spec, _PATCH_PX),
        PairTask(pairs(range(cut, length - 1)), noise, spec, _PATCH_PX),
        facts,
    )


def _consistency_tasks(
    spec: Any, network: nn.Module, stack: np.ndarray, axes: tuple[str, ...],
    input_path: str | Path, na: float | None, emission_nm: float | None, pixel_um: float | None,
) -> tuple[Task, Task, dict[str, Any]]:  # fmt: skip
    """Recorrupted-deconvolution tasks: every frame, or every whole window along t (mfsr-sr2x).

    The last fifth of each series is held out; no window spans the cut.
    """
    window = int(spec.arguments.get("window", 5)) if spec.task is ModelTask.MULTI_FRAME_SR else 1
    if window == 1:
        runs = [np.asarray(stack, np.float32).reshape(-1, *stack.shape[-2:])]
    elif "t" in axes[:-2]:
        runs = _series(stack, axes, "t")
    else:  # no time axis: the frames in order are the series
        runs = [np.asarray(stack, np.float32).reshape(-1, *stack.shape[-2:])]
    least = least_positions(spec)
    if runs[0].shape[0] < least:
        what = "frames" if window == 1 else "time points"
        raise ValueError(
            f"{input_path} has {runs[0].shape[0]} {what}; adapting {spec.name} needs at least "
            f"{least} (training "
            + ("frames" if window == 1 else "windows")
            + " and a held-out one, disjoint)"
        )
    optics = spec.optics or {}
    na = na or float(optics.get("na", 1.49))
    emission_nm = emission_nm or float(optics.get("emission_wavelength_nm", 525.0))
    pixel_um = pixel_um or float(optics.get("pixel_um", 0.065))
    sigma_um = _KERNEL_SIGMA_UM * (emission_nm / 1000 / na) / _KERNEL_LAMBDA_OVER_NA_UM
    sigma_px = sigma_um / (pixel_um / spec.scale)
    length = runs[0].shape[0]
    cut = length - max(window, round(HELD_OUT_FRACTION * length))
    noise = NoiseModel.fit(np.concatenate([run[:cut] for run in runs]))
    facts = {
        "held_out": f"the last {length - cut} of {length} "
        + ("frames" if window == 1 else f"time points of each series (windows of {window})"),
        "noise_model": noise.describe(),
        "optics": {"na": na, "emission_wavelength_nm": emission_nm, "pixel_um": pixel_um},
        "kernel_sigma_px": round(sigma_px, 3),
        "anchor_weight": _ANCHOR_WEIGHT,
    }

    def task(positions: range) -> ConsistencyTask:
        frames = [run[i] for run in runs for i in positions]
        per_run, half = len(positions), window // 2
        windows = [
            tuple(r * per_run + c + d for d in range(-half, half + 1))
            for r in range(len(runs))
            for c in range(half, per_run - half)
        ]
        parents = [_parent_output(network, frames, w, spec) for w in windows]
        return ConsistencyTask(
            frames, windows, parents, noise, spec, sigma_px, _ANCHOR_WEIGHT, _PATCH_PX
        )

    return task(range(cut)), task(range(cut, length)), facts


def _parent_output(
    network: nn.Module, frames: list[np.ndarray], window: tuple[int, ...], spec: Any
) -> np.ndarray:
    """The parent's 2x output on an acquired window, padded to its multiple as a session pads."""
    scale = window_scale(frames, window, spec)
    x = np.stack([scale.forward(frames[j]) for j in window])
    rows, cols = x.shape[-2:]
    pad = [(-s) % spec.multiple_of for s in (rows, cols)]
    x = np.pad(x, ((0, 0), (0, pad[0]), (0, pad[1])), "reflect")
    network.eval()
    with torch.no_grad():
        output: np.ndarray = network(torch.from_numpy(x)[None])[0, 0].numpy()
    return output[: rows * spec.scale, : cols * spec.scale]


_METHOD_TEXT = {
    "pairs": "recorrupted neighbouring pairs (R2R, Poisson-Gaussian noise fitted from the "
    "input): (y_hat_i, y_hat_i+1) at 1/2 -> the blend of (y_bar_i, y_bar_i+1)",
    "triplets": "Noise2Noise on acquired triplets: (i-1, i+1) at 1/2 -> i",
    "consistency": "recorrupted deconvolution (ZS-DeconvNet): the 2x output on y_hat, blurred "
    "by the widefield kernel and binned 2x2, -> y_bar; anchored to the parent's output on y",
}
