"""SIM training sets from the simulated microscope: 9 raw frames in, the 2x truth out.

As for the widefield models, rendering is done once per field of view without noise, per unit
of peak photons: the 9 pattern images (3 angles x 3 phases, the simulator's default pattern)
and the ideal 2x image. Each example then draws a photon level, fresh camera noise for each of
the 9 frames and a crop. The whole noisy set shares one normalisation (percentiles over all 9
frames), as :class:`~live_restore.inference.SimSession` does at inference.

No rotations or flips: the pattern is fixed to the camera, so a rotated set would show the
network orientations the microscope never makes. Crops at random offsets vary the pattern's
phase relative to the patch, which is what tiles see at inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from live_restore.models import frame_scale
from live_restore.sim_recon import SIM_FRAMES
from live_restore.simulate import OpticsParams, SimPatternParams

from ._simulated import _log_uniform, _Sampler, field_scope

__all__ = ["SimFieldStack", "SimSampler", "render_sim_fields"]


@dataclass(frozen=True)
class SimFieldStack:
    """One field of view: its 9 SIM raw images and 2x truth, per unit of peak photons."""

    structure: str
    raw: np.ndarray  # (9, H, W), pattern order A0P0..A2P2
    sr: np.ndarray  # (2H, 2W), per camera-pixel area (its mean matches widefield)


def render_sim_fields(
    structures: Sequence[str],
    fields_per_structure: int,
    frame_size: int = 128,
    seed: int = 0,
    optics: OpticsParams | None = None,
    pattern: SimPatternParams | None = None,
    progress: bool = False,
) -> list[SimFieldStack]:
    """Render ``fields_per_structure`` SIM fields of each structure (reproducible from ``seed``)."""
    from rich.progress import track

    jobs = [(s, i) for s in structures for i in range(fields_per_structure)]
    stacks = []
    for structure, index in track(
        jobs, description="rendering SIM fields", disable=not progress, transient=True
    ):
        rng = np.random.default_rng([seed, index, len(structure), SIM_FRAMES])
        scope = field_scope(structure, seed * 100_003 + index, frame_size, rng, optics, pattern)
        frames = []
        for pattern_index in range(1, SIM_FRAMES + 1):
            scope.pattern_index = pattern_index
            frames.append(scope.expected_photons(scope.record_exposure()))
        truth = scope.ground_truth(scope.record_exposure())
        stacks.append(SimFieldStack(structure, np.stack(frames).astype(np.float32), truth.sr_2x))
    return stacks


class SimSampler(_Sampler[SimFieldStack]):
    """Noisy SIM raw set (9 patches) -> its 2x ground-truth patch, both in network units."""

    def example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One (9, p, p) input and its (1, 2p, 2p) target."""
        field = self.fields[int(rng.integers(len(self.fields)))]
        photons = _log_uniform(rng, *self.photon_range)
        counts = np.stack([self._counts(frame * photons, rng) for frame in field.raw])
        scale = frame_scale(counts, self.normalisation)
        top, left = self._corner(rng, counts.shape[-1])
        p = self.patch_size
        raw = scale.forward(counts[:, top : top + p, left : left + p])
        truth = field.sr[2 * top : 2 * (top + p), 2 * left : 2 * (left + p)] * np.float32(photons)
        target = scale.forward(self._noise_free_counts(truth)) / np.float32(
            self.normalisation.output_range
        )
        return raw, target[None]
