"""Before an acquisition starts: whether this core can run this sequence at all.

Each problem is one sentence naming what is missing and what the config has instead, so a
front end can refuse the run before anything is written (pymmcore-plus would otherwise fail
on its own thread, after the output stores exist).
"""

from __future__ import annotations

from typing import Any

import useq

__all__ = ["core_problem", "sequence_problems"]


def _listed(names: Any) -> str:
    return ", ".join(sorted(str(n) for n in names)) or "none"


def core_problem(core: Any) -> str | None:
    """Why a hook cannot follow ``core`` at all, in one sentence; None when it can.

    Any pymmcore-plus core will do (``CMMCorePlus``, ``UniMMCore``, ``LiveRestoreCore``), with
    any config. Refused: an object without pymmcore-plus's MDA runner (pymmcore's plain
    ``CMMCore``, e.g. pycro-manager's), and a config of Python devices loaded by a core that
    reads them as comments (a plain ``CMMCorePlus`` loading ``sim_demo.cfg``).
    """
    if not hasattr(core, "mda") or not hasattr(core, "events"):
        return (
            f"a {type(core).__name__} is not a pymmcore-plus core (CMMCorePlus or UniMMCore): "
            "the hook follows its MDA signals; with pycro-manager use "
            "live_restore.pycromanager.ImageProcessor"
        )
    if hasattr(core, "isPyDevice") or core.getCameraDevice():
        return None
    config = str(core.systemConfigurationFile() or "")
    if config and _has_python_devices(config):
        return (
            f"{config} defines Python devices (#py lines), which a {type(core).__name__} reads "
            "as comments, so it has no camera: load it with pymmcore-plus's UniMMCore "
            "(pymmcore_plus.experimental.unicore) or live_restore.demo_core()"
        )
    return None


def _has_python_devices(config: str) -> bool:
    try:
        with open(config, encoding="utf-8", errors="replace") as lines:
            return any(line.startswith("#py ") for line in lines)
    except OSError:
        return False


def sequence_problems(core: Any, sequence: useq.MDASequence) -> list[str]:
    """What keeps ``core`` from running ``sequence``; empty when nothing does."""
    problems: list[str] = []
    if not core.getCameraDevice():
        problems.append("the config has no camera (set Core-Camera in it)")
    groups = set(core.getAvailableConfigGroups())
    for channel in sequence.channels:
        if channel.group not in groups:
            problems.append(
                f"the sequence's channel group {channel.group!r} is not in the config "
                f"(groups: {_listed(groups)})"
            )
        elif not core.isConfigDefined(channel.group, channel.config):
            presets = core.getAvailableConfigs(channel.group)
            problems.append(
                f"channel preset {channel.config!r} is not in group {channel.group!r} "
                f"(presets: {_listed(presets)})"
            )
    if sequence.z_plan is not None and not core.getFocusDevice():
        problems.append("the sequence has a z plan and the config has no focus device")
    needs_xy = any(p.x is not None or p.y is not None for p in sequence.stage_positions)
    if needs_xy and not core.getXYStageDevice():
        problems.append("the sequence has XY positions and the config has no XY stage")
    return problems
