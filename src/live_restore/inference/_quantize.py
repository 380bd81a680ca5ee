"""Static int8: the exported graph with int8 convolutions, calibrated once on simulated frames.

ONNX Runtime's quantiser writes a QDQ graph (QuantizeLinear/DequantizeLinear pairs around each
Conv, per-channel int8 weights, uint8 activations) whose ranges come from running the float
graph on calibration frames. The first and last convolutions and the attention's stay in float,
and so do the attention's DFT products: quantising everything cost dfcan-sr2x-tiny up to 2.1 dB
in a structure x light cell, this 0.4 dB (the quality check allows 0.1; benchmarks/RESULTS.md),
so ``auto`` never takes int8 for the shipped models.
Both CPU runtimes read that graph: ONNX Runtime, and OpenVINO, which fuses the pairs into int8
kernels (VNNI where the CPU has it).

The calibration frames are simulated: every structure at three light levels with fresh camera
noise, normalised as a session normalises a frame, and mirrored out to the graph's size. Their
seeds are neither the training's nor the evaluation's, so the quality check that decides whether
a model may run at int8 (``precision_check``) sees frames the ranges were not fitted on. A graph
is built per input shape (the float graph is), on first use, into the engine cache.

Only single-frame models (super-resolution, refocus) are calibrated here: a SIM set, a window
or an interpolation pair would need its own simulated inputs.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from live_restore.models import ModelSpec, ModelTask, frame_scale

from ._cache import EngineCache
from ._onnxruntime import cached_onnx, onnx_fields

__all__ = ["CALIBRATION_SEED", "INT8_TASKS", "cached_int8_onnx", "calibration_frames"]

log = logging.getLogger(__name__)

CALIBRATION_SEED = 30_000  # training uses small seeds, evaluation 20_000 + seed
CALIBRATION_PHOTONS = (20.0, 100.0, 500.0)
CALIBRATION_FIELD_PX = 256
INT8_TASKS = (ModelTask.SUPER_RESOLUTION, ModelTask.REFOCUS)
# what is quantised (the int8 graph's cache key holds it, so a change rebuilds)
QUANTISED_OPS = ("Conv",)
CALIBRATION_METHOD = "MinMax"
# node names (a substring) left in float: where int8's rounding shows in the output
FLOAT_NODES: tuple[str, ...] = ("/head/", "/out/", "/attention/")


def require_int8_calibration(spec: ModelSpec) -> None:
    """ValueError, in one line, when ``spec`` cannot be calibrated for int8 here."""
    channels = int(spec.arguments.get("in_channels", 1))
    if spec.task not in INT8_TASKS or channels != 1:
        raise ValueError(
            f"{spec.name} ({spec.task}) has no int8 calibration: int8 is calibrated for "
            "single-frame super-resolution and refocus models"
        )


def calibration_frames(spec: ModelSpec, shape: tuple[int, int, int]) -> list[np.ndarray]:
    """Normalised simulated frames of ``shape`` ``(1, H, W)``, as a session would send them."""
    from live_restore.simulate import STRUCTURES, CameraParams, ManualClock, SimMicroscope, expose

    _, rows, cols = shape
    camera = CameraParams()
    rng = np.random.default_rng(CALIBRATION_SEED)
    side = CALIBRATION_FIELD_PX
    frames = []
    for index, structure in enumerate(STRUCTURES):
        scope = SimMicroscope(
            structure, seed=CALIBRATION_SEED + index, frame_shape=(side, side), clock=ManualClock()
        )
        expected = scope.expected_photons(scope.record_exposure())
        expected = expected / max(float(expected.max()), 1e-12)  # 1 photon at the peak
        for photons in CALIBRATION_PHOTONS:
            counts = expose(expected * photons, camera, rng).astype(np.float32)
            image = frame_scale(counts, spec.normalisation).forward(counts)
            # mirrored out (or cut) to the graph's size: the statistics of a larger field
            reach = (max(rows - side, 0), max(cols - side, 0))
            image = np.pad(image, ((0, reach[0]), (0, reach[1])), mode="symmetric")
            frames.append(np.ascontiguousarray(image[None, None, :rows, :cols], np.float32))
    return frames


def int8_fields(spec: ModelSpec, shape: tuple[int, int, int]) -> dict[str, Any]:
    """What an int8 graph depends on: its float graph's fields and the calibration."""
    from onnxruntime import __version__ as ort_version

    return onnx_fields(spec, shape) | {
        "quantisation": f"static QDQ, {'+'.join(QUANTISED_OPS)}, per-channel int8 weights, "
        f"uint8 activations, {CALIBRATION_METHOD}; float: {', '.join(FLOAT_NODES) or 'none'}",
        "calibration": {
            "frames": "SimMicroscope fields, one per structure, peak-normalised",
            "seed": CALIBRATION_SEED,
            "photons": list(CALIBRATION_PHOTONS),
            "field_px": CALIBRATION_FIELD_PX,
        },
        "onnxruntime": ort_version,
    }


def cached_int8_onnx(
    network: nn.Module, spec: ModelSpec, shape: tuple[int, int, int], cache: EngineCache
) -> Path:
    """The model's int8 QDQ graph for inputs ``(1, *shape)``, built once into ``cache``."""
    require_int8_calibration(spec)
    source = cached_onnx(network, spec, shape, cache)

    def write(path: Path) -> None:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        log.info("calibrating int8 %s for input %s on simulated frames", spec.name, shape)
        frames = iter(calibration_frames(spec, shape))

        class Frames(CalibrationDataReader):  # type: ignore[misc]
            def get_next(self) -> dict[str, np.ndarray] | None:
                frame = next(frames, None)
                return None if frame is None else {"input": frame}

        with tempfile.TemporaryDirectory() as scratch:
            prepared = Path(scratch) / "prepared.onnx"
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            import onnx

            excluded = [
                node.name
                for node in onnx.load(str(prepared)).graph.node
                if any(part in node.name for part in FLOAT_NODES)
            ]
            quantize_static(
                str(prepared),
                str(path),
                Frames(),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(QUANTISED_OPS),
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method=CalibrationMethod[CALIBRATION_METHOD],
                nodes_to_exclude=excluded,
            )

    return cache.get_or_build(spec.name, "int8", int8_fields(spec, shape), ".onnx", write)
