"""Structured illumination: 3 angles x 3 phases of a sinusoidal excitation pattern.

Pattern k (1..9) is angle (k-1)//3 and phase (k-1)%3: I(x) = 1 + m cos(2π p·x + φ), with the
angles 60° apart and the phases 2π/3 apart, so the mean of the 9 patterns (and of the 3 phases
of any one angle) is uniform illumination: the mean of a SIM set is the widefield image.
Index 0 is widefield.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from ._optics import OpticsParams

__all__ = ["SIM_PATTERN_LABELS", "SimPatternParams", "pattern_index_to_angle_phase"]

SIM_PATTERN_LABELS: tuple[str, ...] = (
    "Widefield",
    *(f"A{a}P{p}" for a in range(3) for p in range(3)),
)


class SimPatternParams(BaseModel):
    """Parameters of the SIM illumination pattern."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period_nm: float = Field(
        200.0, gt=50.0, le=5000.0, description="Pattern period at the sample (nm)."
    )
    modulation: float = Field(0.8, ge=0.0, le=1.0, description="Modulation depth m.")
    angle0_deg: float = Field(
        15.0, ge=-180.0, le=180.0, description="Angle of the first orientation."
    )

    def check_against(self, optics: OpticsParams) -> None:
        """Refuse a pattern the objective cannot transmit (its frequency beyond 2NA/λ)."""
        frequency = 1000.0 / self.period_nm
        if frequency >= optics.cutoff_per_um:
            raise ValueError(
                f"SIM period {self.period_nm} nm is finer than the optics transmit "
                f"(cut-off period {1000.0 / optics.cutoff_per_um:.1f} nm for NA {optics.na} at "
                f"{optics.emission_wavelength_nm:.0f} nm): no modulation would reach the camera"
            )


def pattern_index_to_angle_phase(index: int, params: SimPatternParams) -> tuple[float, float]:
    """Angle and phase (radians) of SIM pattern ``index`` (1..9)."""
    if not 1 <= index <= 9:
        raise ValueError(f"SIM pattern index must be 1..9 (0 is widefield), got {index}")
    angle_i, phase_i = divmod(index - 1, 3)
    angle = math.radians(params.angle0_deg) + angle_i * math.pi / 3
    return angle, phase_i * 2 * math.pi / 3
