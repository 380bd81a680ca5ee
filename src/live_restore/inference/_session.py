"""``load_model(name)``: a shipped model, ready to call on one camera frame.

A session does the model's own normalisation (whole-frame percentiles, as in training), runs the
network in tiles (the model's ``tile_px``, else twice its training patch) on the chosen backend
(``_backend.py``), and maps the output back to camera counts. It conforms to the hook's
``Restorer`` protocol, so a model name can be a hook stage. ``provenance()`` says which backend
and precision ``auto`` picked.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from live_restore._version import __version__
from live_restore.frames import AxisSet, PhotonConversion, RestorerBase, TemporalWindow, as_frame
from live_restore.models import (
    ModelSpec,
    ModelTask,
    frame_scale,
    interp_inputs,
    load_network,
    model_dir,
    read_spec,
)
from live_restore.models.trust_head import TrustHead

from ._backend import CPU_BACKENDS, Backend, backend_device, create_backend, resolve_backend
from ._cache import EngineCache
from ._tiling import tile_run_shape, tiled_apply_stack
from ._triton_client import TritonInterpolation, TritonSession

if TYPE_CHECKING:
    from ._focus_session import FocusSession

from ._trust import (
    Trust,
    TrustCalibration,
    dihedral_passes,
    frame_digest,
    head_spread,
    load_trust_head,
    trust_of,
)

__all__ = [
    "CPU_VARIANTS",
    "InterpSession",
    "MFSRSession",
    "ModelSession",
    "SimSession",
    "load_model",
    "make_session",
    "session_tile",
]

log = logging.getLogger(__name__)

# a tile above this is a whole-frame model's (its graphs are built per frame size)
WHOLE_FRAME_PX = 512

# CPU fallbacks: a published-size model that would not keep up on a CPU
CPU_VARIANTS = {"dfcan-sr2x": "dfcan-sr2x-tiny"}


def session_tile(spec: ModelSpec, tile_px: int | None = None) -> tuple[int, int, int]:
    """``(C, H, W)`` of the batches a session sends its backend.

    Tiles are ``tile_px``, else the model's own ``tile_px``, else twice the training patch (a
    quarter of a tile overlaps on each side; see ``_tiling.py`` for what the size does to
    quality); a patch-wise model (focus-est) gets its patches, whatever ``tile_px`` says.
    """
    channels = int(spec.arguments.get("in_channels", spec.arguments.get("window", 1)))
    if spec.task is ModelTask.INTERPOLATION:
        channels = 3  # before, after and the fraction's plane
    if spec.task is ModelTask.FOCUS_ESTIMATION:
        patch = int(spec.patch_size or 64)
        return channels, patch, patch
    tile = tile_px or spec.tile_px or int(spec.training.get("patch_size") or 64) * 2
    if tile < 16:
        raise ValueError(f"tile_px must be at least 16, got {tile}")
    tile += -tile % spec.multiple_of
    return channels, tile, tile


class _Session:
    def __init__(
        self, spec: ModelSpec, folder: Path, backend: Backend, tile_px: int | None = None
    ) -> None:
        self.spec = spec
        self.folder = folder
        self.runtime = backend
        self.backend = backend.name
        self.precision = backend.precision
        self.name = spec.name
        self.scale = spec.scale
        self.tile = session_tile(spec, tile_px)[1]
        self.overlap = self.tile // 4
        # tiles per backend call: 8 of 512 px, fewer of larger ones (the memory of a call, and
        # an exported backend compiles per batch size)
        self.tiles_per_call = max(1, 8 * 512 * 512 // (self.tile * self.tile))

    def provenance(self) -> dict[str, str]:
        """Model, weights hash, backend, precision, normalisation, versions."""
        n = self.spec.normalisation
        return {
            "model": self.spec.name,
            "architecture": f"{self.spec.architecture} {self.spec.arguments}",
            "weights_sha256": self.spec.weights_sha256,
            **self.runtime.describe(),
            "normalisation": f"percentiles {n.low_percentile}/{n.high_percentile} of the frame "
            f"-> 0/1; output x {n.output_range}",
            "tiling": f"{self.tile} px tiles, {self.overlap} px overlap",
            "torch": torch.__version__,
            "live_restore": __version__,
        }

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        return self.runtime(batch)

    def prepare(self, frame_shape: tuple[int, int]) -> None:
        """Build the backend's graph for frames of ``frame_shape`` now, not at the first frame.

        An exported backend builds one graph per size it is sent (an ONNX export and a compile:
        10 s for a 1024 px frame on 2 cores), and a frame smaller than a tile is sent whole.
        Called when a hook is built for a camera, so that the acquisition's first frames do not
        wait for it (one run on zeros also warms the runtime). Torch builds nothing here.
        """
        if self.backend.startswith("torch") or self.spec.task is ModelTask.FOCUS_ESTIMATION:
            return
        channels = session_tile(self.spec)[0]
        rows, cols = tile_run_shape(frame_shape, self.tile, self.spec.multiple_of)
        log.info("preparing %s for %dx%d frames", self.name, *frame_shape)
        with torch.inference_mode():
            self._run(torch.zeros(1, channels, rows, cols))


class ModelSession(_Session, RestorerBase):
    """Frame (raw counts) -> restored frame (float32 counts, ``scale`` x larger)."""

    # the tiles of a batch share the backend's calls, so a batch is cheaper than its frames
    max_batch = 32
    # loaded by the first trust_calibration or with_trust that needs it
    _trust_head: TrustHead | None = None
    _trust_head_sha256: str | None = None
    # the last outputs by input digest, kept only when a trust stage shares this session
    _recent: OrderedDict[bytes, np.ndarray] | None = None
    _RECENT_COUNT = 8

    def keep_recent_outputs(self) -> None:
        """Remember the last few outputs, so ``with_trust`` on a frame just restored reuses it.

        Set when this session is both a stage and its trust stage's model (``NAME`` and
        ``NAME+trust`` in one hook): the trust map then costs the head, not a second pass.
        """
        self._recent = OrderedDict()

    def _restored(self, counts: np.ndarray) -> np.ndarray:
        """``counts`` restored: the remembered output of an identical input, else a pass."""
        if self._recent is not None:
            recalled = self._recent.get(frame_digest(counts))
            if recalled is not None:
                return recalled
        return self._restore([counts])[0]

    def _counts(self, frame: object) -> np.ndarray:
        """The checked input: one 2-D frame here, a raw set in :class:`SimSession`."""
        return as_frame(frame)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self._restore([self._counts(frame)])[0]

    def trust_calibration(self) -> TrustCalibration:
        """The model's trust calibration (``trust.yaml``), checked against these weights.

        ValueError, naming the command that makes one, when there is none or it was made for
        other weights; ModelLoadError when the trust head it names is missing or corrupt.
        """
        calibration = TrustCalibration.read(self.folder)
        if calibration.details.get("weights_sha256") != self.spec.weights_sha256:
            raise ValueError(
                f"{self.folder / 'trust.yaml'} was calibrated for other weights than "
                f"{self.name}'s; recalibrate: live-restore calibrate-trust {self.name}"
            )
        if calibration.method == "head":
            # loaded here, so a missing or corrupt head file is refused up front
            self._head_for(calibration)
        return calibration

    def _head_for(self, calibration: TrustCalibration) -> TrustHead:
        """The trust head ``calibration`` names (loaded once per file hash)."""
        sha256 = calibration.details.get("head_sha256")
        if self._trust_head is None or self._trust_head_sha256 != sha256:
            head = load_trust_head(self.folder, self.spec.scale, sha256)
            # the head runs where the model runs (a CPU head beside a GPU model would cost
            # more than the restoration)
            self._trust_head = head.to(backend_device(self.backend))
            self._trust_head_sha256 = sha256
        return self._trust_head

    def with_trust(self, frame: np.ndarray, calibration: TrustCalibration | None = None) -> Trust:
        """The restored frame with ``sigma``, its per-pixel expected absolute error.

        By the model's calibrated method (``trust.yaml``, see ``inference/_trust.py``): its
        trust head (one pass plus the head; ``image`` is ``session(frame)``), or 8 passes under
        the square's symmetries (``image`` is their mean). Pass ``calibration`` from
        :meth:`trust_calibration` (or its ``candidate("tta")``) to read it once for many
        frames. ValueError when the model has no calibration. ``session(frame)`` is unchanged.
        """
        calibration = calibration or self.trust_calibration()
        counts = self._counts(frame)
        if calibration.method == "tta":
            return trust_of(dihedral_passes(self, counts), calibration.sigma_scale)
        if calibration.method != "head":
            raise ValueError(
                f"{calibration.method!r} is not a single-frame trust method (head or tta)"
            )
        if counts.ndim != 2:
            raise ValueError(f"the trust head reads one 2-D frame, not shape {counts.shape}")
        restored = self._restored(counts)
        spread = head_spread(self._head_for(calibration), counts, restored)
        return Trust(restored, calibration.sigma_scale * spread)

    def restore_batch(self, frames: np.ndarray) -> np.ndarray:
        """Several inputs stacked on a new first axis -> their outputs, stacked.

        What the hook calls when it has fallen behind: the tiles of all the inputs share the
        backend's calls. Each input keeps its own normalisation, so every output is the one
        ``__call__`` gives for that input alone.
        """
        stack = np.asarray(frames)
        if stack.ndim < 3 or len(stack) == 0:
            raise ValueError(f"restore_batch takes inputs stacked on a first axis: {stack.shape}")
        return self._restore([self._counts(item) for item in stack])

    def _restore(self, counts: list[np.ndarray]) -> np.ndarray:
        """Checked inputs -> outputs: normalise each, tile all together, map each back."""
        # one scale per input (a SIM set shares it across its frames, as in training)
        scales = [frame_scale(c, self.spec.normalisation) for c in counts]
        images = np.stack([s.forward(c) for s, c in zip(scales, counts, strict=True)])
        outputs = tiled_apply_stack(
            self._run,
            images if images.ndim == 4 else images[:, None],
            self.tile,
            self.overlap,
            self.spec.scale,
            self.spec.multiple_of,
            self.tiles_per_call,
        )
        restored = np.stack(
            [
                s.inverse(o, self.spec.normalisation.output_range)
                for s, o in zip(scales, outputs, strict=True)
            ]
        )
        if self._recent is not None:
            for c, o in zip(counts, restored, strict=True):
                # a copy: what the caller does with its output must not change the one kept
                self._recent[frame_digest(c)] = o.copy()
            while len(self._recent) > self._RECENT_COUNT:
                self._recent.popitem(last=False)
        return restored


class SimSession(ModelSession):
    """SIM raw set ``(9, H, W)`` (raw counts, patterns A0P0..A2P2) -> 2x image (float32 counts).

    One normalisation for the whole set (percentiles over all 9 frames, as in training). As a
    hook stage it takes sets of 9 frames along the MDA channel axis (``grouping``): the 9 SIM
    pattern presets, in order, at each time point and position.
    """

    def __init__(
        self, spec: ModelSpec, folder: Path, backend: Backend, tile_px: int | None = None
    ) -> None:
        super().__init__(spec, folder, backend, tile_px)
        self.frames_per_set = int(spec.arguments.get("in_channels", 9))
        self.grouping = AxisSet("c", self.frames_per_set)

    def _counts(self, frame: object) -> np.ndarray:
        array = np.asarray(frame)
        expected = self.frames_per_set
        if array.ndim != 3 or array.shape[0] != expected:
            raise ValueError(
                f"{self.name} takes a SIM raw set of {expected} frames (patterns A0P0..A2P2) "
                f"as ({expected}, rows, columns), got shape {array.shape}"
            )
        return np.stack([as_frame(f) for f in array])


class MFSRSession(ModelSession):
    """A window of frames ``(window, H, W)`` (raw counts, time order) -> 2x of the centre one.

    One normalisation for the whole window (its joint percentiles, as in training); float32
    counts out, like ``dfcan-sr2x``. As a hook stage it takes windows of consecutive frames at
    each position and channel (``grouping``): ``mode="centred"`` waits ``window // 2`` frames
    for each frame's future (better); ``mode="causal"`` puts the newest frame at the centre with
    its future repeated (no added latency, as at the end of a series).
    """

    def __init__(
        self,
        spec: ModelSpec,
        folder: Path,
        backend: Backend,
        tile_px: int | None = None,
        mode: str = "centred",
    ) -> None:
        super().__init__(spec, folder, backend, tile_px)
        self.window = int(spec.arguments.get("window", 5))
        self.use_mode(mode)

    def use_mode(self, mode: str) -> None:
        """``centred`` or ``causal`` windows from now on (for a hook stage)."""
        if mode not in ("centred", "causal"):
            raise ValueError(f"mode must be 'centred' or 'causal', got {mode!r}")
        self.mode = mode
        self.windows = TemporalWindow(self.window, centred=True, wait=mode == "centred")
        self.grouping = self.windows

    def provenance(self) -> dict[str, str]:
        """The model's, with the window and its mode."""
        return super().provenance() | {
            "window": f"{self.window} frames, {self.mode} ({self.windows.latency_frames} "
            "frames of added latency); the frames fused are in frames.csv (flags)",
        }

    def _counts(self, frame: object) -> np.ndarray:
        array = np.asarray(frame)
        if array.ndim != 3 or array.shape[0] != self.window:
            raise ValueError(
                f"{self.name} takes a window of {self.window} consecutive frames as "
                f"({self.window}, rows, columns), in time order, got shape {array.shape}"
            )
        return np.stack([as_frame(f) for f in array])


class InterpSession(_Session):
    """Two frames (raw counts) and a fraction -> the frame between them, float32 photons.

    ``session(before, after, fraction=0.5)``: ``before`` and ``after`` are two times (``interp-t``)
    or two planes (``interp-z``) of the same field, same shape; ``fraction`` in (0, 1) is where
    the wanted frame lies between them. :meth:`between` gives several fractions of one pair at
    once (their tiles share the network calls). Counts become photons with ``camera``'s offset
    and gain (default: the simulated camera's, 100 ADU and 1 ADU per electron).
    """

    def __init__(
        self,
        spec: ModelSpec,
        folder: Path,
        backend: Backend,
        tile_px: int | None = None,
        camera: PhotonConversion | None = None,
    ) -> None:
        super().__init__(spec, folder, backend, tile_px)
        self.axis = spec.axis or "t"
        self.camera = camera or PhotonConversion()

    def provenance(self) -> dict[str, str]:
        """The model's, with the pair's joint normalisation and the photon conversion."""
        return super().provenance() | {
            "normalisation": "percentiles of the pair together -> 0/1; output in those units",
            "photons": self.camera.describe(),
        }

    def __call__(self, before: np.ndarray, after: np.ndarray, fraction: float = 0.5) -> np.ndarray:
        return self.between(before, after, [fraction])[0]

    def between(self, before: np.ndarray, after: np.ndarray, fractions: list[float]) -> np.ndarray:
        """The frames at each of ``fractions`` between ``before`` and ``after``: ``(F, H, W)``."""
        first, second = as_frame(before), as_frame(after)
        if first.shape != second.shape:
            raise ValueError(
                f"{self.name} interpolates between frames of one shape; got {first.shape} and "
                f"{second.shape}"
            )
        if not fractions:
            raise ValueError("give at least one fraction in (0, 1)")
        for fraction in fractions:
            if not (isinstance(fraction, (int, float)) and 0.0 < float(fraction) < 1.0):
                raise ValueError(
                    f"fraction must be a number strictly between 0 and 1 (where the wanted "
                    f"frame lies between before and after), got {fraction!r}"
                )
        planes, scale = interp_inputs(
            first, second, [float(f) for f in fractions], self.spec.normalisation
        )
        outputs = tiled_apply_stack(
            self._run,
            planes,
            self.tile,
            self.overlap,
            1,
            self.spec.multiple_of,
            self.tiles_per_call,
        )
        counts = scale.inverse(outputs, self.spec.normalisation.output_range)
        return self.camera.photons(counts)


def load_model(
    name: str | Path,
    backend: str = "auto",
    precision: str = "auto",
    cache: EngineCache | None = None,
    tile_px: int | None = None,
    cpu_variant: bool = True,
    server: str | None = None,
    **options: Any,
) -> ModelSession | FocusSession | InterpSession | TritonSession | TritonInterpolation:
    """A ready inference session for a shipped model name or a model folder.

    ``server="grpc://HOST:PORT"``: the model runs on that Triton server (``live-restore
    serve``), with the same call signature; every answer is checked against this machine's
    model.yaml weights sha256 (see ``TritonSession``).

    ``backend``: ``auto`` (the fastest here), ``tensorrt``, ``torch-cuda``, ``torch-cpu`` or
    ``onnxruntime``; ``precision``: ``auto`` (fp16 on a GPU, else fp32), ``fp32``, ``fp16``,
    ``bf16``. ``tile_px``: the tile side (default: the model's own, else twice the training
    patch; larger wastes less work on overlap, e.g. on a GPU). ``options`` go to the backend
    (see ``create_backend``). On the CPU, a model with a lighter CPU variant (``dfcan-sr2x`` ->
    ``dfcan-sr2x-tiny``) is swapped for it when the full one would not keep up (unless
    ``cpu_variant`` is False, as for evaluation), and ``auto`` takes the model's measured
    faster CPU runtime (``cpu_backend`` in model.yaml); the log says so.
    """
    if server is not None:
        if read_spec(model_dir(name)).task is ModelTask.INTERPOLATION:
            return TritonInterpolation(name, server)
        return TritonSession(name, server)
    resolved, _ = resolve_backend(backend, precision)
    chosen = str(name)
    if cpu_variant and resolved in CPU_BACKENDS and chosen in CPU_VARIANTS:
        log.warning(
            "%s runs at ~0.7 TFLOP per 512x512 frame, seconds on a CPU: using %s instead",
            chosen,
            CPU_VARIANTS[chosen],
        )
        chosen = CPU_VARIANTS[chosen]
    spec, network, folder = load_network(chosen)
    tile_shape = session_tile(spec, tile_px)
    # frames up to a whole-frame model's tile run whole, each size its own graph: built by
    # ``prepare`` for the camera's frame when a hook is made, else at the first frame
    build_now = None if tile_shape[1] > WHOLE_FRAME_PX else tile_shape
    runtime = create_backend(network, spec, backend, precision, cache, build_now, **options)
    if backend == "auto":
        log.info(
            "%s runs on %s (%s), the fastest backend here",
            spec.name,
            runtime.name,
            runtime.precision,
        )
    return make_session(spec, folder, runtime, tile_px)


def make_session(
    spec: ModelSpec, folder: Path, runtime: Backend, tile_px: int | None = None
) -> ModelSession | SimSession | FocusSession | InterpSession:
    """The session for ``spec``'s task around a ready backend."""
    if spec.task is ModelTask.INTERPOLATION:
        return InterpSession(spec, folder, runtime, tile_px)
    if spec.task is ModelTask.MULTI_FRAME_SR:
        return MFSRSession(spec, folder, runtime, tile_px)
    if spec.task is ModelTask.FOCUS_ESTIMATION:
        from ._focus_session import FocusSession

        return FocusSession(spec, folder, runtime)
    if spec.task is ModelTask.SIM_RECONSTRUCTION:
        return SimSession(spec, folder, runtime, tile_px)
    return ModelSession(spec, folder, runtime, tile_px)
