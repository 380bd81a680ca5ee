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
from pathlib import Path
from typing import Any

import numpy as np

from live_restore.frames import SingleFrame, trust_stage_name

__all__ = ["main"]

log = logging.getLogger("live_restore.serve")


def _infer_function(stage: Any, sha256: str) -> Callable[..., dict[str, np.ndarray]]:
    """A restorer (a session or a trust stage) as PyTriton's batched infer function."""
    from pytriton.decorators import batch

    sha = sha256.encode()
    single = stage.grouping.group_size == 1

    @batch  # type: ignore[untyped-decorator]
    def infer(frames: np.ndarray) -> dict[str, np.ndarray]:
        inputs = frames[:, 0] if single else frames
        restored = stage.restore_batch(inputs) if len(inputs) > 1 else stage(inputs[0])[None]
        answered = np.array([[sha]] * len(inputs), dtype=np.object_)
        return {"restored": np.asarray(restored, np.float32), "weights_sha256": answered}

    served: Callable[..., dict[str, np.ndarray]] = infer
    return served


def _interp_function(session: Any) -> Callable[..., dict[str, np.ndarray]]:
    """An interpolation session: pairs and fractions in, the frames between out (counts)."""
    from pytriton.decorators import batch

    from live_restore.frames import PhotonConversion

    sha = session.spec.weights_sha256.encode()
    session.camera = PhotonConversion(offset_adu=0.0, gain_adu_per_e=1.0)  # counts out

    @batch  # type: ignore[untyped-decorator]
    def infer(frames: np.ndarray, fractions: np.ndarray) -> dict[str, np.ndarray]:
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
) -> None:
    """Load the models, start Triton, serve until SIGTERM/SIGINT."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    from live_restore.inference import load_model

    # the named model, not its CPU variant: a client checks the weights it asked for
    sessions = {name: load_model(name, backend, cpu_variant=False) for name in models}
    stages = _served_stages(sessions)
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
                infer_func=_interp_function(stage) if interpolates else _infer_function(stage, sha),
                inputs=inputs,
                outputs=[
                    Tensor(name="restored", dtype=np.float32, shape=out_shape),
                    Tensor(name="weights_sha256", dtype=bytes, shape=(1,)),
                ],
                config=ModelConfig(
                    max_batch_size=max_batch,
                    batcher=DynamicBatcher(max_queue_delay_microseconds=2000),
                ),
            )
        triton.run()
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
        )
    except KeyboardInterrupt:
        pass
    except Exception as e:  # one line for the user; the serve command shows it
        print(f"live-restore serve: error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
