"""``python -m live_restore._adapt_child adapt ...``: the CLI at idle priority, on one thread.

What a hook that adapts a stage (``HookConfig.adapt``) starts. The priority is lowered before
anything is imported, so that every thread the process ever starts (numpy's, torch's) inherits
it: on Linux a scheduling policy is per thread. The parent sets ``OMP_NUM_THREADS`` and its
kin to 1 in the environment, read when those libraries load. The camera and restoration
always come first.
"""

import os

if hasattr(os, "SCHED_IDLE"):
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
else:
    os.nice(19)

from live_restore._cli import app  # after the priority, on purpose

app()
