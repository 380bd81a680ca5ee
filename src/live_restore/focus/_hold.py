"""FocusHold: keep the sample in focus by moving the focus stage between time points.

The correction is applied where the MDA itself sets the hardware: while attached, the hold
installs a :class:`HeldFocusEngine` (pymmcore-plus's ``MDAEngine``, subclassed) as the core's
MDA engine, whose ``setup_event`` runs on the acquisition thread after the wait for the time
point, just before the stage moves. There every event's z is shifted by the current offset
(events without z get the start z plus the offset), and the offset changes only when a new time
point begins, so a z-stack or the channels of one time point always move together. The
estimates arrive from the restoration worker; each one is turned into a target offset at once
(cheap, under a lock) and waits there for the next time point: nothing on the acquisition thread
waits for a model.

An estimate acts only if it is signed and trusted: the monitor gives a drift only when the
estimator is confident, its sign is confident, and the focus score agrees (or, in a z-stack,
when the stack locates the focal plane). Everything else is recorded as a refusal with its
reason, and the stage stays where it is.

In live mode (no MDA) the stage is moved directly from the worker, at most once per
``live_interval_s``, and readings of frames exposed before the last move are ignored.
"""

from __future__ import annotations

import inspect
import logging
import math
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from pymmcore_plus.mda import MDAEngine
from pymmcore_plus.metadata import SummaryMetaV1
from useq import MDAEvent, MDASequence

from ._reading import DefocusReading

__all__ = ["FocusHold", "FocusMove", "HeldFocusEngine", "restore_engine_when_idle"]

logger = logging.getLogger("live_restore.focus")


@dataclass(frozen=True)
class FocusMove:
    """One correction: the z offset it set and the reading that asked for it."""

    seconds: float  # since the hold was attached
    frame: int  # arrival number of the frame whose reading asked for it (-1 live)
    time_index: int | None  # the MDA time point the reading came from
    from_offset_um: float
    to_offset_um: float
    error_um: float  # the focus error it acted on (stage z - focal plane)
    limited_by: str  # "" | "max step" | "range"


class FocusHold:
    """Opt-in focus correction from the focus monitor's readings.

    Parameters
    ----------
    gain : float
        Fraction of the estimated error corrected per step (0-1]. Each step is computed from the
        offset the frame was taken at, so 1 does not overshoot; below 1 damps noise but lags a
        steady drift (measured: README).
    max_step_um : float
        Largest single correction.
    range_um : (low, high), optional
        Absolute focus positions the stage must never leave. Default: the position at the start
        of each acquisition ± ``max_travel_um``.
    max_travel_um : float
        The default range's half width.
    deadband_um : float
        Errors smaller than this are left alone (the estimate's noise near focus).
    live_interval_s : float
        Live mode: least time between two moves.
    """

    def __init__(
        self,
        gain: float = 1.0,
        max_step_um: float = 0.5,
        range_um: tuple[float, float] | None = None,
        max_travel_um: float = 10.0,
        deadband_um: float = 0.15,
        live_interval_s: float = 1.0,
    ) -> None:
        if not 0 < gain <= 1:
            raise ValueError(f"gain must be in (0, 1], got {gain}")
        if max_step_um <= 0 or max_travel_um <= 0 or deadband_um < 0:
            raise ValueError("max_step_um and max_travel_um must be positive, deadband_um >= 0")
        if range_um is not None and not range_um[0] < range_um[1]:
            raise ValueError(f"range_um must be (low, high) with low < high, got {range_um}")
        self.gain = gain
        self.max_step_um = max_step_um
        self.range_um = range_um
        self.max_travel_um = max_travel_um
        self.deadband_um = deadband_um
        self.live_interval_s = live_interval_s
        self.moves: list[FocusMove] = []
        self.refusals: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._core: Any = None
        self._engine: HeldFocusEngine | None = None
        self._previous: Any = None  # the engine the held one replaced
        self._attached_s = time.monotonic()
        self._reset(base_z_um=0.0)
        self._last_live_move_s = -math.inf

    def begin(self, base_z_um: float) -> None:
        """A new acquisition starts with the focus at ``base_z_um``: offsets start from zero."""
        with self._lock:
            self._reset(base_z_um)

    def _reset(self, base_z_um: float) -> None:
        self._base_z_um = base_z_um
        self._offset_um = 0.0  # in force for the current time point
        self._target_um = 0.0  # what the next time point gets
        self._time_index: int | None = None
        self._offset_at: dict[int | None, float] = {}

    # -- wiring ---------------------------------------------------------------------------

    def attach(self, core: Any) -> None:
        """Hold focus in ``core``'s MDAs: install a :class:`HeldFocusEngine` in its runner.

        The engine in place (``core.mda.engine``) is kept and put back by :meth:`detach`. It
        must be pymmcore-plus's own :class:`~pymmcore_plus.mda.MDAEngine`, whose settings the
        held engine copies (all but hardware sequencing, see :class:`HeldFocusEngine`). A
        user's own engine (a subclass, or any other ``PMDAEngine``) is refused with a
        ``RuntimeError`` naming its class: replacing it with a held default engine would
        silently drop what it does, and wrapping it would need to know how to build it. Such
        an engine holds focus by calling :meth:`begin` in its ``setup_sequence`` and passing
        each event through :meth:`adjust` in its ``setup_event``; ``offer`` works as usual.

        Raises ``RuntimeError`` when already attached, when the core has no focus device or
        no plain ``MDAEngine``, or while an MDA runs (the runner cannot change engines then).
        """
        if self._core is not None:
            raise RuntimeError("this FocusHold is already attached")
        running = "focus hold cannot be attached while an MDA runs: attach it before the run"
        if core.mda.is_running():
            raise RuntimeError(running)
        previous = core.mda.engine
        if previous is None:
            raise RuntimeError("the core has no MDA engine to hold focus in")
        if isinstance(previous, HeldFocusEngine):
            raise RuntimeError("another FocusHold already holds focus on this core")
        if type(previous) is not MDAEngine:
            kind = type(previous)
            raise RuntimeError(
                "focus hold replaces only pymmcore-plus's own MDAEngine, and the core runs "
                f"{kind.__module__}.{kind.__qualname__}: call FocusHold.begin in its "
                "setup_sequence and FocusHold.adjust in its setup_event instead"
            )
        if not core.getFocusDevice():
            raise RuntimeError("focus hold needs a focus device (Core-Focus is empty)")
        engine = HeldFocusEngine.following(previous, core, self)
        try:
            core.mda.set_engine(engine)
        except RuntimeError as e:  # an MDA started in between: no engine change then
            raise RuntimeError(running) from e
        self._core, self._engine, self._previous = core, engine, previous
        self._attached_s = time.monotonic()
        if previous.use_hardware_sequencing:
            logger.info("focus hold: hardware sequencing off, so focus can move between frames")

    def detach(self) -> None:
        """Stop holding: put the core's previous MDA engine back.

        Detached while an MDA runs (the runner cannot change engines then), the rest of that
        run is no longer held and the previous engine returns as soon as the run finishes.
        """
        core, engine, previous = self._core, self._engine, self._previous
        self._core = self._engine = self._previous = None
        if core is None or engine is None:
            return
        engine.hold = None  # passes events through unchanged from now on
        restore_engine_when_idle(core, engine, previous)

    @property
    def offset_um(self) -> float:
        """The correction in force (µm added to every focus position)."""
        return self._offset_um

    def limits_um(self) -> tuple[float, float]:
        """The absolute focus range the hold keeps to."""
        if self.range_um is not None:
            return self.range_um
        return (self._base_z_um - self.max_travel_um, self._base_z_um + self.max_travel_um)

    def summary(self) -> dict[str, Any]:
        """Moves and refusals, for the run's summary and attributes."""
        return {
            "gain": self.gain,
            "max_step_um": self.max_step_um,
            "range_um": list(self.limits_um()),
            "deadband_um": self.deadband_um,
            "offset_um": round(self._offset_um, 4),
            "moves": [asdict(m) for m in self.moves],
            "refusals": dict(self.refusals),
        }

    # -- acquisition thread ---------------------------------------------------------------

    def adjust(self, event: Any) -> Any:
        """The event with its focus position shifted by the offset of its time point."""
        t = event.index.get("t")
        with self._lock:
            if t != self._time_index:
                self._time_index = t
                self._offset_um = self._target_um
                self._offset_at[t] = self._offset_um
            offset = self._offset_um
            low, high = self.limits_um()
        if event.z_pos is not None:
            z = event.z_pos + offset
        elif offset != 0.0:
            z = self._base_z_um + offset
        else:
            return event
        return event.model_copy(update={"z_pos": min(max(z, low), high)})

    # -- worker thread --------------------------------------------------------------------

    def offer(self, reading: DefocusReading) -> FocusMove | None:
        """Consider one reading; return the move it caused (applied at the next time point)."""
        if reading.drift_um is None:
            self._refuse(reading.note or f"no trusted signed estimate ({reading.evidence})")
            return None
        error = float(reading.drift_um)
        if abs(error) < self.deadband_um:
            return None
        if reading.live:
            return self._move_live(reading, error)
        t = reading.index.get("t")
        with self._lock:
            then = self._offset_at.get(t, self._offset_um)
            move = self._plan(reading, error, then, self._target_um, t)
            if move is not None:
                self._target_um = move.to_offset_um
        if move is not None:
            self._record(move)
        return move

    def _plan(
        self,
        reading: DefocusReading,
        error: float,
        offset_then: float,
        current: float,
        t: int | None,
    ) -> FocusMove | None:
        # the frame was taken at offset_then, so the ideal offset is offset_then - error;
        # computing from there (not from now) keeps a late reading from counting twice
        desired = offset_then - self.gain * error
        step = desired - current
        limited = ""
        if abs(step) > self.max_step_um:
            step, limited = math.copysign(self.max_step_um, step), "max step"
        low, high = self.limits_um()
        new = min(max(current + step, low - self._base_z_um), high - self._base_z_um)
        if new != current + step:
            limited = "range"
        if abs(new - current) < 1e-9:
            self._refuse("at the end of the allowed range" if limited == "range" else "no step")
            return None
        return FocusMove(
            round(time.monotonic() - self._attached_s, 4),
            reading.number,
            t,
            current,
            new,
            error,
            limited,
        )

    def _move_live(self, reading: DefocusReading, error: float) -> FocusMove | None:
        now = time.monotonic()
        core = self._core
        if core is None or core.mda.is_running():
            return None
        if now - self._last_live_move_s < self.live_interval_s:
            return None  # the frame may predate the last move: wait for fresh light
        z = float(core.getZPosition())
        with self._lock:
            if self._last_live_move_s == -math.inf:  # first live move: offsets from here
                self._base_z_um = z - self._offset_um
            move = self._plan(reading, error, z - self._base_z_um, z - self._base_z_um, None)
        if move is None:
            return None
        core.setZPosition(self._base_z_um + move.to_offset_um)
        with self._lock:
            self._offset_um = self._target_um = move.to_offset_um
        self._last_live_move_s = now
        self._record(move)
        return move

    def _refuse(self, reason: str) -> None:
        self.refusals[reason] += 1
        if self.refusals[reason] == 1:
            logger.info("focus hold does not correct: %s", reason)

    def _record(self, move: FocusMove) -> None:
        self.moves.append(move)
        logger.info(
            "focus hold: offset %+.3f -> %+.3f µm (error %+.3f µm, frame %d)%s",
            move.from_offset_um,
            move.to_offset_um,
            move.error_um,
            move.frame,
            f", limited by {move.limited_by}" if move.limited_by else "",
        )


def restore_engine_when_idle(core: Any, engine: Any, previous: Any) -> None:
    """Put ``previous`` back in place of ``engine``, now or when the running MDA finishes.

    The runner cannot change engines mid-run; the rest of that run keeps ``engine``.
    """

    def reinstall(*_: Any) -> None:
        finished.disconnect(reinstall)
        if core.mda.engine is engine and not core.mda.is_running():
            core.mda.set_engine(previous)

    # connected before the check, so a run that ends in between still brings it back
    finished = core.mda.events.sequenceFinished
    finished.connect(reinstall)
    if not core.mda.is_running():
        reinstall()


class HeldFocusEngine(MDAEngine):
    """pymmcore-plus's MDA engine with a :class:`FocusHold` shifting every event's focus.

    ``setup_sequence`` starts the hold's offsets from the focus position at the start of the
    acquisition, and ``setup_event`` passes each event through :meth:`FocusHold.adjust` before
    the engine moves the hardware. :meth:`FocusHold.attach` installs it with
    ``core.mda.set_engine`` and :meth:`FocusHold.detach` puts the previous engine back.

    Hardware sequencing is always off: a sequenced burst (a time-lapse without interval) is
    set up once for all its frames, leaving no moment to move the focus between time points,
    so while focus is held every frame is set up on its own.
    """

    def __init__(self, mmc: Any, hold: FocusHold | None = None, **settings: Any) -> None:
        settings["use_hardware_sequencing"] = False
        super().__init__(mmc, **settings)
        self.hold = hold  # None: a plain MDAEngine (after FocusHold.detach)
        # others that change events between time points the same way (adaptive light): each
        # has begin(core) and adjust(event) -> event, and runs after the hold
        self.adjusters: list[Any] = []

    @classmethod
    def following(cls, engine: MDAEngine, core: Any, hold: FocusHold | None) -> HeldFocusEngine:
        """A held engine for ``core`` with ``engine``'s settings (hardware sequencing off)."""
        names = inspect.signature(MDAEngine.__init__).parameters.keys() - _NOT_COPIED
        settings = {name: getattr(engine, name) for name in names if hasattr(engine, name)}
        held = cls(core, hold, **settings)
        held.include_frame_position_metadata = engine.include_frame_position_metadata
        return held

    def setup_sequence(self, sequence: MDASequence) -> SummaryMetaV1 | None:
        """Start the hold's offsets from the current focus position, then set up as usual."""
        if self.hold is not None:
            self.hold.begin(float(self.mmcore.getZPosition()))
        for adjuster in self.adjusters:
            adjuster.begin(self.mmcore)
        return super().setup_sequence(sequence)

    def setup_event(self, event: MDAEvent) -> None:
        """Shift the event's focus by the hold's offset for its time point, then set it up."""
        event = event if self.hold is None else self.hold.adjust(event)
        for adjuster in self.adjusters:
            event = adjuster.adjust(event)
        super().setup_event(event)


# the held engine's own choices, and what is not a setting
_NOT_COPIED = {"self", "mmc", "use_hardware_sequencing"}
