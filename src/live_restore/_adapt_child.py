"""``python -m live_restore._adapt_child adapt ...``: the CLI at idle priority, on one thread.

What a hook that adapts a stage (``HookConfig.adapt``) starts. The priority is lowered first
thing, before torch is imported, so that every thread the process ever starts inherits it
(on Linux a scheduling policy is per thread): the camera and restoration always come first.
"""

from __future__ import annotations

import os

from .acquisition import lower_priority

lower_priority("idle")
os.environ["OMP_NUM_THREADS"] = "1"

from ._cli import app  # noqa: E402  (after the priority: torch starts its threads on import)

app()
