"""The bottom layer: frames, their groups, the stage contract and the shared names.

Everything in live_restore may import this; it imports nothing of live_restore's.
"""

from ._enums import BackendName, FrameStatus, Policy, Precision
from ._frame import CAMERA_AXIS, FrameIndex, IndexKey, as_frame, format_index, index_key, read_only
from ._grouping import (
    AxisPairs,
    AxisSet,
    FrameGroup,
    FullRateOutput,
    Grouping,
    SingleFrame,
    TemporalWindow,
)
from ._photons import PhotonConversion
from ._restorer import Executor, Restorer, RestorerBase, check_restorer

__all__ = [
    "CAMERA_AXIS",
    "AxisPairs",
    "AxisSet",
    "BackendName",
    "Executor",
    "FrameGroup",
    "FrameIndex",
    "FrameStatus",
    "FullRateOutput",
    "Grouping",
    "IndexKey",
    "PhotonConversion",
    "Policy",
    "Precision",
    "Restorer",
    "RestorerBase",
    "SingleFrame",
    "TemporalWindow",
    "as_frame",
    "check_restorer",
    "format_index",
    "index_key",
    "read_only",
]
