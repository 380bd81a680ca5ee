"""The bottom layer: frames, their groups, the stage contract and the shared names.

Everything in live_restore may import this; it imports nothing of live_restore's.
"""

from ._enums import BackendName, FrameStatus, Policy, Precision
from ._frame import CAMERA_AXIS, FrameIndex, IndexKey, as_frame, format_index, index_key, read_only
from ._grouping import (
    AxisSet,
    BatchPlan,
    FrameGroup,
    FullRateOutput,
    Grouping,
    PlannedGroup,
    SingleFrame,
)
from ._photons import PhotonConversion
from ._restorer import (
    Executor,
    FunctionStage,
    Restorer,
    RestorerBase,
    as_stage,
    check_restorer,
    output_kind_of,
    trust_stage_name,
)
from ._series import AxisPairs, TemporalWindow

__all__ = [
    "CAMERA_AXIS",
    "AxisPairs",
    "AxisSet",
    "BackendName",
    "BatchPlan",
    "Executor",
    "FrameGroup",
    "FrameIndex",
    "FrameStatus",
    "FullRateOutput",
    "FunctionStage",
    "Grouping",
    "IndexKey",
    "PhotonConversion",
    "PlannedGroup",
    "Policy",
    "Precision",
    "Restorer",
    "RestorerBase",
    "SingleFrame",
    "TemporalWindow",
    "as_frame",
    "as_stage",
    "check_restorer",
    "format_index",
    "index_key",
    "output_kind_of",
    "read_only",
    "trust_stage_name",
]
