"""``load_model(name)``: a shipped model, ready to call on one camera frame.

A session does the model's own normalisation (whole-frame percentiles, as in training), runs the
network in tiles of its training size on the chosen backend, and maps the output back to camera
counts. It conforms to the hook's ``Restorer`` protocol, so a model name can be a hook stage.

Backends here: ``torch-cpu`` and ``torch-cuda`` (float32). ``auto`` picks CUDA when torch sees
a device, else the CPU, and says which in ``provenance()``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from live_restore._version import __version__
from live_restore.models import ModelSpec, ModelTask, frame_scale, load_network

from ._tiling import tiled_apply

__all__ = ["BACKENDS", "FocusEstimate", "FocusSession", "ModelSession", "load_model"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch-cpu", "torch-cuda")
# CPU fallbacks: a published-size model that would not keep up on a CPU
_CPU_VARIANTS = {"dfcan-sr2x": "dfcan-sr2x-lite"}


def _as_frame(frame: object) -> np.ndarray:
    from live_restore.acquisition import as_frame

    return as_frame(frame, min_side=8)


def _device_for(backend: str) -> torch.device:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available here: {', '.join(BACKENDS)}")
    if backend == "torch-cuda" and not torch.cuda.is_available():
        raise RuntimeError("backend torch-cuda asked for, but torch sees no CUDA device")
    use_cuda = backend == "torch-cuda" or (backend == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if use_cuda else "cpu")


class _Session:
    def __init__(self, spec: ModelSpec, network: nn.Module, folder: Path, backend: str) -> None:
        self.spec = spec
        self.folder = folder
        self.device = _device_for(backend)
        self.backend = f"torch-{self.device.type}"
        self.network = network.to(self.device)
        self.name = spec.name
        self.scale = spec.scale
        # the training patch, with a quarter of it as overlap on each side
        self.tile = int(spec.training.get("patch_size") or 64) * 2
        self.overlap = self.tile // 4

    def provenance(self) -> dict[str, str]:
        """Model, weights hash, backend, precision, normalisation, versions."""
        n = self.spec.normalisation
        return {
            "model": self.spec.name,
            "architecture": f"{self.spec.architecture} {self.spec.arguments}",
            "weights_sha256": self.spec.weights_sha256,
            "backend": self.backend,
            "precision": "float32",
            "normalisation": f"percentiles {n.low_percentile}/{n.high_percentile} of the frame "
            f"-> 0/1; output x {n.output_range}",
            "tiling": f"{self.tile} px tiles, {self.overlap} px overlap",
            "torch": torch.__version__,
            "live_restore": __version__,
        }

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.network(batch.to(self.device))
        return output


class ModelSession(_Session):
    """Frame (raw counts) -> restored frame (float32 counts, ``scale`` x larger)."""

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        counts = _as_frame(frame)
        scale = frame_scale(counts, self.spec.normalisation)
        output = tiled_apply(
            self._run,
            scale.forward(counts),
            self.tile,
            self.overlap,
            self.spec.scale,
            self.spec.multiple_of,
        )
        return scale.inverse(output, self.spec.normalisation.output_range)


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
        counts = _as_frame(frame)
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


def load_model(name: str | Path, backend: str = "auto") -> ModelSession | FocusSession:
    """A ready inference session for a shipped model name or a model folder.

    On the CPU, a model with a lighter CPU variant (``dfcan-sr2x`` -> ``dfcan-sr2x-lite``) is
    swapped for it when the full one would not keep up; the log says so.
    """
    device = _device_for(backend)
    chosen = str(name)
    if device.type == "cpu" and chosen in _CPU_VARIANTS:
        log.warning(
            "%s runs at ~0.7 TFLOP per 512x512 frame, seconds on a CPU: using %s instead",
            chosen,
            _CPU_VARIANTS[chosen],
        )
        chosen = _CPU_VARIANTS[chosen]
    spec, network, folder = load_network(chosen)
    if spec.task is ModelTask.FOCUS_ESTIMATION:
        return FocusSession(spec, network, folder, backend)
    return ModelSession(spec, network, folder, backend)
