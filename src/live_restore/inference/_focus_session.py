"""``focus-est`` as a session: a frame in, its defocus with an uncertainty and a sign out."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from live_restore.frames import as_frame
from live_restore.models import frame_scale

from ._session import _Session

__all__ = ["FocusEstimate", "FocusSession"]


@dataclass(frozen=True)
class FocusEstimate:
    """Defocus of a frame: magnitude with its 1-σ uncertainty and confidence, and its sign.

    ``defocus_um`` is the magnitude with the more likely sign; ``sign_confidence`` (0: a coin
    flip, 1: certain) says how far to trust that sign, which rests on weak optical asymmetry.
    """

    defocus_um: float
    uncertainty_um: float
    confidence: float
    patches: int
    magnitude_um: float = 0.0
    sign_confidence: float = 0.0


class FocusSession(_Session):
    """Frame -> :class:`FocusEstimate` (patches pooled by inverse variance)."""

    # an uncertainty of this size gives confidence 0.5
    CONFIDENCE_SCALE_UM = 0.25

    def __call__(self, frame: np.ndarray) -> FocusEstimate:
        counts = as_frame(frame)
        image = frame_scale(counts, self.spec.normalisation).forward(counts)
        patch = int(self.spec.patch_size or 64)
        if min(image.shape) < patch:
            raise ValueError(f"frame {image.shape} is smaller than the {patch} px focus patch")
        rows, cols = image.shape[0] // patch, image.shape[1] // patch
        patches = (
            image[: rows * patch, : cols * patch]
            .reshape(rows, patch, cols, patch)
            .transpose(0, 2, 1, 3)
            .reshape(-1, 1, patch, patch)
        )
        with torch.inference_mode():
            output = self._run(torch.from_numpy(np.ascontiguousarray(patches))).float().cpu()
        magnitudes = output[:, 0].numpy().astype(np.float64)
        variance = np.exp(np.clip(output[:, 1].numpy().astype(np.float64), -12, 8))
        weights = 1.0 / variance
        total = float(np.sum(weights))
        magnitude = float(np.sum(weights * magnitudes) / total)
        # pooled σ, widened by the spread of the patches (they should agree)
        spread = float(np.sqrt(np.sum(weights * (magnitudes - magnitude) ** 2) / total))
        sigma = math.sqrt(1.0 / total + spread**2 / max(len(magnitudes), 1))
        confidence = 1.0 / (1.0 + (sigma / self.CONFIDENCE_SCALE_UM) ** 2)
        # the sign: the weighted mean of the patches' logits. Not their sum: neighbouring
        # patches of one frame share the sample and the aberration, so their errors are not
        # independent, and summing would claim a certainty the network never showed
        logit = float(np.sum(weights * output[:, 2].numpy().astype(np.float64)) / total)
        positive = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))
        signed = magnitude if positive >= 0.5 else -magnitude
        return FocusEstimate(
            signed, sigma, confidence, len(magnitudes), magnitude, abs(2.0 * positive - 1.0)
        )
