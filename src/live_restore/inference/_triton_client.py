"""A model served by a Triton server (``live-restore serve``), used like a local session.

``load_model(name, server="grpc://HOST:8001")`` returns a :class:`TritonSession`: the same call
signature as a local session (raw counts in, float32 out, ``scale`` x larger; a SIM model takes
its 9-frame set), and a :class:`~live_restore.frames.Restorer`, so a hook stage can be one.

Trust: the client reads the model's ``model.yaml`` from its own ``engines/`` (name, scale,
grouping, weights sha256). Every answer from the server carries the sha256 of the weights that
made it, and an answer from other weights is refused: a client never silently uses a different
model. Errors say which server and what failed (unreachable, timeout, model not served).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from live_restore._version import __version__
from live_restore.frames import AxisSet, RestorerBase, SingleFrame
from live_restore.models import ModelTask, model_dir, read_spec

__all__ = ["ServerError", "TritonSession", "server_address"]

INPUT = "frames"  # (batch, frames per group, rows, columns), float32 raw counts
OUTPUT = "restored"  # (batch, rows x scale, columns x scale), float32
WEIGHTS = "weights_sha256"  # (batch, 1), bytes: which weights made the answer


class ServerError(RuntimeError):
    """The Triton server cannot be reached, does not serve the model, or answered wrongly."""


def server_address(url: str) -> str:
    """``grpc://host:port`` -> ``host:port`` (what tritonclient takes); ValueError otherwise."""
    if not url.startswith("grpc://") or ":" not in url[len("grpc://") :]:
        raise ValueError(f"a server is given as grpc://HOST:PORT, not {url!r}")
    return url[len("grpc://") :]


class TritonSession(RestorerBase):
    """One served model; see the module docstring."""

    max_batch = 8  # the server batches too (dynamic batching across clients)

    def __init__(self, name: str | Path, server: str, timeout_s: float = 60.0) -> None:
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
        self.name = self.spec.name
        self.scale = self.spec.scale
        self.server = server
        self.timeout_s = timeout_s
        self.grouping = (
            AxisSet("c", int(self.spec.arguments.get("in_channels", 9)))
            if self.spec.task is ModelTask.SIM_RECONSTRUCTION
            else SingleFrame()
        )
        if self.spec.task is ModelTask.FOCUS_ESTIMATION:
            raise ValueError(f"{self.name} estimates focus; it is not served (it runs locally)")
        self._client = grpcclient.InferenceServerClient(server_address(server))
        try:
            live = self._client.is_server_live(client_timeout=min(timeout_s, 10.0))
            ready = live and self._client.is_model_ready(self.name, client_timeout=10.0)
        except InferenceServerException as e:
            raise ServerError(f"no Triton server answers at {server}: {_first_line(e)}") from None
        if not ready:
            raise ServerError(
                f"the Triton server at {server} does not serve {self.name!r}; start it with "
                f"`live-restore serve -m {self.name}`"
            )

    def provenance(self) -> dict[str, str]:
        """The model as the client knows it, and the server that ran it."""
        return {
            "model": self.name,
            "weights_sha256": self.spec.weights_sha256,
            "executor": f"triton {self.server}",
            "live_restore": __version__,
        }

    def __call__(self, frame: np.ndarray, /) -> np.ndarray:
        """Restore one input (a frame, or a SIM set) on the server."""
        return self.restore_batch(np.asarray(frame)[None])[0]

    def restore_batch(self, frames: np.ndarray, /) -> np.ndarray:
        """Restore stacked inputs in one request."""
        stack = np.asarray(frames, dtype=np.float32)
        if isinstance(self.grouping, SingleFrame):
            stack = stack[:, None]  # a group of one frame
        if stack.ndim != 4:
            raise ValueError(f"{self.name} got inputs of shape {np.shape(frames)}")
        request = self._grpc.InferInput(INPUT, list(stack.shape), "FP32")
        request.set_data_from_numpy(np.ascontiguousarray(stack))
        wanted = [self._grpc.InferRequestedOutput(name) for name in (OUTPUT, WEIGHTS)]
        try:
            answer = self._client.infer(
                self.name, [request], outputs=wanted, client_timeout=self.timeout_s
            )
        except self._server_error as e:
            raise ServerError(f"Triton at {self.server}, {self.name}: {_first_line(e)}") from None
        restored: Any = answer.as_numpy(OUTPUT)
        self._check_weights(answer.as_numpy(WEIGHTS))
        return np.asarray(restored, dtype=np.float32)

    def _check_weights(self, answered: Any) -> None:
        shas = {bytes(v).decode() if not isinstance(v, str) else v for v in np.ravel(answered)}
        if shas != {self.spec.weights_sha256}:
            raise ServerError(
                f"the Triton server at {self.server} answered {self.name} with other weights "
                f"(sha256 {', '.join(sorted(shas))[:16]}..., here {self.spec.weights_sha256[:16]}"
                "...); refusing its output: serve the same model.yaml and weights"
            )

    def close(self) -> None:
        """Close the connection."""
        self._client.close()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
