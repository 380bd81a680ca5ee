"""Focus: flag defocus as it happens and, opt-in, hold focus (issue 7).

- :class:`FocusMonitor` scores each frame (estimator + model-free focus score; every Nth of a
  series while the hook catches up, if asked), flags drift with hysteresis, and in z-stacks
  locates the sample's focal plane instead of flagging planes.
- :class:`FocusHold` moves the focus stage between time points by the drift the monitor trusts.
- :class:`FlagPolicy` holds the thresholds.

``RestoreHook(core, models, focus=FocusMonitor(load_model("focus-est")), hold=FocusHold())``
puts them in the acquisition.
"""

from ._hold import FocusHold, FocusMove, HeldFocusEngine, restore_engine_when_idle
from ._monitor import SCORES, FocusMonitor
from ._policy import Flagger, FlagPolicy
from ._reading import DefocusReading

__all__ = [
    "SCORES",
    "DefocusReading",
    "FlagPolicy",
    "Flagger",
    "FocusHold",
    "FocusMonitor",
    "FocusMove",
    "HeldFocusEngine",
    "restore_engine_when_idle",
]
