"""The Triton inference server behind ``live-restore serve`` (PyTriton).

Run as ``python -m live_restore.serving._triton_server --models ... --ports ...`` by the
``serve`` command, in the server environment (``make serve-env``): PyTriton 0.7's Python-backend
stub is built against NumPy 1 and returns empty outputs under NumPy 2 (measured), while the
rest of live-restore needs NumPy 2. So this module imports only ``inference`` (torch, ONNX
Runtime, safetensors), never zarr, Dask or Qt.

Each model is served under its own name with dynamic batching. Input ``frames``: (batch, frames
per group, rows, columns) float32 raw counts (its grouping's group: 1 for single-frame models,
9 for a SIM set, the window for mfsr); outputs ``restored`` (batch, rows x scale, columns x
scale) float32 and ``weights_sha256``, the weights that made each answer, which the client
checks against its own model.yaml. An interpolation model takes a pair (batch, 2, rows,
columns) and ``fractions`` (batch, F) and answers the F frames between, in counts (batch, F,
rows, columns): the client converts them to photons with its own camera's offset and gain. A
model with a trust calibration is also served as ``NAME-trust``: its sigma map. PyTriton's
model config has no free-form fields, so provenance travels with every answer instead.
SIGTERM and SIGINT stop it cleanly (Triton's own process too).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from live_restore.frames import SingleFrame, trust_stage_name
from live_restore.inference import READY_MODEL

from ._server_process import port_holder, remove_stale_blocks, tritonserver_dies_with_us

__all__ = ["main"]

log = logging.getLogger("live_restore.serve")


@dataclass(frozen=True)
class RequestLimit:
    """What one request may be: its frames per group and its size."""

    max_pixels: int

    def check(self, name: str, frames: np.ndarray, group_frames: int) -> None:
        """ValueError (Triton answers it as the request's error) naming what is wrong."""
        if frames.ndim != 4 or frames.shape[1] != group_frames:
            raise ValueError(
                f"{name} takes (batch, {group_frames}, rows, columns) frames, got shape "
                f"{tuple(frames.shape)}"
            )
        if frames.size > self.max_pixels:
            raise ValueError(
                f"a request of {frames.size / 2**20:.1f} Mpx exceeds this server's limit of "
                f"{self.max_pixels / 2**20:.1f} Mpx (serve --max-request-mpx); send smaller "
                "frames or fewer at once"
            )


def _infer_function(
    stage: Any, sha256: str, limit: RequestLimit
) -> Callable[..., dict[str, np.ndarray]]:
    """A restorer (a session or a trust stage) as PyTriton's batched infer function."""
    from pytriton.decorators import batch

    sha = sha256.encode()
    group_frames = stage.grouping.group_size
    single = group_frames == 1

    @batch  # type: ignore[untyped-decorator]
    def infer(frames: np.ndarray) -> dict[str, np.ndarray]:
        limit.check(stage.name, frames, group_frames)
        inputs = frames[:, 0] if single else frames
        restored = stage.restore_batch(inputs) if len(inputs) > 1 else stage(inputs[0])[None]
        answered = np.array([[sha]] * len(inputs), dtype=np.object_)
        return {"restored": np.asarray(restored, np.float32), "weights_sha256": answered}

    served: Callable[..., dict[str, np.ndarray]] = infer
    return served


def _interp_function(session: Any, limit: RequestLimit) -> Callable[..., dict[str, np.ndarray]]:
    """An interpolation session: pairs and fractions in, the frames between out (counts)."""
    from pytriton.decorators import batch

    from live_restore.frames import PhotonConversion

    sha = session.spec.weights_sha256.encode()
    session.camera = PhotonConversion(offset_adu=0.0, gain_adu_per_e=1.0)  # counts out

    @batch  # type: ignore[untyped-decorator]
    def infer(frames: np.ndarray, fractions: np.ndarray) -> dict[str, np.ndarray]:
        limit.check(session.name, frames, 2)
        restored = [
            session.between(pair[0], pair[1], [float(f) for f in wanted])
            for pair, wanted in zip(frames, fractions, strict=True)
        ]
        answered = np.array([[sha]] * len(frames), dtype=np.object_)
        return {"restored": np.asarray(restored, np.float32), "weights_sha256": answered}

    served: Callable[..., dict[str, np.ndarray]] = infer
    return served


class _Sigma:
    """A single-frame model's calibrated trust map (sigma), served as ``NAME-trust``."""

    grouping = SingleFrame()

    def __init__(self, session: Any) -> None:
        self.session = session
        self.calibration = session.trust_calibration()  # ValueError: not calibrated

    def provenance(self) -> dict[str, str]:
        return {**self.session.provenance(), "output": "sigma", "model": self.name}

    @property
    def name(self) -> str:
        return trust_stage_name(self.session.name)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        sigma: np.ndarray = self.session.with_trust(frame, self.calibration).sigma
        return sigma

    def restore_batch(self, frames: np.ndarray) -> np.ndarray:
        return np.stack([self(frame) for frame in frames])


def _ready_function() -> Callable[..., dict[str, np.ndarray]]:
    from pytriton.decorators import batch

    @batch  # type: ignore[untyped-decorator]
    def ready(ping: np.ndarray) -> dict[str, np.ndarray]:
        return {"pong": ping}

    served: Callable[..., dict[str, np.ndarray]] = ready
    return served


def _served_stages(sessions: dict[str, Any]) -> dict[str, tuple[Any, bool]]:
    """Every name served: each model, and ``NAME-trust`` beside a calibrated one.

    Value: (the stage, whether it interpolates).
    """
    from live_restore.inference import InterpSession, ModelSession

    served: dict[str, tuple[Any, bool]] = {}
    for name, session in sessions.items():
        served[name] = (session, isinstance(session, InterpSession))
        if type(session) is ModelSession:
            try:
                sigma = _Sigma(session)
            except ValueError:  # no trust calibration: the model alone
                continue
            served[sigma.name] = (sigma, False)
    return served


def serve(
    models: list[str],
    host: str,
    grpc_port: int,
    http_port: int,
    metrics_port: int,
    backend: str,
    max_batch: int,
    max_request_mpx: float = 20.0,
    queue_timeout_s: float = 30.0,
) -> None:
    """Load the models, start Triton, serve until SIGTERM/SIGINT."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, QueuePolicy, Tensor
    from pytriton.triton import Triton, TritonConfig

    from live_restore.inference import load_model

    for port in (grpc_port, http_port, metrics_port):  # before minutes of loading, not after
        if (holder := port_holder(host, port)) is not None:
            raise RuntimeError(f"{holder}; stop it or give another --grpc-port/--http-port")
    if removed := remove_stale_blocks():
        log.warning("removed %d shared-memory blocks a dead server left", len(removed))
    tritonserver_dies_with_us()

    # the named model, not its CPU variant: a client checks the weights it asked for
    sessions = {name: load_model(name, backend, cpu_variant=False) for name in models}
    stages = _served_stages(sessions)
    limit = RequestLimit(int(max_request_mpx * 2**20))
    # Triton's own log (hundreds of lines) goes to a file; the console keeps what matters
    log_file = Path(tempfile.gettempdir()) / f"live-restore-serve-{grpc_port}.log"
    config = TritonConfig(
        grpc_address=host,
        grpc_port=grpc_port,
        http_address=host,
        http_port=http_port,
        metrics_address=host,
        metrics_port=metrics_port,
        allow_gpu_metrics=False,
        log_verbose=0,
        log_file=log_file,
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # serve() stops on SIGINT
    with Triton(config=config) as triton:
        for name, (stage, interpolates) in stages.items():
            inputs = [Tensor(name="frames", dtype=np.float32, shape=(-1, -1, -1))]
            if interpolates:
                inputs.append(Tensor(name="fractions", dtype=np.float32, shape=(-1,)))
            out_shape = (-1, -1, -1) if interpolates else (-1, -1)
            sha = stage.provenance()["weights_sha256"]
            triton.bind(
                model_name=name,
                infer_func=_interp_function(stage, limit)
                if interpolates
                else _infer_function(stage, sha, limit),
                inputs=inputs,
                outputs=[
                    Tensor(name="restored", dtype=np.float32, shape=out_shape),
                    Tensor(name="weights_sha256", dtype=bytes, shape=(1,)),
                ],
                config=ModelConfig(
                    max_batch_size=max_batch,
                    # a request that waits longer than this behind others is refused, so one
                    # huge request cannot starve every client
                    batcher=DynamicBatcher(
                        max_queue_delay_microseconds=2000,
                        default_queue_policy=QueuePolicy(
                            default_timeout_microseconds=int(queue_timeout_s * 1e6),
                            allow_timeout_override=True,
                        ),
                    ),
                ),
            )
        triton.run()
        # loaded after every model: its readiness (/v2/models/live-restore-ready/ready, what
        # clients wait on) says the whole server is, where Triton's own health says ready early
        triton.bind(
            model_name=READY_MODEL,
            infer_func=_ready_function(),
            inputs=[Tensor(name="ping", dtype=np.float32, shape=(1,))],
            outputs=[Tensor(name="pong", dtype=np.float32, shape=(1,))],
            config=ModelConfig(max_batch_size=1),
        )
        provenance = {name: stage.provenance() for name, (stage, _) in stages.items()}
        # one line the serve command (and tests) wait for
        print(
            "live-restore serve: ready "
            + json.dumps(
                {"grpc": f"grpc://{host}:{grpc_port}", "log": str(log_file), "models": provenance}
            ),
            flush=True,
        )
        triton.serve()


def main(argv: list[str] | None = None) -> None:
    """Parse what the serve command passes and serve."""
    parser = argparse.ArgumentParser(prog="live-restore serve (server process)")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-request-mpx", type=float, default=20.0)
    parser.add_argument("--queue-timeout-s", type=float, default=30.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        serve(
            args.models,
            args.host,
            args.grpc_port,
            args.http_port,
            args.metrics_port,
            args.backend,
            args.max_batch,
            args.max_request_mpx,
            args.queue_timeout_s,
        )
    except KeyboardInterrupt:
        pass
    except Exception as e:  # one line for the user; the serve command shows it
        print(f"live-restore serve: error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
