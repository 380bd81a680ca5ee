"""When is a frame out of focus: thresholds, the model/score cross-check and hysteresis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FlagPolicy", "Flagger", "FocusState"]

FocusState = Literal["in-focus", "out-of-focus"]


@dataclass(frozen=True)
class FlagPolicy:
    """The thresholds of the focus flag.

    Parameters
    ----------
    threshold_um : float
        A frame (or, in a z-stack, the sample's focal plane) further than this from focus counts
        as out of focus. 0.5 µm is about the depth of field of an NA 1.4-1.5 oil objective.
    release_fraction : float
        The flag clears only below ``release_fraction * threshold_um``: a defocus hovering at the
        threshold does not make the flag flicker.
    confirm : int
        Consecutive readings (frames; stacks in a z-stack) that must agree before the state
        changes, so one noisy frame does not flip it.
    min_confidence : float
        Below this confidence the estimator's magnitude is not used; the focus score decides.
    min_sign_confidence : float
        Below this the estimator's sign is not trusted (the flag needs no sign; focus hold does).
    score_ratio_out : float
        Model-free fallback and cross-check: a frame whose focus score has fallen below this
        fraction of the run's in-focus reference is out of focus. 0.6 of the normalised variance
        matches ~0.4-0.5 µm at NA 1.49 on the simulated structures (measured, README).
    score_ratio_in : float
        A score above this fraction of the reference contradicts an estimate beyond the threshold
        (and an estimate below half the threshold contradicts a score under ``score_ratio_out``):
        then the reading is "uncertain", the state holds and focus hold does not move.
    reference_frames : int
        The first frames of a run (per position and channel) whose median score is the in-focus
        reference: the run is assumed to start in focus, as a user sets it up.
    """

    threshold_um: float = 0.5
    release_fraction: float = 0.7
    confirm: int = 3
    min_confidence: float = 0.3
    min_sign_confidence: float = 0.5
    score_ratio_out: float = 0.6
    score_ratio_in: float = 0.85
    reference_frames: int = 3

    def __post_init__(self) -> None:
        if self.threshold_um <= 0:
            raise ValueError(f"threshold_um must be positive, got {self.threshold_um}")
        if not 0 < self.release_fraction <= 1:
            raise ValueError(f"release_fraction must be in (0, 1], got {self.release_fraction}")
        if self.confirm < 1 or self.reference_frames < 1:
            raise ValueError("confirm and reference_frames must be >= 1")
        if not 0 < self.score_ratio_out < self.score_ratio_in <= 1:
            raise ValueError(
                "need 0 < score_ratio_out < score_ratio_in <= 1, got "
                f"{self.score_ratio_out} and {self.score_ratio_in}"
            )

    def evidence(self, magnitude_um: float | None, score_ratio: float | None) -> bool | None:
        """Whether this reading says out of focus (True), in focus (False), or cannot say (None).

        ``magnitude_um`` is the estimator's |defocus| when it is confident enough, else None;
        ``score_ratio`` the focus score over the reference, None while there is no reference.
        """
        if magnitude_um is not None and score_ratio is not None:
            if magnitude_um > self.threshold_um and score_ratio > self.score_ratio_in:
                return None  # the model sees blur the score does not
            if magnitude_um < 0.5 * self.threshold_um and score_ratio < self.score_ratio_out:
                return None  # the score fell while the model sees focus
        if magnitude_um is not None:
            return self.beyond(magnitude_um)
        if score_ratio is not None:
            return score_ratio < self.score_ratio_out
        return None

    def beyond(self, magnitude_um: float) -> bool | None:
        """Out of focus (True), in focus (False) or in the hysteresis band (None)."""
        if magnitude_um > self.threshold_um:
            return True
        if magnitude_um < self.release_fraction * self.threshold_um:
            return False
        return None  # between release and threshold: keep the state


class Flagger:
    """The in/out-of-focus state with hysteresis: ``confirm`` agreeing readings flip it."""

    def __init__(self, confirm: int) -> None:
        self.confirm = confirm
        self.state: FocusState = "in-focus"
        self._against = 0

    def update(self, out_of_focus: bool | None) -> bool:
        """Feed one reading's evidence; return True when the state changed."""
        if out_of_focus is None:
            return False
        wanted: FocusState = "out-of-focus" if out_of_focus else "in-focus"
        if wanted == self.state:
            self._against = 0
            return False
        self._against += 1
        if self._against >= self.confirm:
            self.state, self._against = wanted, 0
            return True
        return False

    @property
    def flagged(self) -> bool:
        """True while out of focus."""
        return self.state == "out-of-focus"
