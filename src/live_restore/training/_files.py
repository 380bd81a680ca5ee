"""Training pairs from files: BioSR ``.mrc`` cells and folders of paired TIFFs.

- BioSR (Qiao et al. 2021, figshare 13264793): ``<root>/Cell_NNN/RawSIMData_level_LL.mrc`` (a
  stack of N x M raw SIM frames; averaged to the widefield input, as BioSR did) and
  ``<root>/Cell_NNN/SIM_gt.mrc`` (the super-resolved truth, ``scale`` x larger).
- Paired TIFFs: ``<root>/input/<name>.tif`` and ``<root>/target/<name>.tif`` with the same names.

Both give the same examples as the simulated samplers: a random crop (truth crop ``scale`` x
larger), flips and rotations, whole-image percentile normalisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from live_restore.models import Normalisation, frame_scale

from ._simulated import _augment

__all__ = ["PairedImages", "biosr_pairs", "tiff_pairs"]


def _read_mrc(path: Path) -> np.ndarray:
    import mrcfile

    with mrcfile.open(str(path), permissive=True) as handle:
        return np.asarray(handle.data, np.float32)


def biosr_pairs(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(widefield, truth) for every noise level of every ``Cell_*`` folder under ``root``."""
    pairs = []
    for cell in sorted(Path(root).glob("Cell_*")):
        truth_path = cell / "SIM_gt.mrc"
        if not truth_path.is_file():
            continue
        truth = _read_mrc(truth_path)
        truth = truth if truth.ndim == 2 else truth.mean(axis=0)
        for raw_path in sorted(cell.glob("RawSIMData_level_*.mrc")):
            raw = _read_mrc(raw_path)
            pairs.append((raw if raw.ndim == 2 else raw.mean(axis=0), truth))
    if not pairs:
        raise FileNotFoundError(
            f"no BioSR cells (Cell_*/SIM_gt.mrc + RawSIMData_level_*.mrc) in {root}"
        )
    return pairs


def tiff_pairs(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input, target) for every ``input/NAME.tif`` with a ``target/NAME.tif``."""
    import tifffile

    root = Path(root)
    pairs = []
    for source in sorted((root / "input").glob("*.tif*")):
        target = root / "target" / source.name
        if target.is_file():
            pairs.append(
                (
                    tifffile.imread(source).astype(np.float32),
                    tifffile.imread(target).astype(np.float32),
                )
            )
    if not pairs:
        raise FileNotFoundError(f"no paired TIFFs (input/NAME.tif + target/NAME.tif) in {root}")
    return pairs


class PairedImages:
    """Random crops of (input, target) pairs whose target is ``scale`` x the input's size."""

    def __init__(
        self,
        pairs: list[tuple[np.ndarray, np.ndarray]],
        patch_size: int,
        scale: int,
        normalisation: Normalisation,
    ) -> None:
        for index, (source, target) in enumerate(pairs):
            if source.ndim != 2 or target.shape != (
                source.shape[0] * scale,
                source.shape[1] * scale,
            ):
                raise ValueError(
                    f"pair {index}: input {source.shape} and target {target.shape} are not 2-D "
                    f"images with the target {scale}x the input"
                )
            if min(source.shape) < patch_size:
                raise ValueError(f"pair {index}: input {source.shape} is smaller than the patch")
        self.pairs = pairs
        self.patch_size = patch_size
        self.scale = scale
        self.normalisation = normalisation

    def example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One (input, target) crop in network units."""
        source, target = self.pairs[int(rng.integers(len(self.pairs)))]
        p, s = self.patch_size, self.scale
        top = int(rng.integers(0, source.shape[0] - p + 1))
        left = int(rng.integers(0, source.shape[1] - p + 1))
        scale = frame_scale(source, self.normalisation)
        crop = scale.forward(source[top : top + p, left : left + p])
        # the truth has its own units (a reconstruction): normalised by its own percentiles
        truth_scale = frame_scale(target, self.normalisation)
        truth = truth_scale.forward(target[s * top : s * (top + p), s * left : s * (left + p)])
        truth = np.clip(truth / np.float32(self.normalisation.output_range), 0.0, 1.0)
        crop, truth = _augment([crop, truth], rng)
        return crop[None], truth[None]

    def batch(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` examples as (inputs, targets)."""
        pairs = [self.example(rng) for _ in range(size)]
        return (
            torch.from_numpy(np.stack([p[0] for p in pairs])),
            torch.from_numpy(np.stack([p[1] for p in pairs])),
        )
