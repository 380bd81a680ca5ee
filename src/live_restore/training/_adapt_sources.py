"""What ``adapt`` trains on and how it scores held-out data: one task per way of adapting.

- :class:`TripletTask`: Noise2Noise on acquired triplets, ``(i - 1, i + 1) -> i``;
- :class:`PairTask`: recorrupted neighbouring pairs, ``(y_hat_i, y_hat_i+1) -> blend(y_bar)``;
- :class:`ConsistencyTask`: a super-resolution model's 2x output, blurred by the widefield
  kernel and binned onto the camera grid, must give ``y_bar`` from ``y_hat`` (ZS-DeconvNet's
  recorrupted deconvolution loss), while staying near the parent's output on ``y`` itself.

Each task draws training batches (random crops, square symmetries, fresh recorruption), and
scores whole held-out frames with a squared error whose target noise is independent of the
input's: its expectation is the error against the clean frame plus a constant, so a lower
held-out error is a real improvement, measured without ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from live_restore.models import frame_scale, interp_inputs

from ._interp import _dihedral
from ._physics_prior import blur_and_bin, gaussian_kernel
from ._recorrupt import NoiseModel, recorrupt

__all__ = ["ConsistencyTask", "Example", "HeldOutErrors", "PairTask", "Task", "TripletTask"]

Example = tuple[np.ndarray, np.ndarray]  # network input (C, H, W), target (C', H', W')
RECORRUPTION_ALPHA = 1.0  # of 0.5, 1 and 2: +0.05, +0.76, +0.23 dB on one user stack
HELD_OUT_DRAWS = 4  # recorruptions of each held-out frame (fixed: before and after see the same)
TILE_PX = 32  # held-out errors are compared per tile of this side (pixels of the error map)
Window = tuple[slice, slice]
Net = Callable[[torch.Tensor], torch.Tensor]


def window_scale(frames: list[np.ndarray], window: tuple[int, ...], spec: Any) -> Any:
    """One scale for a window of frames: their joint percentiles (what the sessions use)."""
    return frame_scale(np.stack([frames[j] for j in window]), spec.normalisation)


class Task:
    """Examples of one kind, their crops for training, the loss and the held-out error."""

    scale_factor = 1  # target pixels per input pixel
    reference_name = "linear blend"
    draws = HELD_OUT_DRAWS  # recorruptions of each held-out example (1: no noise is drawn)

    def __init__(self, patch_px: int, multiple_of: int = 1) -> None:
        self.patch_px = patch_px
        self.multiple_of = max(1, multiple_of)

    def count(self) -> int:
        raise NotImplementedError

    def shape(self) -> tuple[int, int]:
        raise NotImplementedError

    def example(self, index: int, window: Window, rng: np.random.Generator) -> Example:
        raise NotImplementedError

    def loss(self, net: Net, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # a squared error: the network learns the noisy target's expectation (Noise2Noise)
        loss: torch.Tensor = ((net(x) - y) ** 2).mean()
        return loss

    def error_map(self, net: Net, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """Squared error per target pixel of one example, ``(H, W)``."""
        result: np.ndarray = ((net(x) - y) ** 2)[0].mean(dim=0).numpy()
        return result

    def reference_error(self, x: np.ndarray, y: np.ndarray) -> float:
        """The no-network baseline's error: the linear blend of the two inputs."""
        return float(np.mean((0.5 * (x[0] + x[1]) - y[0]) ** 2))

    def batch(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` random crops with random square symmetries (a Trainer's batch source)."""
        inputs, targets = [], []
        side_y, side_x = self.shape()
        m = self.multiple_of  # the network's sides: crops rounded down to them
        p_y, p_x = (max(m, min(self.patch_px, side) // m * m) for side in (side_y, side_x))
        for i in rng.integers(0, self.count(), size):
            top = int(rng.integers(0, side_y - p_y + 1))
            left = int(rng.integers(0, side_x - p_x + 1))
            window = (slice(top, top + p_y), slice(left, left + p_x))
            # a quarter turn of a crop that is not square would change its shape: half turns
            k = int(rng.integers(8)) if p_y == p_x else int(rng.choice((0, 2, 4, 6)))
            pair = [_dihedral(a, k) for a in self.example(int(i), window, rng)]
            inputs.append(np.ascontiguousarray(pair[0]))
            targets.append(np.ascontiguousarray(pair[1]))
        return torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(targets))

    def whole(self, seed: int) -> list[Example]:
        """Every example on whole frames, ``draws`` times each (fixed: the held-out set)."""
        rng = np.random.default_rng(seed)
        everything = (slice(None), slice(None))
        return [
            self.example(i, everything, rng) for i in range(self.count()) for _ in range(self.draws)
        ]

    def held_out_errors(self, network: nn.Module, examples: list[Example]) -> HeldOutErrors:
        """The held-out error of every example's whole frame, per pixel and per tile.

        Whole frames are padded to the network's multiple (as the session pads them). Tiles of
        ``TILE_PX`` (edge tiles smaller): the paired differences of two networks' errors over
        them give the standard error of the change (:func:`standard_error`).
        """
        network.eval()
        sums, counts = [], []
        m = self.multiple_of
        with torch.no_grad():
            for x, y in examples:
                pad = [(-s) % m for s in x.shape[-2:]]
                padded = np.pad(x, ((0, 0), (0, pad[0]), (0, pad[1])), "reflect")
                side = (x.shape[-2] * self.scale_factor, x.shape[-1] * self.scale_factor)

                def cropped(inputs: torch.Tensor, side: tuple[int, int] = side) -> torch.Tensor:
                    output: torch.Tensor = network(inputs)[..., : side[0], : side[1]]
                    return output

                target = torch.from_numpy(np.ascontiguousarray(y))[None]
                error = self.error_map(cropped, torch.from_numpy(padded)[None], target)
                starts = [np.arange(0, n, TILE_PX) for n in error.shape]
                tile_sums = np.add.reduceat(np.add.reduceat(error, starts[0], 0), starts[1], 1)
                rows, cols = (
                    np.diff(np.append(s, n)) for s, n in zip(starts, error.shape, strict=True)
                )
                sums.append(tile_sums.ravel())
                counts.append(np.outer(rows, cols).ravel())
        return HeldOutErrors(np.stack(sums), np.stack(counts), self.draws)


@dataclass(frozen=True)
class HeldOutErrors:
    """Squared-error sums and pixel counts per example and tile, ``(examples, tiles)``."""

    sums: np.ndarray
    counts: np.ndarray
    draws: int  # consecutive examples that are recorruptions of one frame

    @property
    def mean(self) -> float:
        """Mean squared error per pixel over every held-out example."""
        return float(self.sums.sum() / self.counts.sum())

    def standard_error_of_change(self, before: HeldOutErrors) -> float:
        """Standard error of the mean per-tile change from ``before``.

        The draws of one frame share its acquired noise and signal, so their tiles are averaged
        first: each frame's tile counts once (neighbouring pairs still share a plane, so this is
        an underestimate where they do).
        """
        change = self.sums / self.counts - before.sums / before.counts
        frames = change.reshape(-1, self.draws, change.shape[-1]).mean(axis=1).ravel()
        if frames.size < 2:
            return math.inf
        return float(frames.std(ddof=1) / math.sqrt(frames.size))


class TripletTask(Task):
    """Acquired triplets, the middle frame the target (Noise2Noise)."""

    draws = 1

    def __init__(self, runs: list[np.ndarray], centres: list[range], spec: Any, patch_px: int):
        super().__init__(patch_px, spec.multiple_of)
        self.examples: list[Example] = []
        for run, indices in zip(runs, centres, strict=True):
            for i in indices:
                planes, scale = interp_inputs(run[i - 1], run[i + 1], [0.5], spec.normalisation)
                self.examples.append((planes[0], scale.forward(run[i])[None]))

    def count(self) -> int:
        return len(self.examples)

    def shape(self) -> tuple[int, int]:
        side_y, side_x = self.examples[0][0].shape[-2:]
        return side_y, side_x

    def example(self, index: int, window: Window, rng: np.random.Generator) -> Example:
        x, y = self.examples[index]
        return x[(slice(None), *window)], y[(slice(None), *window)]

    def whole(self, seed: int) -> list[Example]:
        return list(self.examples)  # no noise is drawn: each triplet once


class PairTask(Task):
    """Neighbouring frames recorrupted afresh: inputs ``y_hat``, target the blend of ``y_bar``.

    Scaled by the acquired pair's percentiles, as the session scales it.
    """

    def __init__(
        self, pairs: list[tuple[np.ndarray, np.ndarray]], noise: NoiseModel, spec: Any,
        patch_px: int,
    ) -> None:  # fmt: skip
        super().__init__(patch_px, spec.multiple_of)
        self.pairs = pairs
        self.variances = [tuple(noise.variance(ndimage.uniform_filter(f, 3)) for f in p)
                          for p in pairs]  # fmt: skip
        self.scales = [frame_scale(np.stack(p), spec.normalisation) for p in pairs]

    def count(self) -> int:
        return len(self.pairs)

    def shape(self) -> tuple[int, int]:
        side_y, side_x = self.pairs[0][0].shape
        return side_y, side_x

    def example(self, index: int, window: Window, rng: np.random.Generator) -> Example:
        scale = self.scales[index]
        noisy = [
            recorrupt(frame[window], variance[window], RECORRUPTION_ALPHA, rng)
            for frame, variance in zip(self.pairs[index], self.variances[index], strict=True)
        ]
        # the half-way blend, not each plane at fraction 0 or 1: training at the ends (an
        # unbiased target, no blend) made the half-way frames worse on two user stacks, by 0.7
        # dB where the blend lost 0.2, and gained 0.5 dB where the blend gained 1.2
        x = np.stack([scale.forward(noisy[0][0]), scale.forward(noisy[1][0]),
                      np.full(noisy[0][0].shape, 0.5, np.float32)])  # fmt: skip
        return x, scale.forward(0.5 * (noisy[0][1] + noisy[1][1]))[None]


class ConsistencyTask(Task):
    """Frames for a 2x model: ``y_hat`` in, the parent's output and ``y_bar`` out.

    An example is a window of frames (``windows``: indices into ``frames``; one frame each for a
    single-frame model, ``window`` consecutive ones, centre in the middle, for mfsr-sr2x): every
    frame of it recorrupted independently, one scale for the window (its joint percentiles, as
    the session does). The target is one tensor on the 2x grid: channel 0 the parent's output on
    the acquired window, channel 1 the centre's ``y_bar`` repeated 2x2 (binning it 2x2 gives
    ``y_bar`` back exactly).
    """

    scale_factor = 2
    reference_name = "Gaussian blur of the input"

    def __init__(
        self, frames: list[np.ndarray], windows: list[tuple[int, ...]],
        parent_outputs: list[np.ndarray], noise: NoiseModel, spec: Any, kernel_sigma_px: float,
        anchor_weight: float, patch_px: int,
    ) -> None:  # fmt: skip
        super().__init__(patch_px, spec.multiple_of)
        self.frames = frames
        self.windows = windows
        self.parent_outputs = parent_outputs
        self.variances = [noise.variance(ndimage.uniform_filter(f, 3)) for f in frames]
        self.scales = [window_scale(frames, w, spec) for w in windows]
        self.output_range = float(spec.normalisation.output_range)
        self.kernel = gaussian_kernel(kernel_sigma_px)
        self.anchor_weight = anchor_weight

    def count(self) -> int:
        return len(self.windows)

    def shape(self) -> tuple[int, int]:
        side_y, side_x = self.frames[0].shape
        return side_y, side_x

    def example(self, index: int, window: Window, rng: np.random.Generator) -> Example:
        scale, members = self.scales[index], self.windows[index]
        hats, bars = zip(*(
            recorrupt(self.frames[j][window], self.variances[j][window], RECORRUPTION_ALPHA, rng)
            for j in members
        ), strict=True)  # fmt: skip
        fine = tuple(slice(None if w.start is None else 2 * w.start,
                           None if w.stop is None else 2 * w.stop) for w in window)  # fmt: skip
        centre = bars[len(members) // 2]
        target = np.stack([
            self.parent_outputs[index][fine],
            np.repeat(np.repeat(scale.forward(centre), 2, axis=0), 2, axis=1),
        ])  # fmt: skip
        return np.stack([scale.forward(h) for h in hats]), target.astype(np.float32)

    def degrade(self, estimate: torch.Tensor) -> torch.Tensor:
        """The 2x estimate (network units) blurred and binned onto the camera grid (input units)."""
        return blur_and_bin(estimate, self.kernel, self.output_range)

    def _consistency_map(self, estimate: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        camera = nn.functional.avg_pool2d(y[:, 1:2], 2)
        return (self.degrade(estimate) - camera) ** 2

    def _consistency(self, estimate: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._consistency_map(estimate, y).mean()

    def loss(self, net: Net, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        estimate = net(x)
        anchor = ((estimate - y[:, 0:1]) ** 2).mean() * self.output_range**2
        loss: torch.Tensor = self._consistency(estimate, y) + self.anchor_weight * anchor
        return loss

    def error_map(self, net: Net, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """Squared consistency error per camera pixel (the 2x output binned back)."""
        result: np.ndarray = self._consistency_map(net(x), y)[0, 0].numpy()
        return result

    def reference_error(self, x: np.ndarray, y: np.ndarray) -> float:
        """The input (its centre frame) blurred by the kernel as if it were the 2x estimate."""
        centre = x[len(x) // 2 : len(x) // 2 + 1]
        upsampled = torch.from_numpy(np.repeat(np.repeat(centre, 2, axis=-2), 2, axis=-1))[None]
        estimate = upsampled / self.output_range
        return float(self._consistency(estimate, torch.from_numpy(y)[None]))
