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
    """Signed defocus of a frame, its 1-σ uncertainty, and a confidence in [0, 1]."""

    defocus_um: float
    uncertainty_um: float
    confidence: float
    patches: int


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
        mean = output[:, 0].numpy().astype(np.float64)
        variance = np.exp(np.clip(output[:, 1].numpy().astype(np.float64), -12, 8))
        weights = 1.0 / variance
        defocus = float(np.sum(weights * mean) / np.sum(weights))
        # pooled σ, widened by the spread of the patches (they should agree)
        spread = float(np.sqrt(np.sum(weights * (mean - defocus) ** 2) / np.sum(weights)))
        sigma = math.sqrt(1.0 / float(np.sum(weights)) + spread**2 / max(len(mean), 1))
        confidence = 1.0 / (1.0 + (sigma / self.CONFIDENCE_SCALE_UM) ** 2)
        return FocusEstimate(defocus, sigma, confidence, len(mean))


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
