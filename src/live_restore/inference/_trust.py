"""Per-pixel trust for a restoration: sigma, the expected absolute error, calibrated on truth.

Three ways to estimate it were built and measured against each other (the trust issue;
``live-restore calibrate-trust``, table in benchmarks/RESULTS.md):

- ``head``: a heteroscedastic head (``models/trust_head.py``) beside the frozen model predicts
  each pixel's Laplace scale from the raw and the restored frame; one pass of the model plus a
  small network. ``image`` is the plain restoration, exactly what ``session(frame)`` gives.
- ``tta``: the frame restored 8 times, once per symmetry of the square, each turned back;
  ``image`` is their mean and the spread is their standard deviation. 8 passes.
- ``pair``: two independent measurements of the same field (consecutive frames of a still
  sample) restored separately; the spread is the rolling-block RMS of their difference / sqrt 2,
  the noise term of a block-wise FRC between them (by Parseval). No extra pass in a time-lapse,
  but it needs a second frame and reads motion as error.

Each spread times a scale calibrated on held-out simulated data is ``sigma``: a pixel's |error|
lies within 2 sigma for a stated share of pixels. The scale, the method and what they were
measured to mean are kept in the model folder's ``trust.yaml``; the head's weights beside it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from scipy import ndimage

from live_restore.models import ModelLoadError, file_sha256
from live_restore.models.trust_head import TrustHead

__all__ = [
    "METHOD_NOTES",
    "SINGLE_FRAME_METHODS",
    "TRUST_FILE",
    "TRUST_HEAD_FILE",
    "TRUST_METHODS",
    "Trust",
    "TrustCalibration",
    "dihedral_passes",
    "frame_digest",
    "head_spread",
    "head_tensors",
    "load_trust_head",
    "pair_spread",
    "range_units",
    "trust_of",
]

TRUST_FILE = "trust.yaml"
TRUST_HEAD_FILE = "trust-head.safetensors"
TRUST_METHODS = ("head", "tta", "pair")
SINGLE_FRAME_METHODS = ("head", "tta")  # pair needs a second frame: measured, not offered
PAIR_BLOCK_PX = 16  # rolling block of the pair method, in output pixels
METHOD_NOTES = {
    "head": "heteroscedastic head (Laplace NLL) on the frozen model: sigma = scale x b",
    "tta": "dihedral test-time augmentation (8 passes): sigma = scale x std",
    "pair": f"two exposures restored apart: sigma = scale x rolling {PAIR_BLOCK_PX} px "
    "RMS(difference) / sqrt 2",
}
_OWN_KEYS = ("method", "sigma_scale", "coverage_2sigma")
# (quarter turns, flipped): the 8 symmetries of the square
_SYMMETRIES = [(k, flip) for flip in (False, True) for k in range(4)]


@dataclass(frozen=True)
class Trust:
    """A restored frame and its per-pixel expected absolute error (same shape, same units)."""

    image: np.ndarray
    sigma: np.ndarray


@dataclass(frozen=True)
class TrustCalibration:
    """How a model's spread becomes sigma (method, scale), and what that was measured to mean."""

    method: str
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
                f"`live-restore calibrate-trust {folder.name}`"
            )
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            method = str(data["method"])
            calibration = cls(
                method, float(data["sigma_scale"]), float(data["coverage_2sigma"]), data
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path} is not a trust calibration: {e}") from None
        if method not in SINGLE_FRAME_METHODS:
            raise ValueError(
                f"{path}: method {method!r} is not a single-frame trust method (head or tta); "
                f"recalibrate: live-restore calibrate-trust {folder.name}"
            )
        return calibration

    def candidate(self, method: str) -> TrustCalibration:
        """The same model's calibration for another single-frame method it was measured with."""
        candidates = self.details.get("candidates", {})
        measured = candidates.get(method)
        if method not in SINGLE_FRAME_METHODS or not measured:
            usable = ", ".join(m for m in candidates if m != "pair") or "none"
            raise ValueError(
                f"{self.details.get('model', 'this model')} has no single-frame {method!r} trust "
                f"calibration; calibrated: {usable}"
            )
        scale, coverage = float(measured["sigma_scale"]), float(measured["coverage_2sigma"])
        details = {
            **self.details,
            "method": method,
            "sigma_scale": scale,
            "coverage_2sigma": coverage,
            "how": METHOD_NOTES[method],
        }
        return TrustCalibration(method, scale, coverage, details)

    def write(self, folder: Path) -> Path:
        """Save as ``trust.yaml`` beside model.yaml."""
        path = folder / TRUST_FILE
        record = {
            "method": self.method,
            "sigma_scale": self.sigma_scale,
            "coverage_2sigma": self.coverage_2sigma,
            **{k: v for k, v in self.details.items() if k not in _OWN_KEYS},
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
    """Mean and calibrated spread of the TTA passes."""
    image = passes.mean(axis=0, dtype=np.float64).astype(np.float32)
    spread = passes.std(axis=0, ddof=1, dtype=np.float64)
    return Trust(image, (sigma_scale * spread).astype(np.float32))


def frame_digest(counts: np.ndarray) -> bytes:
    """A digest of a frame's shape, dtype and values: which restoration is whose."""
    contiguous = np.ascontiguousarray(counts)
    key = hashlib.blake2b(f"{contiguous.shape}{contiguous.dtype}".encode(), digest_size=20)
    key.update(contiguous.data)
    return key.digest()


def range_units(image: np.ndarray) -> tuple[float, float]:
    """(low, span) of the 0.1-99.9 % range: the units the head reads and predicts in."""
    low, high = np.percentile(image, [0.1, 99.9])
    return float(low), max(float(high - low), 1e-6)


def head_tensors(
    counts: np.ndarray, restored: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The head's inputs and the restored frame's span.

    Raw and restored frames each in its own range units, (1, 1, H, W); the span turns the
    head's output back into the restored frame's units.
    """
    raw_low, raw_span = range_units(counts)
    out_low, out_span = range_units(restored)
    raw = (np.asarray(counts, np.float32) - raw_low) / raw_span
    out = (np.asarray(restored, np.float32) - out_low) / out_span
    return torch.from_numpy(raw)[None, None], torch.from_numpy(out)[None, None], out_span


def head_spread(head: TrustHead, counts: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """The head's Laplace scale for ``restored``, in the restored frame's units (uncalibrated)."""
    raw, out, out_span = head_tensors(counts, restored)
    device = next(head.parameters()).device
    with torch.inference_mode():
        scale = head(raw.to(device), out.to(device))[0, 0].float().cpu().numpy()
    return (scale * out_span).astype(np.float32)


def pair_spread(
    restored: np.ndarray, other: np.ndarray, block_px: int = PAIR_BLOCK_PX
) -> np.ndarray:
    """Rolling-block RMS of the difference of two independent restorations, / sqrt 2.

    For two estimates with independent errors, a block's FRC noise term (the power of the
    pair's difference, summed over rings) is by Parseval the block's mean squared difference,
    twice one estimate's error variance.
    """
    difference = np.asarray(restored, np.float64) - np.asarray(other, np.float64)
    power = ndimage.uniform_filter(difference**2 / 2, size=block_px, mode="reflect")
    return np.sqrt(np.maximum(power, 0.0)).astype(np.float32)


def load_trust_head(folder: Path, scale: int, sha256: str | None) -> TrustHead:
    """A model's trained trust head, checked against the sha256 its calibration recorded."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = folder / TRUST_HEAD_FILE
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: the trust calibration names a head")
    if sha256 and file_sha256(path) != sha256:
        raise ModelLoadError(
            f"{path} does not match the sha256 in {TRUST_FILE}: recalibrate with "
            f"`live-restore calibrate-trust {folder.name}`"
        )
    head = TrustHead(scale)
    try:
        head.load_state_dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelLoadError(f"{path} is not a trust head for a {scale}x model: {error}") from None
    return head.eval()
