"""SIM reconstruction: classical (parameters from the data + generalised Wiener), in torch.

:class:`ClassicalSimRestorer` is that reconstruction as a hook stage (``sim-classical``); the
deep-learned one, ``dfcan-sim``, is a shipped model (``load_model("dfcan-sim")``).
"""

from ._classical import (
    SIM_FRAMES,
    SimParameters,
    estimate_parameters,
    reconstruct_sim,
    theoretical_otf,
)
from ._restorer import ClassicalSimRestorer, set_signal_photons, wiener_for_signal

__all__ = [
    "SIM_FRAMES",
    "ClassicalSimRestorer",
    "SimParameters",
    "estimate_parameters",
    "reconstruct_sim",
    "set_signal_photons",
    "theoretical_otf",
    "wiener_for_signal",
]
