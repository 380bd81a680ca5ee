"""Light that follows trust: one step up the excitation ladder when too much is untrusted.

Opt-in and bounded, like focus hold. A trust stage (``MODEL+trust``) says, for each restored
frame, the share of the field whose expected error is too large (``untrusted_fraction``). When
that share is above ``raise_above``, the next set of frames is taken one preset higher on the
user's ladder (on the demo config, the ``LightLevel`` presets VeryLow < Low < Medium < High);
when it falls below ``lower_below``, one lower. Never outside ``lowest``..``highest``.

Where it acts: the preset's properties are added to the first event of a time point (every
axis but time and position at 0), inside the MDA engine's own hardware set-up, on the
acquisition thread, so nothing waits for a model and a z-stack or a SIM set (its 9 pattern
frames on the channel axis) is always taken at one light. A change asked for mid-set waits for
the next set; the wait is counted. A reading from a time point before the last change is not
acted on (it saw the old light), so one bad stretch moves the light one step, not several.

Every change is logged (``logging`` and :attr:`AdaptiveLight.changes`) and written into
summary.json, with the frame and share that asked for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from useq import MDAEvent

__all__ = ["AdaptiveLight", "LightChange", "at_set_start"]

logger = logging.getLogger("live_restore.light")

_FREE_AXES = ("t", "p")  # the light may change between these, never inside the others


def at_set_start(event: MDAEvent) -> bool:
    """Whether ``event`` starts a set: every axis but time and position at its first index."""
    return all(v == 0 for k, v in event.index.items() if k not in _FREE_AXES)


@dataclass(frozen=True)
class LightChange:
    """One step of the light, and the reading that asked for it."""

    seconds: float  # since the light was attached
    frame: int  # arrival number of the frame whose trust asked for it
    time_index: int | None  # the time point it took effect at
    from_level: str
    to_level: str
    untrusted: float  # that frame's untrusted share


class AdaptiveLight:
    """Steps the excitation preset with the trust stage's untrusted share (see module doc).

    Parameters
    ----------
    ladder : sequence of str
        Presets of ``group``, dimmest first.
    group : str
        The config group whose presets set the excitation.
    lowest, highest : str, optional
        The user's bounds on the ladder (default: its ends).
    raise_above, lower_below : float
        Untrusted shares (0-1) above which the light goes one step up, and below which one down.
    """

    def __init__(
        self,
        ladder: Sequence[str],
        group: str = "LightLevel",
        lowest: str | None = None,
        highest: str | None = None,
        raise_above: float = 0.05,
        lower_below: float = 0.01,
    ) -> None:
        self.ladder = list(ladder)
        if len(self.ladder) < 2 or len(set(self.ladder)) != len(self.ladder):
            raise ValueError(f"the light ladder needs 2 or more distinct presets, got {ladder}")
        for bound in (lowest, highest):
            if bound is not None and bound not in self.ladder:
                raise ValueError(f"bound {bound!r} is not on the ladder {self.ladder}")
        self.low = self.ladder.index(lowest) if lowest else 0
        self.high = self.ladder.index(highest) if highest else len(self.ladder) - 1
        if self.low > self.high:
            raise ValueError(f"lowest {lowest!r} is above highest {highest!r} on the ladder")
        if not 0.0 <= lower_below < raise_above <= 1.0:
            raise ValueError(
                f"need 0 <= lower_below < raise_above <= 1, got {lower_below} and {raise_above}"
            )
        self.group, self.raise_above, self.lower_below = group, raise_above, lower_below
        self.changes: list[LightChange] = []
        self.deferred = 0  # events a pending change waited through (mid z-stack or set)
        self._lock = threading.Lock()
        self._core: Any = None
        self._engine: Any = None
        self._previous: Any = None
        self._attached_s = time.monotonic()
        self._level: int | None = None  # the ladder step frames are being taken at
        self._target: int | None = None
        self._asked_by: tuple[int, float] = (-1, 0.0)  # frame and share behind the target
        self._applied_at_t = -1  # readings of earlier time points saw the old light
        self._settings_of: Any = None  # the core's getConfigData, from begin()

    # -- attaching to a core ------------------------------------------------------------------

    def attach(self, core: Any) -> None:
        """Act in ``core``'s MDAs, through the focus-hold engine (installed if not there).

        RuntimeError while an MDA runs, for a core without the group or a preset of the
        ladder, and for a user's own MDA engine (as focus hold refuses it).
        """
        from pymmcore_plus.mda import MDAEngine

        from live_restore.focus import HeldFocusEngine

        if core.mda.is_running():
            raise RuntimeError("adaptive light cannot be attached while an MDA runs")
        if not core.isGroupDefined(self.group):
            raise RuntimeError(f"adaptive light needs the config group {self.group!r}")
        missing = [p for p in self.ladder if not core.isConfigDefined(self.group, p)]
        if missing:
            raise RuntimeError(f"presets {missing} are not in the group {self.group!r}")
        engine = core.mda.engine
        if isinstance(engine, HeldFocusEngine):
            self._previous = None  # focus hold's engine: ride along, it puts its own back
        elif type(engine) is MDAEngine:
            self._previous = engine
            engine = HeldFocusEngine.following(engine, core, None)
            core.mda.set_engine(engine)
        else:
            kind = type(engine)
            raise RuntimeError(
                f"adaptive light works in pymmcore-plus's own MDAEngine, and the core runs "
                f"{kind.__module__}.{kind.__qualname__}"
            )
        engine.adjusters.append(self)
        self._core, self._engine = core, engine
        self._attached_s = time.monotonic()

    def detach(self) -> None:
        """Stop acting; the engine in place before :meth:`attach` is put back.

        During an MDA the rest of it runs unchanged, and the engine returns when it finishes
        (the runner cannot change engines mid-run).
        """
        core, engine, previous = self._core, self._engine, self._previous
        self._core = self._engine = self._previous = None
        if engine is not None and self in engine.adjusters:
            engine.adjusters.remove(self)
        if core is not None and previous is not None:
            from live_restore.focus import restore_engine_when_idle

            restore_engine_when_idle(core, engine, previous)

    # -- what the engine calls (acquisition thread) --------------------------------------------

    def begin(self, core: Any) -> None:
        """At the start of an MDA: the current preset is the start (clamped to the bounds)."""
        current = core.getCurrentConfig(self.group)
        self._settings_of = core.getConfigData
        with self._lock:
            self._applied_at_t = -1
            if current not in self.ladder:
                self._level = None  # set by hand to something off the ladder: move it first
                self._target = self.low
            else:
                self._level = self.ladder.index(current)
                self._target = min(max(self._level, self.low), self.high)

    def adjust(self, event: MDAEvent) -> MDAEvent:
        """``event``, with the target preset's properties if it starts a set and one waits."""
        with self._lock:
            if self._target is None or self._target == self._level:
                return event
            if not at_set_start(event):
                self.deferred += 1
                return event
            to_level = self._target
            change = LightChange(
                round(time.monotonic() - self._attached_s, 3),
                self._asked_by[0],
                event.index.get("t"),
                self.ladder[self._level] if self._level is not None else "(off the ladder)",
                self.ladder[to_level],
                round(self._asked_by[1], 4),
            )
            self.changes.append(change)
            self._level = to_level
            # time points from here on are taken at the new light; earlier readings are stale
            self._applied_at_t = int(event.index.get("t", 0))
        logger.info("light %s -> %s (frame %d untrusted %.1f %%)", change.from_level,
                    change.to_level, change.frame, 100 * change.untrusted)  # fmt: skip
        settings = [(d, p, v) for d, p, v in self._settings_of(self.group, change.to_level)]
        return event.model_copy(update={"properties": [*(event.properties or []), *settings]})

    # -- what the worker calls ---------------------------------------------------------------

    def offer(self, frame: int, index: dict[str, int], untrusted: float) -> None:
        """A restored frame's untrusted share (frame: its arrival number; index: its MDA index)."""
        with self._lock:
            if self._level is None or int(index.get("t", 0)) < self._applied_at_t:
                return  # not started, or a frame taken at the old light
            if self._target != self._level:
                return  # a change waits for its set boundary already
            if untrusted > self.raise_above and self._level < self.high:
                self._target, self._asked_by = self._level + 1, (frame, untrusted)
            elif untrusted < self.lower_below and self._level > self.low:
                self._target, self._asked_by = self._level - 1, (frame, untrusted)

    @property
    def level(self) -> str | None:
        """The preset frames are being taken at (None before an MDA)."""
        with self._lock:
            return None if self._level is None else self.ladder[self._level]

    def summary(self) -> dict[str, Any]:
        """For summary.json: the settings, every change, the waits and the final preset."""
        with self._lock:
            return {
                "group": self.group,
                "ladder": self.ladder,
                "bounds": [self.ladder[self.low], self.ladder[self.high]],
                "raise_above_untrusted": self.raise_above,
                "lower_below_untrusted": self.lower_below,
                "changes": [asdict(c) for c in self.changes],
                "events_a_change_waited_through": self.deferred,
                "final": None if self._level is None else self.ladder[self._level],
            }
