"""Classical 2D SIM reconstruction: parameters from the data, then generalised Wiener filtering.

The Gustafsson / fairSIM approach, in torch so the same code runs on a GPU or the CPU.

For one pattern angle with phases φ_j = φ0 + 2πj/3, the camera sees (k: spatial frequency, H the
OTF, S the sample, m the modulation, p the pattern's wave vector)

    D_j(k) = H(k) [S(k) + (m/2) e^{iφ_j} S(k - p) + (m/2) e^{-iφ_j} S(k + p)],

so inverting the 3x3 phase matrix separates three bands: the widefield band S(k)H(k) and two
bands holding S moved by ±p. Everything is done on the 2x grid (raw frames upsampled by Fourier
zero-padding), because a band moved back to where it belongs reaches |p| + 2NA/λ, beyond the
camera's Nyquist.

- **p** is where the cross-correlation of band +1 with band 0 peaks: the integer peak of
  ``fft(b1 · conj(b0))`` in an annulus (or near a guess), refined to 1/100 px by evaluating the
  correlation's Fourier sum directly on finer and finer grids around it.
- **φ0 and m**: the least-squares ratio of band +1, moved by p, to band 0 in the region where both
  see the sample through the OTF: (m/2)e^{iφ0}.
- **Reconstruction**: every band moved to its place and weighted by its conjugate OTF, summed over
  angles, divided by the summed |OTF|² plus w², times an apodisation to the extended cut-off
  (the widefield OTF's shape stretched to 2NA/λ + |p|).

The OTF is the theoretical in-focus one of a circular pupil (NA, λ) times the camera pixel's
integration: nothing is fitted to the simulator, so the same code serves a real microscope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from live_restore.simulate import OpticsParams, SimPatternParams

__all__ = ["SimParameters", "estimate_parameters", "reconstruct_sim", "theoretical_otf"]

ANGLES = 3
PHASES = 3
SIM_FRAMES = ANGLES * PHASES  # one raw set, angle-major
# the region where both bands are trusted for φ0 and m: both OTF values above this
_OVERLAP_OTF = 0.08
# below this fraction of the cut-off, band 0 is dominated by the background and the sample's
# mean: left out of the correlation
_LOW_FREQUENCY_FRACTION = 0.15


@dataclass(frozen=True)
class SimParameters:
    """Pattern parameters per angle, as estimated from one raw set."""

    angles_deg: tuple[float, ...]
    periods_nm: tuple[float, ...]
    phases_deg: tuple[float, ...]
    modulations: tuple[float, ...]
    wave_vectors_per_um: tuple[tuple[float, float], ...]  # (kx, ky)


def _frequencies(shape: tuple[int, int], pixel_um: float, device: torch.device) -> torch.Tensor:
    """``(ky, kx)`` grids in cycles/µm (fft layout), float64."""
    ky = torch.fft.fftfreq(shape[0], d=pixel_um, dtype=torch.float64, device=device)
    kx = torch.fft.fftfreq(shape[1], d=pixel_um, dtype=torch.float64, device=device)
    return torch.stack(torch.meshgrid(ky, kx, indexing="ij"))


def _circular_otf(radius: torch.Tensor) -> torch.Tensor:
    """In-focus incoherent OTF of a circular pupil at ``radius`` = |k| / cut-off."""
    rho = radius.clamp(0.0, 1.0)
    return (2.0 / math.pi) * (torch.acos(rho) - rho * torch.sqrt(1.0 - rho**2))


def theoretical_otf(
    k: torch.Tensor, optics: OpticsParams, shift_per_um: tuple[float, float] = (0.0, 0.0)
) -> torch.Tensor:
    """OTF at frequencies ``k`` (``(2, H, W)``, ky/kx) moved by ``shift`` (kx, ky), real."""
    ky = k[0] - shift_per_um[1]
    kx = k[1] - shift_per_um[0]
    otf = _circular_otf(torch.sqrt(ky**2 + kx**2) / optics.cutoff_per_um)
    # the camera integrates over its pixel: a sinc per axis (torch.sinc is sin(πx)/(πx))
    pixel = optics.pixel_um
    return otf * torch.sinc(ky * pixel) * torch.sinc(kx * pixel)


def _tukey(length: int, fraction: float, device: torch.device) -> torch.Tensor:
    taper = max(int(length * fraction), 1)
    window = torch.ones(length, dtype=torch.float64, device=device)
    ramp = 0.5 - 0.5 * torch.cos(
        math.pi * (torch.arange(taper, dtype=torch.float64, device=device) + 0.5) / taper
    )
    window[:taper] = ramp
    window[-taper:] = ramp.flip(0)
    return window


def _prepare(raw: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """``(3, 3, H, W)`` float64 with the background removed and the edges faded out."""
    data = torch.as_tensor(np.asarray(raw, dtype=np.float64), device=device)
    if data.ndim == 3 and data.shape[0] == ANGLES * PHASES:
        data = data.reshape(ANGLES, PHASES, *data.shape[-2:])
    if data.ndim != 4 or data.shape[:2] != (ANGLES, PHASES):
        raise ValueError(
            f"a SIM raw set is 9 frames (3 angles x 3 phases, angle-major), got {tuple(data.shape)}"
        )
    if not torch.isfinite(data).all():
        raise ValueError("the SIM raw set has non-finite pixels")
    background = torch.quantile(data.flatten()[:: max(data.numel() // 100_000, 1)], 0.005)
    data = (data - background).clamp_min(0.0)
    rows, cols = data.shape[-2:]
    # the fade keeps the frame's edges from wrapping into the spectrum as a bright cross
    window = _tukey(rows, 0.08, device)[:, None] * _tukey(cols, 0.08, device)[None, :]
    # the fade happens around the frame's mean, so that it does not darken the edges to zero
    mean = data.mean(dim=(-2, -1), keepdim=True)
    return (data - mean) * window + mean


def _upsampled_spectra(data: torch.Tensor) -> torch.Tensor:
    """Spectra of the frames on the 2x grid (Fourier zero-padding), fft layout."""
    rows, cols = data.shape[-2:]
    spectrum = torch.fft.fftshift(torch.fft.fft2(data), dim=(-2, -1))
    padded = torch.zeros(
        (*data.shape[:-2], 2 * rows, 2 * cols), dtype=spectrum.dtype, device=data.device
    )
    top, left = rows // 2, cols // 2
    padded[..., top : top + rows, left : left + cols] = spectrum
    # x4: the same intensity per (now 4x smaller) pixel
    return torch.fft.ifftshift(padded, dim=(-2, -1)) * 4.0


def _separate(spectra: torch.Tensor, first_phase_rad: float = 0.0) -> torch.Tensor:
    """``(3 phases, H, W)`` -> bands 0, +1, -1 (phases assumed 2π/3 apart from ``first``)."""
    phases = first_phase_rad + 2.0 * math.pi * torch.arange(PHASES, dtype=torch.float64) / PHASES
    ones = torch.ones(PHASES, dtype=torch.complex128)
    mixing = torch.stack([ones, torch.exp(1j * phases), torch.exp(-1j * phases)], dim=1)
    mixing = mixing.to(spectra.device)
    unmixing = torch.linalg.inv(mixing)
    return torch.einsum("bj,jhw->bhw", unmixing, spectra)


def _positions_um(shape: tuple[int, int], pixel_um: float, device: torch.device) -> torch.Tensor:
    y = torch.arange(shape[0], dtype=torch.float64, device=device) * pixel_um
    x = torch.arange(shape[1], dtype=torch.float64, device=device) * pixel_um
    return torch.stack(torch.meshgrid(y, x, indexing="ij"))


def _moved(band: torch.Tensor, by_per_um: tuple[float, float], xy: torch.Tensor) -> torch.Tensor:
    """``B(k + by)``: the band's content moved by ``-by`` in frequency (exact, any sub-pixel)."""
    image = torch.fft.ifft2(band)
    ramp = torch.exp(-2j * math.pi * (by_per_um[0] * xy[1] + by_per_um[1] * xy[0]))
    return torch.fft.fft2(image * ramp)


def _correlation_at(
    product: torch.Tensor, xy: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor
) -> torch.Tensor:
    """``|Σ_x product(x) e^{-2πi k·x}|`` on the grid ``ky x kx`` (separable: two matmuls)."""
    ex = torch.exp(-2j * math.pi * xy[1][0][:, None] * kx[None, :])  # (W, nx)
    ey = torch.exp(-2j * math.pi * xy[0][:, 0][None, :] * ky[:, None])  # (ny, H)
    return (ey @ product @ ex).abs()


def _find_wave_vector(
    band0: torch.Tensor,
    band1: torch.Tensor,
    otf: torch.Tensor,
    k: torch.Tensor,
    xy: torch.Tensor,
    optics: OpticsParams,
    guess: tuple[float, float] | None,
) -> tuple[float, float]:
    cutoff = optics.cutoff_per_um
    radius = torch.sqrt(k[0] ** 2 + k[1] ** 2)
    weight = otf * (radius > _LOW_FREQUENCY_FRACTION * cutoff)
    b0 = torch.fft.ifft2(band0 * weight)
    b1 = torch.fft.ifft2(band1 * weight)
    product = b1 * b0.conj()
    correlation = torch.fft.fft2(product).abs()
    if guess is not None:
        distance = torch.sqrt((k[1] - guess[0]) ** 2 + (k[0] - guess[1]) ** 2)
        search = distance < 0.1 * math.hypot(*guess)
    else:
        search = (radius > 0.3 * cutoff) & (radius < cutoff)
    index = int(torch.argmax(torch.where(search, correlation, 0.0)))
    row, col = divmod(index, correlation.shape[1])
    best = (float(k[1][row, col]), float(k[0][row, col]))
    step = float(k[1][0, 1] - k[1][0, 0])  # one frequency pixel
    offsets = torch.linspace(-1.0, 1.0, 9, dtype=torch.float64, device=k.device)
    for scale in (0.5, 0.1, 0.02):
        kx = best[0] + offsets * scale * step * 2
        ky = best[1] + offsets * scale * step * 2
        values = _correlation_at(product, xy, kx, ky)
        iy, ix = divmod(int(torch.argmax(values)), len(offsets))
        best = (float(kx[ix]), float(ky[iy]))
    return best


def _modulation_and_phase(
    band0: torch.Tensor,
    band1: torch.Tensor,
    p: tuple[float, float],
    otf0: torch.Tensor,
    k: torch.Tensor,
    xy: torch.Tensor,
    optics: OpticsParams,
) -> complex:
    """(m/2)e^{iφ0}: least squares of band +1 moved home against band 0 where both are seen."""
    home = _moved(band1, p, xy)  # S(k) H(k + p) (m/2) e^{iφ0}
    otf1 = theoretical_otf(k, optics, (-p[0], -p[1]))  # H(k + p)
    radius = torch.sqrt(k[0] ** 2 + k[1] ** 2)
    region = (otf0 > _OVERLAP_OTF) & (otf1 > _OVERLAP_OTF)
    region &= radius > _LOW_FREQUENCY_FRACTION * optics.cutoff_per_um
    model = band0 * otf1  # S(k) H(k) H(k+p)
    observed = home * otf0  # (m/2) e^{iφ0} S(k) H(k+p) H(k)
    numerator = (observed * model.conj())[region].sum()
    denominator = (model.abs() ** 2)[region].sum()
    return complex(numerator / denominator)


@dataclass(frozen=True)
class _SeparatedSet:
    """A raw set's bands on the 2x grid, with the grids and OTF both steps use."""

    bands: torch.Tensor  # (angle, band 0/+1/-1, H, W), fft layout
    k: torch.Tensor  # (ky, kx) cycles/µm
    xy: torch.Tensor  # (y, x) µm
    otf: torch.Tensor  # the unshifted theoretical OTF


def _separated_set(
    raw: np.ndarray | torch.Tensor, optics: OpticsParams, device: torch.device
) -> _SeparatedSet:
    spectra = _upsampled_spectra(_prepare(raw, device))
    shape = (int(spectra.shape[-2]), int(spectra.shape[-1]))
    fine_pixel = optics.pixel_um / 2.0
    k = _frequencies(shape, fine_pixel, device)
    bands = torch.stack([_separate(spectra[angle]) for angle in range(ANGLES)])
    return _SeparatedSet(
        bands, k, _positions_um(shape, fine_pixel, device), theoretical_otf(k, optics)
    )


def _estimate(
    separated: _SeparatedSet, optics: OpticsParams, guess: SimPatternParams | None
) -> SimParameters:
    k, xy, otf = separated.k, separated.xy, separated.otf
    angles, periods, phases, modulations, vectors = [], [], [], [], []
    for angle in range(ANGLES):
        bands = separated.bands[angle]
        nominal = None
        if guess is not None:
            theta = math.radians(guess.angle0_deg) + angle * math.pi / 3
            frequency = 1000.0 / guess.period_nm
            nominal = (frequency * math.cos(theta), frequency * math.sin(theta))
        p = _find_wave_vector(bands[0], bands[1], otf, k, xy, optics, nominal)
        factor = _modulation_and_phase(bands[0], bands[1], p, otf, k, xy, optics)
        vectors.append(p)
        angles.append(math.degrees(math.atan2(p[1], p[0])))
        periods.append(1000.0 / math.hypot(*p))
        phases.append(math.degrees(math.atan2(factor.imag, factor.real)))
        modulations.append(2.0 * abs(factor))
    return SimParameters(
        tuple(angles), tuple(periods), tuple(phases), tuple(modulations), tuple(vectors)
    )


def estimate_parameters(
    raw: np.ndarray | torch.Tensor,
    optics: OpticsParams,
    guess: SimPatternParams | None = None,
    device: str | torch.device = "cpu",
) -> SimParameters:
    """Pattern angle, period, phase and modulation per angle, from a 9-frame raw set alone.

    ``guess`` narrows the search to ±10 % around the nominal wave vectors (a real instrument
    knows its pattern roughly); without it each angle's peak is searched over the annulus
    0.3-1.0 of the OTF cut-off.
    """
    return _estimate(_separated_set(raw, optics, torch.device(device)), optics, guess)


def reconstruct_sim(
    raw: np.ndarray | torch.Tensor,
    optics: OpticsParams,
    parameters: SimParameters | None = None,
    guess: SimPatternParams | None = None,
    wiener: float = 0.05,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, SimParameters]:
    """The 2x SIM image (float32, photons per camera-pixel area) and the parameters used.

    Parameters are estimated from ``raw`` unless given. ``wiener`` is w in the Wiener
    denominator Σ|OTF|² + w²: larger is smoother and less noisy, smaller sharper.
    """
    if wiener <= 0:
        raise ValueError(f"the Wiener parameter must be > 0, got {wiener}")
    separated = _separated_set(raw, optics, torch.device(device))
    if parameters is None:
        parameters = _estimate(separated, optics, guess)
    k, xy, otf0 = separated.k, separated.xy, separated.otf
    # band 0 is the same widefield band for every angle: its terms are summed once per angle
    numerator = otf0 * separated.bands[:, 0].sum(dim=0)
    denominator = ANGLES * otf0**2
    for angle in range(ANGLES):
        p = parameters.wave_vectors_per_um[angle]
        half_m = parameters.modulations[angle] / 2.0
        phase = math.radians(parameters.phases_deg[angle])
        for sign, band in ((1, separated.bands[angle, 1]), (-1, separated.bands[angle, 2])):
            shift = (sign * p[0], sign * p[1])
            factor = half_m * complex(math.cos(phase), sign * math.sin(phase))
            home = _moved(band, shift, xy) / factor
            otf = theoretical_otf(k, optics, (-shift[0], -shift[1]))
            numerator = numerator + otf * home
            denominator = denominator + otf**2
    extended = optics.cutoff_per_um + max(math.hypot(*p) for p in parameters.wave_vectors_per_um)
    apodisation = _circular_otf(torch.sqrt(k[0] ** 2 + k[1] ** 2) / extended)
    image = torch.fft.ifft2(numerator / (denominator + wiener**2) * apodisation).real
    # already photons per camera-pixel area: _upsampled_spectra kept the raw frames' scale
    return image.clamp_min(0.0).float().cpu().numpy(), parameters
