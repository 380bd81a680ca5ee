"""A wider simulated world: sample families, optics and cameras drawn, not fixed.

The shipped models learned from one microscope (NA 1.49 oil, 525 nm, an ideal sCMOS) and one
kind of sample. A user's stack differs in all three. This module draws them:

- **families** of samples with depth (each a :class:`LayeredSample`, thin 2-D structures at
  depths, so the truth at any focal plane is exact):
  - ``layers``: 3-6 random structures over 3 µm (what the shipped interp-z learned from);
  - ``filaments``: 5-7 filament layers (microtubules, f-actin) over 2-4 µm, under the haze of
    2-4 layers 3-6 µm out of focus;
  - ``puncta``: 10-16 layers of vesicles spread through 3-5 µm: dense in depth;
  - ``organelles``: 2-4 thick objects (mitochondria, ER, nuclei), each one structure repeated
    over 0.4-1.2 µm of depth, and a filament layer;
- **optics**: NA 0.8-1.49 with the immersion that can carry it (air to 0.95, water to 1.2,
  silicone to 1.35, oil above), emission 450-680 nm;
- **cameras**: an sCMOS with per-pixel offset, gain and read-noise maps (a few hot pixels), or
  an EMCCD (the electron-multiplying register's excess noise, a gamma draw per pixel, then
  read noise), at other gains and offsets;
- **autofluorescence**: a smooth background, 0-15 % of the peak, the same at every plane.

:func:`world_stack` renders a z-stack of one draw: the acquired planes (counts) and the
noise-free truth at every half step (photons), the in-between planes an interpolator must give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from ._grids import band_limit_to_coarse
from ._optics import OpticsParams
from ._samples import make_sample
from ._scenes import _FINE, LayeredSample

__all__ = [
    "FAMILIES",
    "WorldCamera",
    "WorldDraw",
    "draw_world",
    "layered_sample",
    "world_stack",
    "write_stack_ome_zarr",
]

FAMILIES: tuple[str, ...] = ("layers", "filaments", "puncta", "organelles")
_MARGIN_PX = 24
# (largest NA, immersion index): the medium that can carry an objective's NA
_IMMERSIONS = ((0.95, 1.0), (1.2, 1.333), (1.35, 1.406), (1.7, 1.518))


@dataclass(frozen=True)
class WorldCamera:
    """A camera with per-pixel maps (sCMOS) or an electron-multiplying register (EMCCD)."""

    kind: str  # "scmos" | "emccd"
    offset_adu: np.ndarray  # (H, W)
    gain_adu_per_e: np.ndarray  # (H, W) counts per photo-electron (EM gain included)
    read_noise_e: np.ndarray  # (H, W) rms, in photo-electron units at the output
    bit_depth: int = 16

    @classmethod
    def random(cls, rng: np.random.Generator, shape: tuple[int, int]) -> WorldCamera:
        """An sCMOS (2 of 3 draws) or an EMCCD, with its maps for a frame of ``shape``."""
        if rng.random() < 2 / 3:
            gain = float(np.exp(rng.uniform(np.log(0.4), np.log(3.0))))
            read = np.exp(rng.normal(np.log(rng.uniform(0.8, 2.0)), 0.3, shape))
            hot = rng.random(shape) < 0.002
            read[hot] *= rng.uniform(4, 10, int(hot.sum()))
            return cls(
                "scmos",
                rng.normal(rng.uniform(50, 400), 2.0, shape).astype(np.float32),
                (gain * rng.normal(1.0, 0.02, shape)).astype(np.float32),
                read.astype(np.float32),
            )
        register_gain = float(rng.uniform(100.0, 300.0))  # electrons out per electron in
        counts_per_e = float(rng.uniform(5.0, 40.0))  # counts per photo-electron, all gains
        # the output amplifier's 20-60 e- rms, divided by the register's gain: below 1 e-
        read_e = float(rng.uniform(20.0, 60.0)) / register_gain
        return cls(
            "emccd",
            np.full(shape, rng.uniform(100, 500), np.float32),
            np.full(shape, counts_per_e, np.float32),
            np.full(shape, read_e, np.float32),
        )

    @property
    def mean_offset_adu(self) -> float:
        """The offset a user would subtract (the map's mean)."""
        return float(self.offset_adu.mean())

    @property
    def mean_gain_adu_per_e(self) -> float:
        """The gain a user would divide by (the map's mean)."""
        return float(self.gain_adu_per_e.mean())

    def expose(self, photons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One noisy uint16 frame of expected ``photons`` per pixel."""
        electrons = rng.poisson(photons).astype(np.float64)
        if self.kind == "emccd":
            # the register multiplies each electron by a random gain: the sum of n exponentials
            # is a gamma of shape n (excess noise factor sqrt 2); divided back to electron units
            lit = electrons > 0
            electrons[lit] = rng.gamma(electrons[lit], 1.0)
        electrons += self.read_noise_e * rng.standard_normal(photons.shape)
        counts = np.rint(electrons * self.gain_adu_per_e + self.offset_adu)
        frame: np.ndarray = np.clip(counts, 0, 2**self.bit_depth - 1).astype(np.uint16)
        return frame

    def to_photons(self, counts: np.ndarray) -> np.ndarray:
        """Counts -> photons with the mean offset and gain (what a user knows of the camera)."""
        return (
            (np.asarray(counts, np.float32) - self.mean_offset_adu) / self.mean_gain_adu_per_e
        ).astype(np.float32)


@dataclass(frozen=True)
class WorldDraw:
    """One draw of the world: a sample family's layers, the optics, the light and the camera."""

    family: str
    optics: OpticsParams
    peak_photons: float
    layers: tuple[tuple[str, float, float], ...]  # (structure, depth µm, brightness)
    autofluorescence: float  # fraction of the peak, a smooth background
    seed: int
    facts: dict[str, float | str] = field(default_factory=dict)


def _optics(rng: np.random.Generator) -> OpticsParams:
    na = float(rng.uniform(0.8, 1.49))
    immersion = next(n for top, n in _IMMERSIONS if na <= top and na < n)
    return OpticsParams(
        na=na,
        immersion_index=immersion,
        emission_wavelength_nm=float(rng.uniform(450, 680)),
        spherical_aberration_waves=float(rng.uniform(-0.15, 0.15)),
    )


Layer = tuple[str, float, float]  # structure, depth µm, brightness


def _thick(kind: str, centre: float, thickness: float, brightness: float) -> list[Layer]:
    slices = max(2, round(thickness / 0.2) + 1)
    return [
        (kind, float(depth), brightness / slices * 2)
        for depth in np.linspace(centre - thickness / 2, centre + thickness / 2, slices)
    ]


def _layers(family: str, rng: np.random.Generator) -> list[tuple[str, float, float]]:
    if family == "layers":
        kinds = ("microtubules", "clathrin", "er", "f-actin", "mitochondria", "nuclei")
        return [
            (str(rng.choice(kinds)), float(rng.uniform(-1.5, 1.5)), float(rng.uniform(0.4, 1)))
            for _ in range(int(rng.integers(3, 7)))
        ]
    if family == "filaments":
        depth = float(rng.uniform(2.0, 4.0))
        layers = [
            (
                str(rng.choice(("microtubules", "f-actin"))),
                float(rng.uniform(-depth, depth) / 2),
                float(rng.uniform(0.4, 1.0)),
            )
            for _ in range(int(rng.integers(5, 8)))
        ]
        haze = [
            (
                str(rng.choice(("er", "mitochondria", "f-actin", "nuclei"))),
                float(rng.choice((-1, 1)) * rng.uniform(3.0, 6.0)),
                float(rng.uniform(0.5, 1.5)),
            )
            for _ in range(int(rng.integers(2, 5)))
        ]
        return layers + haze
    if family == "puncta":
        depth = float(rng.uniform(3.0, 5.0))
        return [
            ("clathrin", float(rng.uniform(-depth, depth) / 2), float(rng.uniform(0.3, 1.0)))
            for _ in range(int(rng.integers(10, 17)))
        ]
    if family == "organelles":
        thick: list[Layer] = []
        for _ in range(int(rng.integers(2, 5))):
            kind = str(rng.choice(("mitochondria", "er", "nuclei")))
            thick += _thick(
                kind,
                float(rng.uniform(-1.5, 1.5)),
                float(rng.uniform(0.4, 1.2)),
                float(rng.uniform(0.5, 1.0)),
            )
        thick.append(("microtubules", float(rng.uniform(-1.5, 1.5)), float(rng.uniform(0.3, 0.8))))
        return thick
    raise ValueError(f"unknown sample family {family!r}; the families: {', '.join(FAMILIES)}")


def draw_world(
    rng: np.random.Generator,
    family: str | None = None,
    exclude: Sequence[str] = (),
    photon_range: tuple[float, float] = (20.0, 1000.0),
) -> WorldDraw:
    """A random draw of sample, optics, light and background.

    ``family``: default one of the families not in ``exclude``; peak photons log-uniform in
    ``photon_range``.
    """
    choices = [f for f in FAMILIES if f not in exclude]
    if family is None:
        if not choices:
            raise ValueError(f"every family is excluded ({', '.join(exclude)})")
        family = str(rng.choice(choices))
    layers = _layers(family, rng)
    optics = _optics(rng)
    peak = float(np.exp(rng.uniform(*np.log(photon_range))))
    autofluorescence = 0.0 if family == "layers" else float(rng.uniform(0.0, 0.15))
    return WorldDraw(
        family, optics, peak, tuple(layers), autofluorescence, int(rng.integers(2**31))
    )


def layered_sample(draw: WorldDraw, size_px: int) -> LayeredSample:
    """The draw's sample: each structure drawn once and band-limited to the camera grid."""
    rng = np.random.default_rng(draw.seed)
    side = _FINE * (size_px + 2 * _MARGIN_PX)
    spectra, depths, cache = [], [], {}
    for kind, depth, brightness in draw.layers:
        key = (kind, round(brightness, 6)) if draw.family == "organelles" else None
        if key is None or key not in cache:
            sample = make_sample(
                kind, (side, side), draw.optics.sr_pixel_um, int(rng.integers(2**31))
            )
            coarse = band_limit_to_coarse(sample.total * np.float32(brightness), _FINE)
            spectrum = sfft.rfft2(coarse, workers=1)
            if key is not None:
                cache[key] = spectrum
        spectra.append(cache[key] if key is not None else spectrum)
        depths.append(depth)
    grid = (side // _FINE, side // _FINE)
    draft = LayeredSample(tuple(spectra), tuple(depths), grid, 1.0, _MARGIN_PX, draw.optics)
    reference = float(np.percentile(draft.photons(0.0), 99.9)) or 1.0
    return LayeredSample(
        tuple(spectra), tuple(depths), grid, draw.peak_photons / reference, _MARGIN_PX, draw.optics
    )


def world_stack(
    draw: WorldDraw,
    size_px: int,
    planes: int,
    step_um: float,
    camera: WorldCamera | None = None,
    noise_seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, WorldCamera]:
    """A z-stack of ``planes`` acquired ``step_um`` apart, centred on the sample.

    Returns the acquired planes ``(planes, S, S)`` uint16, the noise-free truth at every half
    step ``(2 * planes - 1, S, S)`` float32 photons (even indices: the acquired planes' own
    truth; odd: the in-between planes), and the camera that took them.
    """
    rng = np.random.default_rng([draw.seed, noise_seed])
    camera = camera or WorldCamera.random(rng, (size_px, size_px))
    sample = layered_sample(draw, size_px)
    start = -step_um * (planes - 1) / 2
    truth = np.stack([sample.photons(start + k * step_um / 2) for k in range(2 * planes - 1)])
    if draw.autofluorescence > 0:
        background = ndimage.gaussian_filter(
            rng.standard_normal((size_px, size_px)), size_px / 6, mode="wrap"
        )
        background = (background - background.min()) / (np.ptp(background) or 1.0)
        truth += np.float32(draw.autofluorescence * draw.peak_photons) * (
            0.5 + background.astype(np.float32)
        )
    acquired = np.stack([camera.expose(plane, rng) for plane in truth[::2]])
    return acquired, truth.astype(np.float32), camera


def write_stack_ome_zarr(
    path: str | Path, planes: np.ndarray, step_um: float, pixel_um: float
) -> Path:
    """Write ``(Z, Y, X)`` planes as a user's NGFF 0.5 OME-Zarr image: axes z, y, x in µm."""
    import zarr

    path = Path(path)
    group = zarr.open_group(str(path), mode="w")
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [{"name": axis, "type": "space", "unit": "micrometer"} for axis in "zyx"],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [step_um, pixel_um, pixel_um]}
                        ],
                    }
                ],
            }
        ],
    }
    array = group.create_array(
        "0", shape=planes.shape, dtype=planes.dtype, chunks=(1, *planes.shape[1:])
    )
    array[...] = planes
    return path
