"""The loss of ``dfcan-sim``, with the OIDN-style physics prior as an option.

Jin et al. (Optics Express 2024, "OIDN") guide a SIM network with the object-to-image
degradation: a learnable PSF, constrained by physical priors, maps the network's super-resolved
estimate back to what the camera recorded. Here that is a training-time term only (inference is
the plain network):

- **degradation consistency**: the estimate, blurred by the learnable kernel and binned 2x2 onto
  the camera grid, must equal the widefield image the raw set implies (the mean of its 9
  frames: the patterns average to uniform illumination);
- **energy conservation** (CE): the kernel sums to 1, so blurring moves light and never makes it;
- **rotational symmetry** (RS): the kernel equals its 90° rotation and its transpose (an
  aberration-free objective's PSF is round);
- **Charbonnier frequency loss** on the spectra of estimate and truth (weights the weak high
  frequencies the pixel loss ignores), with OIDN's weight 0.01.

The kernel is the blur from the 2x image to widefield (OTF_widefield / OTF_2x), not the whole
widefield PSF; :meth:`SimReconstructionLoss.kernel_fwhm_nm` reports what it learned.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._losses import charbonnier_frequency_loss, mse_ssim_loss

__all__ = ["SIM_LOSS_TERMS", "SimReconstructionLoss"]

# the ablation's variants, each adding a part
SIM_LOSS_TERMS: dict[str, tuple[str, ...]] = {
    "mse-ssim": ("mse-ssim",),
    "frequency": ("mse-ssim", "frequency"),
    "physics": ("mse-ssim", "frequency", "physics"),
}


def gaussian_kernel(sigma_px: float, size: int | None = None) -> torch.Tensor:
    """A normalised 2-D Gaussian, ``size`` px a side (odd; default 4 sigma each side)."""
    if size is None:
        size = 2 * max(1, math.ceil(4 * sigma_px)) + 1
    axis = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    one = torch.exp(-(axis**2) / (2 * sigma_px**2))
    kernel = one[:, None] * one[None, :]
    return kernel / kernel.sum()


def blur_and_bin(estimate: torch.Tensor, kernel: torch.Tensor, output_range: float) -> torch.Tensor:
    """A 2x estimate (network units) blurred by ``kernel`` and binned 2x2 onto the camera grid.

    What the camera would have seen of it, in input units: the physics term here and the
    self-supervised consistency of ``adapt`` (ZS-DeconvNet's loss) are this one forward model.
    """
    half = kernel.shape[-1] // 2
    padded = nn.functional.pad(estimate, (half, half, half, half), mode="reflect")
    blurred = nn.functional.conv2d(padded, kernel.reshape(1, 1, *kernel.shape[-2:]))
    return nn.functional.avg_pool2d(blurred, 2) * output_range


class SimReconstructionLoss(nn.Module):
    """MSE + 0.1·(1 − SSIM), plus the chosen terms (see module docstring).

    Parameters
    ----------
    terms : tuple of str
        Any of ``mse-ssim`` (always on), ``frequency``, ``physics``.
    output_range : float
        The model's output scale (network output x range = input units).
    kernel_px : int
        Side of the learnable kernel on the 2x grid (odd).
    start_sigma_px : float
        Its Gaussian starting width. On the simulator the Gaussian that best maps the 2x truth
        to the widefield image has σ 3.5 px at 32.5 nm (FWHM 270 nm: the OTF ratio, the
        objective's spherical aberration and the pixel boxes together; measured by least
        squares), and it leaves 12 % of the widefield image's variance unexplained, which the
        free-form kernel can take up.
    """

    def __init__(
        self,
        terms: tuple[str, ...] = ("mse-ssim",),
        output_range: float = 4.0,
        kernel_px: int = 15,
        start_sigma_px: float = 3.0,
        frequency_weight: float = 0.01,
        consistency_weight: float = 0.1,
        kernel_prior_weight: float = 1e-3,
    ) -> None:
        super().__init__()
        unknown = set(terms) - {"mse-ssim", "frequency", "physics"}
        if unknown:
            raise ValueError(
                f"unknown loss terms {sorted(unknown)}; known: mse-ssim, frequency, physics"
            )
        if kernel_px % 2 == 0:
            raise ValueError(f"kernel_px must be odd, got {kernel_px}")
        self.terms = tuple(terms)
        self.output_range = float(output_range)
        self.frequency_weight = frequency_weight
        self.consistency_weight = consistency_weight
        self.kernel_prior_weight = kernel_prior_weight
        self.kernel = (
            nn.Parameter(gaussian_kernel(start_sigma_px, kernel_px))
            if "physics" in self.terms
            else None
        )

    def degrade(self, estimate: torch.Tensor) -> torch.Tensor:
        """The 2x estimate (network units) blurred by the kernel and binned onto the camera grid."""
        assert self.kernel is not None
        return blur_and_bin(estimate, self.kernel, self.output_range)

    def kernel_priors(self) -> torch.Tensor:
        """Energy conservation + rotational symmetry of the kernel."""
        assert self.kernel is not None
        k = self.kernel
        energy = (k.sum() - 1.0) ** 2
        # relative to the kernel's peak, so the term does not vanish as the kernel spreads
        peak = k.detach().abs().max() ** 2
        symmetry = (((k - torch.rot90(k, 1)) ** 2).mean() + ((k - k.T) ** 2).mean()) / peak
        return energy + symmetry

    def forward(
        self, network: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        estimate = network(inputs)
        loss = mse_ssim_loss(estimate, targets)
        if "frequency" in self.terms:
            loss = loss + self.frequency_weight * charbonnier_frequency_loss(estimate, targets)
        if "physics" in self.terms:
            widefield = inputs.mean(dim=1, keepdim=True)
            consistency = nn.functional.mse_loss(self.degrade(estimate), widefield)
            loss = loss + self.consistency_weight * consistency
            loss = loss + self.kernel_prior_weight * self.kernel_priors()
        return loss

    def kernel_fwhm_nm(self, grid_pixel_nm: float) -> float | None:
        """FWHM of the learned kernel (from its second moment, Gaussian-equivalent), or None."""
        if self.kernel is None:
            return None
        k = self.kernel.detach().clamp(min=0)
        axis = torch.arange(k.shape[0], dtype=torch.float32) - (k.shape[0] - 1) / 2
        weight = k / k.sum()
        variance = float((weight * (axis[:, None] ** 2 + axis[None, :] ** 2)).sum()) / 2
        return 2 * math.sqrt(2 * math.log(2)) * math.sqrt(variance) * grid_pixel_nm
