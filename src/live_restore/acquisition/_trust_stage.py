"""A model's trust map as a live stage: ``NAME+trust`` restores with NAME and saves sigma.

The stage runs the model's calibrated trust (``ModelSession.with_trust``: its trust head, or 8
passes for a model calibrated that way) and returns ``sigma``, the per-pixel expected absolute
error of the restoration, in the restored image's units (counts), calibrated on held-out
simulated data (``trust.yaml``). Being a stage, it has what every stage has: its own OME-Zarr
store beside the restored one (provenance: the model, its weights hash and its calibration),
rows in frames.csv, a napari layer, failures named by frame.

frames.csv's ``flags`` of each trust row give the untrusted fraction of the field: the share of
output pixels whose sigma exceeds ``UNTRUSTED_FRACTION_OF_SPAN`` of the frame's brightness span
(the raw frame's 0.1-99.9 percentile range, the span the model normalises by). A pixel whose
expected error is a tenth of the frame's range is one a user should not measure on.

Cost: a restoration plus the method's own (benchmarks/RESULTS.md), so it is opt-in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from live_restore.frames import Restorer, RestorerBase, trust_stage_name

if TYPE_CHECKING:  # torch stays out of a light `import live_restore.acquisition`
    from live_restore.inference import ModelSession

__all__ = [
    "TRUST_SUFFIX",
    "UNTRUSTED_FRACTION_OF_SPAN",
    "TrustStage",
    "stages_sharing_restorations",
    "untrusted_fraction",
]

TRUST_SUFFIX = "+trust"  # in a model list: "dfcan-sr2x-tiny+trust"
UNTRUSTED_FRACTION_OF_SPAN = 0.1
# what each trust method's sigma is the error of
_RESTORATION = {
    "head": "the restoration (the model's own output, as in its store)",
    "tta": "the mean of the 8 restorations under the square's symmetries",
}


def untrusted_fraction(
    sigma: np.ndarray, raw: np.ndarray, threshold: float = UNTRUSTED_FRACTION_OF_SPAN
) -> float:
    """Share of pixels with sigma above ``threshold`` x the raw frame's 0.1-99.9 % span."""
    low, high = np.percentile(raw, [0.1, 99.9])
    span = max(float(high - low), 1e-6)
    return float(np.mean(sigma > threshold * span))


class TrustStage(RestorerBase):
    """Frame (raw counts) -> sigma of ``session``'s restoration (float32, its output's shape)."""

    output_kind = "sigma"

    def __init__(self, session: ModelSession, shared: bool = False) -> None:
        """Trust of ``session``'s restorations.

        ``shared``: ``session`` is also a restoration stage's, which closes it; it then
        remembers its outputs so that this stage reuses them.
        """
        from live_restore.inference import ModelSession

        if type(session) is not ModelSession:
            raise ValueError(f"{session.name} has no per-pixel trust (single-frame models only)")
        self.calibration = session.trust_calibration()  # ValueError naming the fix
        if shared:
            session.keep_recent_outputs()
        self.session, self.borrowed = session, shared
        self.name = trust_stage_name(session.name)
        self.scale = session.scale

    def provenance(self) -> dict[str, str]:
        return {
            **self.session.provenance(),
            "model": self.name,
            "output": f"sigma: expected absolute error of {_RESTORATION[self.calibration.method]}"
            ", counts",
            "trust_method": self.calibration.details.get("how", self.calibration.method),
            "trust_sigma_scale": f"{self.calibration.sigma_scale:.6g}",
            "trust_coverage_2sigma_held_out": f"{self.calibration.coverage_2sigma:.4f}",
            "untrusted_when": f"sigma > {UNTRUSTED_FRACTION_OF_SPAN:g} x the raw 0.1-99.9 % span",
        }

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        sigma: np.ndarray = self.session.with_trust(frame, self.calibration).sigma
        return sigma

    def close(self) -> None:
        if not self.borrowed:
            self.session.close()


def stages_sharing_restorations(
    names: list[str], make: Callable[[str], Restorer]
) -> list[Restorer]:
    """Each name's stage, made by ``make``; a trust stage beside its model shares its session.

    With ``NAME`` and ``NAME+trust`` in one hook (stages called in turn on one thread), the trust
    stage is built on ``NAME``'s own session instead of loading the model a second time, and that
    session remembers its last outputs: the trust map then costs the head alone, and its image
    is the very one saved in ``NAME``'s store.
    """
    from live_restore.inference import ModelSession

    built: dict[str, Restorer] = {}
    for name in sorted(names, key=lambda n: n.endswith(TRUST_SUFFIX)):  # the models first
        model = built.get(name.removesuffix(TRUST_SUFFIX)) if name.endswith(TRUST_SUFFIX) else None
        if type(model) is ModelSession:
            built[name] = TrustStage(model, shared=True)
        else:  # a trust stage alone loads its model; any other name is made as it is
            built[name] = make(name)
    return [built[name] for name in names]
