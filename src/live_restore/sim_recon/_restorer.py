"""``sim-classical``: the classical reconstruction as a hook stage, one 9-frame set at a time.

The stage takes the 9 SIM pattern frames of one time point (the MDA channel axis, presets
``SIM-A0P0`` .. ``SIM-A2P2`` on the demo core; :class:`~live_restore.frames.AxisSet`
groups them and reports a set cut short, which is never reconstructed). The pattern is fixed to
the camera, so its parameters are estimated from the first set and then re-estimated every
``reestimate_every`` sets, each time searching near the last estimate: estimation costs about
as much as the reconstruction itself (measured on the CPU at 512²: 0.55 s of 1.4 s).
An estimate whose modulation falls below ``min_modulation`` on any angle (a set with too little
signal, or no pattern; measured: the annulus search fails at 10 photons per pixel and succeeds
at 20) is not trusted: trusted parameters stay; without any, that set is reconstructed with
what was found and the next set is estimated afresh. The provenance says which.

The Wiener constant follows the light by default (``wiener=None``): the best fixed constant
moves from 0.5 at 10-20 photons per pixel to 0.05 at 200 (measured on held-out sets,
benchmarks/RESULTS.md), so one constant tuned for bright samples loses about 2 dB in the low
light this product is for. Each set's signal level (the 99.9th percentile of its mean frame, in
photons, which is the simulator's peak photon level within 5 %) picks w by log-log interpolation
between those measured optima; the rule is in the provenance, so the output stays reproducible.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from live_restore._version import __version__
from live_restore.frames import AxisSet, RestorerBase, as_frame
from live_restore.simulate import CameraParams, OpticsParams, SimPatternParams

from ._classical import SIM_FRAMES, SimParameters, estimate_parameters, reconstruct_sim

__all__ = ["ClassicalSimRestorer", "set_signal_photons", "wiener_for_signal"]

log = logging.getLogger(__name__)

# (peak photons per pixel, best Wiener constant of 0.05 / 0.2 / 0.5) on held-out simulated sets
WIENER_OPTIMA = ((20.0, 0.5), (50.0, 0.2), (200.0, 0.05))


def wiener_for_signal(peak_photons: float) -> float:
    """The Wiener constant for a set whose brightest structures give ``peak_photons``.

    Log-log interpolation between :data:`WIENER_OPTIMA`, held constant outside them.
    """
    levels = np.log([level for level, _ in WIENER_OPTIMA])
    constants = np.log([w for _, w in WIENER_OPTIMA])
    return float(np.exp(np.interp(np.log(max(peak_photons, 1e-3)), levels, constants)))


def set_signal_photons(photons: np.ndarray) -> float:
    """A set's signal level: the 99.9th percentile of the mean of its frames, in photons."""
    return float(np.percentile(photons.mean(axis=0), 99.9))


class ClassicalSimRestorer(RestorerBase):
    """9 raw SIM frames (counts) -> the 2x generalised-Wiener reconstruction (photons).

    Parameters
    ----------
    optics, camera : parameter models
        The OTF comes from ``optics`` (theoretical, nothing fitted); counts become photons with
        ``camera``'s offset and gain.
    guess : SimPatternParams, optional
        The instrument's nominal pattern (narrows the first search); None searches the annulus.
    wiener : float, optional
        w in Σ|OTF|² + w²: larger is smoother and less noisy. None (default): chosen per set
        from its signal level (:func:`wiener_for_signal`).
    reestimate_every : int
        Re-estimate the parameters every this many sets (0: only from the first set).
    min_modulation : float
        A re-estimate with a lower modulation on any angle is discarded.
    device : str
        ``cpu`` or ``cuda``.
    """

    name = "sim-classical"
    scale = 2

    def __init__(
        self,
        optics: OpticsParams | None = None,
        camera: CameraParams | None = None,
        guess: SimPatternParams | None = None,
        wiener: float | None = None,
        reestimate_every: int = 10,
        min_modulation: float = 0.2,
        device: str = "cpu",
    ) -> None:
        if wiener is not None and wiener <= 0:
            raise ValueError(f"the Wiener parameter must be > 0, got {wiener}")
        if reestimate_every < 0:
            raise ValueError(f"reestimate_every must be >= 0, got {reestimate_every}")
        self.optics = optics or OpticsParams()
        self.camera = camera or CameraParams()
        self.guess = guess
        self.wiener = None if wiener is None else float(wiener)
        self.last_wiener: float | None = None
        self.reestimate_every = int(reestimate_every)
        self.min_modulation = float(min_modulation)
        self.device = device
        self.grouping = AxisSet("c", SIM_FRAMES)
        self.parameters: SimParameters | None = None
        self.trusted = False  # an estimate passed the modulation check
        self.sets_done = 0
        self.estimates = 0
        self.estimates_rejected = 0
        self._lock = threading.Lock()  # provenance() may be read from another thread

    def _photons(self, frames: object) -> np.ndarray:
        array = np.asarray(frames)
        if array.ndim != 3 or array.shape[0] != SIM_FRAMES:
            raise ValueError(
                f"{self.name} takes a SIM raw set of {SIM_FRAMES} frames (patterns A0P0..A2P2) "
                f"as ({SIM_FRAMES}, rows, columns), got shape {array.shape}"
            )
        counts = np.stack([as_frame(frame, min_side=32) for frame in array])
        return self.camera.photon_conversion.photons(counts)

    def _due(self) -> bool:
        if not self.trusted:
            return True
        return self.reestimate_every > 0 and self.sets_done % self.reestimate_every == 0

    def _guess(self) -> SimPatternParams | None:
        if self.parameters is None or not self.trusted:
            return self.guess
        # search near the last estimate: the pattern is fixed to the camera
        p = self.parameters
        return SimPatternParams(
            period_nm=float(np.mean(p.periods_nm)),
            modulation=min(max(float(np.mean(p.modulations)), 0.0), 1.0),
            angle0_deg=float(p.angles_deg[0]),
        )

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        photons = self._photons(frames)
        if self._due():
            found = estimate_parameters(photons, self.optics, self._guess(), self.device)
            good = min(found.modulations) >= self.min_modulation
            with self._lock:
                self.estimates += 1
                if good or not self.trusted:
                    # without trusted parameters the set is reconstructed with what was found
                    # (flagged), and the next set is estimated afresh
                    self.parameters = found
                self.trusted = self.trusted or good
                if not good:
                    self.estimates_rejected += 1
            if not good:
                log.warning(
                    "%s: estimated modulation %s is below %.2f (too little signal, or no "
                    "pattern): %s",
                    self.name,
                    [round(m, 2) for m in found.modulations],
                    self.min_modulation,
                    "keeping the previous parameters"
                    if self.trusted
                    else "this set is reconstructed with them, the next one re-estimated",
                )
        wiener = self.wiener_for(photons)
        image, _ = reconstruct_sim(
            photons, self.optics, self.parameters, wiener=wiener, device=self.device
        )
        self.sets_done += 1
        self.last_wiener = wiener
        return image

    def wiener_for(self, photons: np.ndarray) -> float:
        """The Wiener constant this stage uses for a set (in photons, ``(9, H, W)``)."""
        if self.wiener is not None:
            return self.wiener
        return wiener_for_signal(set_signal_photons(photons))

    def _wiener_text(self) -> str:
        if self.wiener is not None:
            return str(self.wiener)
        optima = ", ".join(f"({p:g}, {w:g})" for p, w in WIENER_OPTIMA)
        last = "" if self.last_wiener is None else f"; last set: {self.last_wiener:.3g}"
        return (
            "per set from its signal level p (99.9th percentile of the mean frame, photons): "
            f"log-log interpolation through (p, w) = {optima}{last}"
        )

    def provenance(self) -> dict[str, str]:
        """Method, settings and the parameters in use (the latest accepted estimate)."""
        o = self.optics
        with self._lock:
            p = self.parameters
            record = {
                "model": self.name,
                "method": "band separation, cross-correlation parameter estimation, generalised "
                "Wiener filter with apodisation (Gustafsson / fairSIM)",
                "otf": f"theoretical, NA {o.na}, {o.emission_wavelength_nm} nm, pixel "
                f"{o.pixel_um * 1000:.1f} nm",
                "wiener": self._wiener_text(),
                "reestimate_every_sets": str(self.reestimate_every),
                "estimates": f"{self.estimates} ({self.estimates_rejected} below the "
                f"modulation threshold {self.min_modulation})",
                "parameters_trusted": str(self.trusted),
                "normalisation": self.camera.photon_conversion.describe(),
                "device": self.device,
                "live_restore_version": __version__,
            }
            if p is not None:
                record["angles_deg"] = ", ".join(f"{a:.3f}" for a in p.angles_deg)
                record["periods_nm"] = ", ".join(f"{v:.2f}" for v in p.periods_nm)
                record["phases_deg"] = ", ".join(f"{v:.1f}" for v in p.phases_deg)
                record["modulations"] = ", ".join(f"{v:.3f}" for v in p.modulations)
        return record
