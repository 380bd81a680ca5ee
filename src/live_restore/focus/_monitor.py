"""FocusMonitor: per frame, defocus from the estimator, a model-free focus score, and the flag.

Two situations, told apart by the MDA sequence:

- **Time-lapse (one plane per time point).** Every frame gets the estimator's |defocus| and
  sign (``focus-est``) and a focus score, compared with the run's own in-focus reference (the
  median score of its first frames: a run starts in focus, as a user sets it up). The flag
  follows :class:`FlagPolicy` with hysteresis.
- **Z-stacks.** Planes away from focus are intended, so single planes are never flagged. When a
  stack is complete, the sample's focal plane is located in it: the peak of the focus score
  over the planes (parabola through the best three) and, as a cross-check, the plane that best
  explains the estimator's per-plane magnitudes. The flag and the drift concern that plane's
  movement since the first stack, so a stack the user centred on focus stays unflagged however
  far its ends are from focus.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from live_restore.metrics import brenner, normalised_variance, spectral_focus

from ._policy import Flagger, FlagPolicy
from ._reading import DefocusReading

__all__ = ["SCORES", "FocusMonitor"]

logger = logging.getLogger("live_restore.focus")

SCORES: dict[str, Callable[[np.ndarray], float]] = {
    "normalised-variance": normalised_variance,
    "brenner": brenner,
    "spectral": spectral_focus,
}


@dataclass
class _Plane:
    z_um: float
    score: float
    magnitude_um: float | None  # None: the estimator was not confident


@dataclass
class _Series:
    """One position/channel of a run: its reference, flag and (z-stacks) the stack in progress."""

    flagger: Flagger
    reference_scores: list[float] = field(default_factory=list)
    reference: float | None = None
    time_index: int | None = None
    planes: dict[int, _Plane] = field(default_factory=dict)
    reference_offset_um: float | None = None  # focal plane - stack centre, in the first stack


class FocusMonitor:
    """Watch each frame's focus (or every Nth while catching up); flag drift; steer focus hold.

    Parameters
    ----------
    estimator : callable, optional
        ``load_model("focus-est")`` or any frame -> object with ``defocus_um``,
        ``uncertainty_um``, ``confidence`` (and optionally ``magnitude_um``,
        ``sign_confidence``). None: the focus score alone decides (no sign, so no focus hold
        outside z-stacks).
    policy : FlagPolicy
        Thresholds and hysteresis.
    score : str
        The model-free focus score: normalised-variance (default), brenner or spectral.
    every_nth_when_behind : int
        When the hook catches up on a batch of frames, it estimates every Nth frame and the
        newest (1, the default: every frame gets a reading).
    """

    def __init__(
        self,
        estimator: Callable[[np.ndarray], Any] | None = None,
        policy: FlagPolicy | None = None,
        score: str = "normalised-variance",
        every_nth_when_behind: int = 1,
    ) -> None:
        if score not in SCORES:
            raise ValueError(f"unknown focus score {score!r}; choose from {', '.join(SCORES)}")
        if every_nth_when_behind < 1:
            raise ValueError(f"every_nth_when_behind must be >= 1, got {every_nth_when_behind}")
        self.estimator = estimator
        # the hook, catching up on a batch of frames, estimates every Nth and the newest only
        self.every_nth_when_behind = int(every_nth_when_behind)
        self.policy = policy or FlagPolicy()
        self.score_name = score
        self._score = SCORES[score]
        self._planes_per_stack = 1
        self._series: dict[tuple[tuple[str, int], ...], _Series] = {}
        self._offered: dict[tuple[tuple[str, int], ...], int] = {}  # frames per series so far
        self.frames_skipped_behind = 0
        self.flag_changes: list[dict[str, Any]] = []
        self.frames_seen = 0
        self.frames_flagged = 0
        self.frames_uncertain = 0

    # -- run lifecycle --------------------------------------------------------------------

    def begin(self, sequence: Any = None) -> None:
        """Start a run: forget references and flags; learn whether it takes z-stacks."""
        self._series.clear()
        self._offered.clear()
        self.flag_changes = []
        self.frames_seen = self.frames_flagged = self.frames_uncertain = 0
        self.frames_skipped_behind = 0
        z_plan = getattr(sequence, "z_plan", None)
        self._planes_per_stack = len(list(z_plan)) if z_plan is not None else 1

    @property
    def z_stacks(self) -> bool:
        """True when the current run takes z-stacks (more than one plane per time point)."""
        return self._planes_per_stack > 1

    def summary(self) -> dict[str, Any]:
        """What the run's attributes and summary.json keep about focus."""
        return {
            "score": self.score_name,
            "estimator": getattr(self.estimator, "name", None) if self.estimator else None,
            "policy": {k: getattr(self.policy, k) for k in self.policy.__dataclass_fields__},
            "z_stacks": self.z_stacks,
            "frames_seen": self.frames_seen,
            "every_nth_when_behind": self.every_nth_when_behind,
            "frames_skipped_behind": self.frames_skipped_behind,
            "frames_flagged": self.frames_flagged,
            "frames_uncertain": self.frames_uncertain,
            "flag_changes": list(self.flag_changes),
        }

    # -- per frame ------------------------------------------------------------------------

    @staticmethod
    def series_of(index: dict[str, int]) -> tuple[tuple[str, int], ...]:
        """The series a frame belongs to: its index without time and z."""
        return tuple(sorted((k, v) for k, v in index.items() if k not in ("t", "z")))

    def wanted(self, index: dict[str, int] | None, newest_in_batch: bool) -> bool:
        """Whether to estimate this frame of a catch-up batch (counted once per frame).

        Every ``every_nth_when_behind``-th frame of its series (position, channel...: the index
        without t and z) and each series' newest are; so is every plane of a z-stack (a stack
        is judged from all its planes).
        """
        key = self.series_of(index or {})
        count = self._offered.get(key, 0)
        self._offered[key] = count + 1
        stride = 1 if self.z_stacks else self.every_nth_when_behind
        if newest_in_batch or count % stride == 0:
            return True
        self.frames_skipped_behind += 1
        return False

    def observe(
        self,
        image: np.ndarray,
        number: int = -1,
        index: dict[str, int] | None = None,
        z_um: float | None = None,
        live: bool = False,
    ) -> DefocusReading:
        """Score one frame, update the flag, and return the reading (raises on bad input)."""
        index = dict(index or {})
        frame = np.asarray(image)
        if frame.ndim != 2:
            raise ValueError(f"focus monitor needs a 2-D frame, got shape {frame.shape}")
        if not np.isfinite(frame).all():
            raise ValueError("frame holds NaN or infinite values; focus not estimated")
        score = float(self._score(frame))
        estimate = self.estimator(frame) if self.estimator is not None else None
        reading = self._estimator_reading(estimate, number, index, score, z_um, live)
        key = self.series_of(index)
        series = self._series.get(key)
        if series is None:
            confirm = self.policy.confirm
            if self.z_stacks:  # a stack already pools many frames: fewer in a row suffice
                confirm = max(1, math.ceil(confirm / 2))
            series = self._series[key] = _Series(Flagger(confirm))
        if self.z_stacks and "z" in index and z_um is not None:
            reading = self._observe_plane(series, reading, index, z_um)
        else:
            reading = self._observe_single(series, reading)
        self.frames_seen += 1
        self.frames_flagged += reading.flagged
        self.frames_uncertain += reading.evidence == "uncertain"
        if reading.changed:
            change = {
                "frame": number,
                "index": index,
                "state": reading.state,
                "evidence": reading.evidence,
                "defocus_um": _rounded(reading.defocus_um),
                "drift_um": _rounded(reading.drift_um),
                "score_ratio": _rounded(reading.score_ratio),
            }
            self.flag_changes.append(change)
            log = logger.warning if reading.flagged else logger.info
            log(
                "focus %s at frame %s %s (%s; defocus %s µm, score %s of reference)",
                reading.state,
                number,
                index,
                reading.evidence,
                change["defocus_um"],
                change["score_ratio"],
            )
        return reading

    def _estimator_reading(
        self,
        estimate: Any,
        number: int,
        index: dict[str, int],
        score: float,
        z_um: float | None,
        live: bool,
    ) -> DefocusReading:
        if estimate is None:
            return DefocusReading(
                number, index, math.nan, math.nan, 0.0, live, score=score, z_um=z_um
            )
        defocus = float(estimate.defocus_um)
        magnitude = float(getattr(estimate, "magnitude_um", abs(defocus)))
        # an estimator without a separate sign reports its sign as certain
        sign_confidence = float(getattr(estimate, "sign_confidence", 1.0))
        return DefocusReading(
            number,
            index,
            defocus,
            float(estimate.uncertainty_um),
            float(estimate.confidence),
            live,
            magnitude_um=magnitude,
            sign_confidence=sign_confidence,
            score=score,
            z_um=z_um,
        )

    def _confident_magnitude(self, reading: DefocusReading) -> float | None:
        if math.isnan(reading.magnitude_um) or reading.confidence < self.policy.min_confidence:
            return None
        return reading.magnitude_um

    def _observe_single(self, series: _Series, reading: DefocusReading) -> DefocusReading:
        policy = self.policy
        ratio = None
        if series.reference is None:
            series.reference_scores.append(reading.score)
            if len(series.reference_scores) >= policy.reference_frames:
                series.reference = float(np.median(series.reference_scores)) or None
        elif series.reference > 0:
            ratio = reading.score / series.reference
        magnitude = self._confident_magnitude(reading)
        evidence = policy.evidence(magnitude, ratio)
        if evidence is None and magnitude is not None and ratio is not None:
            source, note = "uncertain", "estimator and focus score disagree"
        elif series.reference is None or (ratio is None and magnitude is None):
            source, note = "reference", "learning the in-focus reference score"
        else:
            source, note = ("model", "") if magnitude is not None else ("score", "")
        drift = None
        if (
            magnitude is not None
            and source == "model"
            and reading.sign_confidence >= policy.min_sign_confidence
        ):
            drift = reading.defocus_um
        elif source == "model":
            note = "sign of defocus uncertain"
        return _judged(
            series.flagger,
            reading,
            evidence,
            score_ratio=ratio if ratio is not None else math.nan,
            evidence=source,
            drift_um=drift,
            note=note,
        )

    def _observe_plane(
        self, series: _Series, reading: DefocusReading, index: dict[str, int], z_um: float
    ) -> DefocusReading:
        t = index.get("t", 0)
        if series.time_index is not None and t != series.time_index:
            series.planes.clear()  # an incomplete stack (cancelled or skipped frames) is dropped
        series.time_index = t
        series.planes[index["z"]] = _Plane(z_um, reading.score, self._confident_magnitude(reading))
        base = _judged(
            series.flagger,
            reading,
            None,  # a plane alone is no evidence
            evidence="plane",
            note="plane of a z-stack: its own defocus is intended",
        )
        if len(series.planes) < self._planes_per_stack:
            return base
        planes = [series.planes[k] for k in sorted(series.planes)]
        series.planes.clear()
        return self._judge_stack(series, planes, base)

    def _judge_stack(
        self, series: _Series, planes: list[_Plane], base: DefocusReading
    ) -> DefocusReading:
        threshold = self.policy.threshold_um
        by_score = _score_peak_um(planes)
        by_model = _magnitude_fit_um(planes)
        centre = float(np.mean([p.z_um for p in planes]))
        if by_score is not None and by_model is not None and abs(by_score - by_model) > threshold:
            return _judged(
                series.flagger,
                base,
                None,
                evidence="uncertain",
                focal_plane_um=by_score,
                note=f"focus score puts the focal plane at {by_score:+.2f} µm, the estimator "
                f"at {by_model:+.2f} µm",
            )
        focal = by_score if by_score is not None else by_model
        if focal is None:
            return _judged(
                series.flagger,
                base,
                None,
                evidence="uncertain",
                note="focal plane not found in the stack (beyond its ends?)",
            )
        offset = focal - centre
        if series.reference_offset_um is None:
            series.reference_offset_um = offset
        drift = offset - series.reference_offset_um
        # the stage sits at the focal plane + defocus: to follow the sample, move by the drift
        return _judged(
            series.flagger,
            base,
            self.policy.beyond(abs(drift)),
            evidence="stack",
            focal_plane_um=focal,
            drift_um=-drift,
            note=f"focal plane {offset:+.2f} µm from the stack centre "
            f"({drift:+.2f} µm since the first stack)",
        )


def _judged(
    flagger: Flagger, reading: DefocusReading, out_of_focus: bool | None, **changes: Any
) -> DefocusReading:
    """``reading`` with ``changes`` and the flag's state once ``out_of_focus`` is fed to it.

    ``out_of_focus`` None is no evidence; ``changed`` says whether this reading flipped the flag.
    """
    changed = flagger.update(out_of_focus)
    return replace(reading, state=flagger.state, changed=changed, **changes)


def _score_peak_um(planes: list[_Plane]) -> float | None:
    """Z of the focus-score maximum, refined by a parabola; None at the stack's ends."""
    scores = [p.score for p in planes]
    best = int(np.argmax(scores))
    if best == 0 or best == len(planes) - 1:
        return None
    (z0, s0), (z1, s1), (z2, s2) = ((planes[i].z_um, scores[i]) for i in (best - 1, best, best + 1))
    # vertex of the parabola through three (possibly unevenly spaced) points
    denominator = (z0 - z1) * (z0 - z2) * (z1 - z2)
    a = (z2 * (s1 - s0) + z1 * (s0 - s2) + z0 * (s2 - s1)) / denominator
    b = (z2**2 * (s0 - s1) + z1**2 * (s2 - s0) + z0**2 * (s1 - s2)) / denominator
    if a >= 0:
        return z1
    return float(min(max(-b / (2 * a), z0), z2))


def _magnitude_fit_um(planes: list[_Plane]) -> float | None:
    """The focal plane f that best explains the planes' |defocus| estimates: |z - f| = m."""
    known = [(p.z_um, p.magnitude_um) for p in planes if p.magnitude_um is not None]
    if len(known) < 3:
        return None
    z = np.array([k[0] for k in known])
    m = np.array([k[1] for k in known])
    candidates = np.arange(z.min() - 2.0, z.max() + 2.0, 0.01)
    cost = ((np.abs(z[None, :] - candidates[:, None]) - m[None, :]) ** 2).sum(axis=1)
    return float(candidates[int(np.argmin(cost))])


def _rounded(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(float(value), 3)
