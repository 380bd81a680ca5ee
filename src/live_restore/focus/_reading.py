"""One frame's focus verdict: what the focus monitor concluded (``hook.events.defocus``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DefocusReading"]


@dataclass(frozen=True)
class DefocusReading:
    """What the focus monitor concluded about one frame (``events.defocus``).

    The first fields are the estimator's; the rest are the monitor's (focus score, the flag and,
    for focus hold, the drift it believes in). Defaults keep a bare estimator reading valid.
    """

    number: int  # arrival number of the frame (-1 in live mode)
    index: dict[str, int]
    defocus_um: float  # signed, as the simulator's truth: focus stage z - sample focal plane
    uncertainty_um: float  # 1 σ of the magnitude
    confidence: float  # 0..1, of the magnitude
    live: bool = False
    magnitude_um: float = math.nan  # |defocus|; nan without an estimator
    sign_confidence: float = 0.0  # 0: the sign is a guess, 1: certain
    score: float = math.nan  # model-free focus score of the frame
    score_ratio: float = math.nan  # score / the run's in-focus reference (nan until there is one)
    state: str = ""  # in-focus | out-of-focus (after hysteresis)
    changed: bool = False  # this reading flipped the state
    evidence: str = ""  # what decided: model | score | stack | uncertain | reference
    z_um: float | None = None  # focus stage position of the frame
    focal_plane_um: float | None = None  # z-stack: where the sample's focal plane is (stage z)
    drift_um: float | None = None  # signed focus error to correct (None: not known well enough)
    note: str = ""

    @property
    def flagged(self) -> bool:
        """True while the monitor holds the frame out of focus."""
        return self.state == "out-of-focus"
