"""Per-pixel trust for a restoration: test-time augmentation spread, calibrated against truth.

The frame is restored 8 times, once per symmetry of the square (4 rotations, each flipped or
not), and each output is turned back. Where the network is sure of what it paints, the 8 agree;
where it invents structure in noise, they disagree. ``image`` is their mean, and ``sigma`` is
their standard deviation times a scale calibrated on held-out simulated data, so that sigma
reads as the expected absolute error in the output's units (a pixel's |error| lies within
2 sigma for a stated fraction of pixels). The scale, and how well sigma ranks the error, are
measured per model by ``calibrate_trust`` and kept in the model folder's ``trust.yaml``.

This is one of the candidates the trust issue asks to compare (the others, a heteroscedastic
head and a rolling FRC between consecutive frames, are not built yet). Its cost: 8 passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = ["TRUST_FILE", "Trust", "TrustCalibration", "dihedral_passes", "trust_of"]

TRUST_FILE = "trust.yaml"
# (quarter turns, flipped): the 8 symmetries of the square
_SYMMETRIES = [(k, flip) for flip in (False, True) for k in range(4)]


@dataclass(frozen=True)
class Trust:
    """A restored frame and its per-pixel expected absolute error (same shape, same units)."""

    image: np.ndarray
    sigma: np.ndarray


@dataclass(frozen=True)
class TrustCalibration:
    """How a model's TTA spread becomes sigma, and what that was measured to mean."""

    sigma_scale: float
    coverage_2sigma: float  # held-out fraction of pixels with |error| <= 2 sigma
    details: dict[str, Any]

    @classmethod
    def read(cls, folder: Path) -> TrustCalibration:
        """The calibration in ``folder``; ValueError naming the command that makes it."""
        path = folder / TRUST_FILE
        if not path.is_file():
            raise ValueError(
                f"{folder.name} has no trust calibration ({path} is missing); make it with "
                f"`python benchmarks/calibrate_trust.py {folder.name}`"
            )
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            return cls(float(data["sigma_scale"]), float(data["coverage_2sigma"]), data)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path} is not a trust calibration: {e}") from None

    def write(self, folder: Path) -> Path:
        """Save as ``trust.yaml`` beside model.yaml."""
        path = folder / TRUST_FILE
        record = {
            **self.details,
            "sigma_scale": self.sigma_scale,
            "coverage_2sigma": self.coverage_2sigma,
        }
        path.write_text(yaml.safe_dump(record, sort_keys=False), encoding="utf-8")
        return path


def _forward(frame: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    out = np.rot90(frame, turns, axes=(-2, -1))
    return np.ascontiguousarray(out[..., ::-1] if flip else out)


def _back(image: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    out = image[..., ::-1] if flip else image
    return np.rot90(out, -turns, axes=(-2, -1))


def dihedral_passes(session: Any, frame: np.ndarray) -> np.ndarray:
    """The 8 restorations of ``frame`` under the square's symmetries, turned back: (8, H', W')."""
    frame = np.asarray(frame)
    outputs: list[np.ndarray | None] = [None] * len(_SYMMETRIES)
    # inputs of one shape share the backend's calls (a non-square frame turns into two shapes)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    inputs = [_forward(frame, k, flip) for k, flip in _SYMMETRIES]
    for index, moved in enumerate(inputs):
        by_shape.setdefault(moved.shape, []).append(index)
    for indices in by_shape.values():
        restored = session.restore_batch(np.stack([inputs[i] for i in indices]))
        for i, out in zip(indices, restored, strict=True):
            outputs[i] = _back(out, *_SYMMETRIES[i])
    return np.stack([o for o in outputs if o is not None]).astype(np.float32)


def trust_of(passes: np.ndarray, sigma_scale: float) -> Trust:
    """Mean and calibrated spread of the passes."""
    image = passes.mean(axis=0, dtype=np.float64).astype(np.float32)
    spread = passes.std(axis=0, ddof=1, dtype=np.float64)
    return Trust(image, (sigma_scale * spread).astype(np.float32))
