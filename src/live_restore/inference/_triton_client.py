"""A model served by a Triton server (``live-restore serve``), used like a local session.

``load_model(name, server="grpc://HOST:8001")`` returns a :class:`TritonSession`: the same call
signature as a local session (raw counts in, float32 out, ``scale`` x larger; a SIM model takes
its 9-frame set, an mfsr model its window), and a :class:`~live_restore.frames.Restorer`, so a
hook stage can be one. ``TritonInterpolation`` is a served interp-t / interp-z model, and
``TritonSession(name, server, trust=True)`` a model's trust map.

Trust: the client reads the model's ``model.yaml`` from its own ``engines/`` (name, scale,
grouping, weights sha256). Every answer from the server carries the sha256 of the weights that
made it, and an answer from other weights is refused: a client never silently uses a different
model. Errors say which server and what failed (unreachable, timeout, model not served).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from live_restore._version import __version__
from live_restore.frames import (
    AxisSet,
    Grouping,
    PhotonConversion,
    RestorerBase,
    SingleFrame,
    TemporalWindow,
    trust_stage_name,
)
from live_restore.models import ModelTask, model_dir, read_spec

__all__ = [
    "READY_MODEL",
    "ServerError",
    "ServerUnreachable",
    "TritonInterpolation",
    "TritonSession",
    "server_address",
]

READY_MODEL = "live-restore-ready"  # loaded last by `serve`: ready means every model is
INPUT = "frames"  # (batch, frames per group, rows, columns), float32 raw counts
OUTPUT = "restored"  # (batch, rows x scale, columns x scale), float32
WEIGHTS = "weights_sha256"  # (batch, 1), bytes: which weights made the answer


class ServerError(RuntimeError):
    """The Triton server cannot be reached, does not serve the model, or answered wrongly."""


class ServerUnreachable(ServerError):
    """The connection to the server is down (it may come back): a hook stage keeps trying.

    ``transient`` tells the stage runner not to count it toward disabling the stage until the
    server has been unreachable for the hook's ``server_grace_s``.
    """

    transient = True


# gRPC retries a lost connection with exponential back-off up to 2 min by default; a server
# back after a restart should be found within seconds
_INT32_MAX = 2**31 - 1
_CHANNEL_ARGS = [  # tritonclient's own defaults (given channel args, it sets none), then ours
    ("grpc.max_send_message_length", _INT32_MAX),
    ("grpc.max_receive_message_length", _INT32_MAX),
    ("grpc.keepalive_time_ms", _INT32_MAX),
    ("grpc.keepalive_timeout_ms", 20000),
    ("grpc.keepalive_permit_without_calls", False),
    ("grpc.http2.max_pings_without_data", 2),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.min_reconnect_backoff_ms", 250),
]
_UNREACHABLE = ("StatusCode.UNAVAILABLE",)


def server_address(url: str) -> str:
    """``grpc://host:port`` -> ``host:port`` (what tritonclient takes); ValueError otherwise."""
    if not url.startswith("grpc://") or ":" not in url[len("grpc://") :]:
        raise ValueError(f"a server is given as grpc://HOST:PORT, not {url!r}")
    return url[len("grpc://") :]


class _ServedModel:
    """A connection to one model on a Triton server, checked to be served with our weights."""

    def __init__(
        self,
        name: str | Path,
        server: str,
        timeout_s: float,
        served_as: str = "",
        ready_timeout_s: float = 30.0,
    ) -> None:
        try:
            import tritonclient.grpc as grpcclient
            from tritonclient.utils import InferenceServerException
        except ImportError:
            raise ServerError(
                "a served model needs tritonclient: pip install 'live-restore[serve]'"
            ) from None
        self._grpc = grpcclient
        self._server_error = InferenceServerException
        self.spec = read_spec(model_dir(name))
        if self.spec.task is ModelTask.FOCUS_ESTIMATION:
            raise ValueError(
                f"{self.spec.name} estimates focus; it is not served (it runs locally)"
            )
        self.served_as = served_as or self.spec.name
        self.server = server
        self.timeout_s = timeout_s
        self._client = grpcclient.InferenceServerClient(
            server_address(server), channel_args=_CHANNEL_ARGS
        )
        try:
            self._client.is_server_live(client_timeout=min(timeout_s, 10.0))
        except InferenceServerException as e:
            raise ServerError(f"no Triton server answers at {server}: {_first_line(e)}") from None
        self._wait_until_ready(ready_timeout_s)

    def _wait_until_ready(self, ready_timeout_s: float) -> None:
        """Wait while the server still loads its models (its READY_MODEL not ready yet)."""
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                if self._client.is_model_ready(self.served_as, client_timeout=10.0):
                    return
                loaded = self._client.is_model_ready(READY_MODEL, client_timeout=10.0)
            except self._server_error as e:
                raise ServerError(f"Triton at {self.server}: {_first_line(e)}") from None
            if loaded or time.monotonic() > deadline:
                still = "" if loaded else f" (still loading after {ready_timeout_s:g} s)"
                raise ServerError(
                    f"the Triton server at {self.server} does not serve {self.served_as!r}"
                    f"{still}; start it with `live-restore serve -m {self.spec.name}`"
                )
            time.sleep(0.25)

    def _infer(self, **inputs: np.ndarray) -> np.ndarray:
        """One request with the named float32 inputs; the ``restored`` output, weights checked."""
        requests = []
        for name, value in inputs.items():
            array = np.ascontiguousarray(value, dtype=np.float32)
            request = self._grpc.InferInput(name, list(array.shape), "FP32")
            request.set_data_from_numpy(array)
            requests.append(request)
        wanted = [self._grpc.InferRequestedOutput(name) for name in (OUTPUT, WEIGHTS)]
        try:
            answer = self._client.infer(
                self.served_as, requests, outputs=wanted, client_timeout=self.timeout_s
            )
        except self._server_error as e:
            error = ServerUnreachable if str(e.status()) in _UNREACHABLE else ServerError
            raise error(f"Triton at {self.server}, {self.served_as}: {_first_line(e)}") from None
        restored: Any = answer.as_numpy(OUTPUT)
        self._check_weights(answer.as_numpy(WEIGHTS))
        return np.asarray(restored, dtype=np.float32)

    def _check_weights(self, answered: Any) -> None:
        shas = {bytes(v).decode() if not isinstance(v, str) else v for v in np.ravel(answered)}
        if shas != {self.spec.weights_sha256}:
            raise ServerError(
                f"the Triton server at {self.server} answered {self.served_as} with other "
                f"weights (sha256 {', '.join(sorted(shas))[:16]}..., here "
                f"{self.spec.weights_sha256[:16]}...); refusing its output: serve the same "
                "model.yaml and weights"
            )

    def _provenance(self) -> dict[str, str]:
        return {
            "model": self.served_as,
            "weights_sha256": self.spec.weights_sha256,
            "executor": f"triton {self.server}",
            "live_restore": __version__,
        }

    def close(self) -> None:
        """Close the connection."""
        self._client.close()


class TritonSession(_ServedModel, RestorerBase):
    """One served model as a stage; see the module docstring.

    ``trust=True``: the model's calibrated trust map (sigma), served as ``NAME-trust``.
    """

    max_batch = 8  # the server batches too (dynamic batching across clients)

    def __init__(
        self, name: str | Path, server: str, timeout_s: float = 60.0, trust: bool = False
    ) -> None:
        spec_name = read_spec(model_dir(name)).name
        super().__init__(name, server, timeout_s, trust_stage_name(spec_name) if trust else "")
        self.name = self.served_as
        self.scale = self.spec.scale
        self.output_kind = "sigma" if trust else "image"
        self.grouping: Grouping = SingleFrame()
        if self.spec.task is ModelTask.SIM_RECONSTRUCTION:
            self.grouping = AxisSet("c", int(self.spec.arguments.get("in_channels", 9)))
        elif self.spec.task is ModelTask.MULTI_FRAME_SR:
            self.window = int(self.spec.arguments.get("window", 5))
            self.use_mode("centred")
        elif self.spec.task is ModelTask.INTERPOLATION:
            raise ValueError(
                f"{self.spec.name} interpolates: use TritonInterpolation (or a hook stage)"
            )

    def use_mode(self, mode: str) -> None:
        """A multi-frame model's windows: ``centred`` or ``causal`` (as MFSRSession's)."""
        if mode not in ("centred", "causal"):
            raise ValueError(f"mode must be 'centred' or 'causal', got {mode!r}")
        self.grouping = TemporalWindow(self.window, centred=True, wait=mode == "centred")

    def provenance(self) -> dict[str, str]:
        """The model as the client knows it, and the server that ran it."""
        return self._provenance()

    def __call__(self, frame: np.ndarray, /) -> np.ndarray:
        """Restore one input (a frame, or its group's stack) on the server."""
        return self.restore_batch(np.asarray(frame)[None])[0]

    def restore_batch(self, frames: np.ndarray, /) -> np.ndarray:
        """Restore stacked inputs in one request."""
        if not np.isrealobj(frames) or np.asarray(frames).dtype.kind not in "biuf":
            raise ValueError(
                f"{self.name} takes real-valued frames (counts), got dtype "
                f"{np.asarray(frames).dtype}"
            )
        stack = np.asarray(frames, dtype=np.float32)
        if self.grouping.group_size == 1:
            stack = stack[:, None]  # a group of one frame
        if stack.ndim != 4:
            raise ValueError(f"{self.name} got inputs of shape {np.shape(frames)}")
        return self._infer(**{INPUT: stack})


class TritonInterpolation(_ServedModel):
    """A served interpolation model, called as ``InterpSession.between`` is.

    The server answers in counts; they become photons here, with this camera's conversion.
    """

    def __init__(
        self,
        name: str | Path,
        server: str,
        camera: PhotonConversion | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        super().__init__(name, server, timeout_s)
        if self.spec.task is not ModelTask.INTERPOLATION:
            raise ValueError(f"{self.spec.name} does not interpolate")
        self.name = self.spec.name
        self.axis = self.spec.axis or "t"
        self.camera = camera or PhotonConversion()

    def provenance(self) -> dict[str, str]:
        """The model as the client knows it, the server, and the photon conversion."""
        return {**self._provenance(), "photons": self.camera.describe()}

    def between(self, before: np.ndarray, after: np.ndarray, fractions: list[float]) -> np.ndarray:
        """The frames at each of ``fractions`` between ``before`` and ``after``: ``(F, H, W)``."""
        pair = np.stack([np.asarray(before), np.asarray(after)])[None]
        counts = self._infer(frames=pair, fractions=np.asarray([fractions], np.float32))[0]
        return self.camera.photons(counts)


def _first_line(error: BaseException) -> str:
    """The message of a server error: its first line, or a server traceback's last line."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Traceback" in text:  # a failure inside the served model: its own exception's line
        raised = [
            line for line in lines if re.match(r"^\w+(Error|Exception): (?!.*Traceback)", line)
        ]
        if raised:
            return f"{lines[0].split(', message:')[0]}: {raised[-1]}"
    return lines[0]
