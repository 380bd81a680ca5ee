"""SIM reconstruction: classical (parameters from the data + generalised Wiener), in torch."""

from ._classical import SimParameters, estimate_parameters, reconstruct_sim, theoretical_otf

__all__ = ["SimParameters", "estimate_parameters", "reconstruct_sim", "theoretical_otf"]
