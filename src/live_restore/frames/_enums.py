"""The closed sets of names the hook, its records and its configuration use."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BackendName", "FrameStatus", "Policy", "Precision"]


class FrameStatus(StrEnum):
    """What became of one frame in one stage (the ``status`` column of frames.csv)."""

    RESTORED = "restored"  # the output is written (or, without an output folder, shown)
    ERROR = "error"  # the stage failed on it; the message says how
    DISABLED = "disabled"  # the stage had given up after consecutive failures
    SKIPPED = "skipped"  # "latest": replaced by a newer frame before the worker got to it
    INCOMPLETE_GROUP = "incomplete-group"  # a multi-frame set cut short
    REFUSED = "refused"  # the stage cannot restore this sequence at all
    UNSAVED = "unsaved"  # restored, but its write failed: shown, not on disk
    UNDONE = "undone"  # left when the hook closed before restoring it
    DROPPED = "dropped"  # neither held in memory nor readable from a raw store


class Policy(StrEnum):
    """What the hook does when restoration is slower than the camera."""

    ALL = "all"  # every frame restored eventually; catch-up from the raw store
    LATEST = "latest"  # for display: the newest frame wins, the rest are counted as skipped


class BackendName(StrEnum):
    """Where a trained model runs (``auto`` picks the fastest that is available)."""

    AUTO = "auto"
    TENSORRT = "tensorrt"
    TORCH_CUDA = "torch-cuda"
    TORCH_CPU = "torch-cpu"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


class Precision(StrEnum):
    """Arithmetic of a trained model's backend (``auto``: the backend's best)."""

    AUTO = "auto"
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"  # static int8 (calibrated QDQ graph) on a CPU runtime
