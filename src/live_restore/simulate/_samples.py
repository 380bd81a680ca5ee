"""Fluorescent samples on a fine grid: density of fluorophores per fine pixel.

Each structure is drawn the way it is built in a cell, at its real size, then splatted onto a
grid of at most the SR pixel size (32.5 nm by default) and smoothed by its own physical width:
- microtubules: worm-like chains (persistence length ~ tens of µm), 25 nm wide;
- clathrin-coated pits: sub-resolution rings 80-160 nm across, some closed into puncta;
- ER: a tubular network (Delaunay graph with three-way junctions) plus a few flat sheets;
- F-actin: dense thin filaments, bundled stress fibres in a dominant direction over a mesh;
- mitochondria: 250-400 nm tubes whose outer membrane and cristae (~90 nm spacing) show;
- nuclei: large ellipses with chromatin texture and darker nucleoli.

A sample is two layers: a static one and a mobile fraction (moving relative to the rest), so
that the simulated time-lapse has real structure motion and not only rigid drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import ndimage
from scipy.spatial import Delaunay

__all__ = ["STRUCTURES", "Sample", "Structure", "make_sample", "parse_structure"]


class Structure(StrEnum):
    """The sample structures the simulator can render."""

    MICROTUBULES = "microtubules"
    CLATHRIN = "clathrin"
    ER = "er"
    F_ACTIN = "f-actin"
    MITOCHONDRIA = "mitochondria"
    NUCLEI = "nuclei"


STRUCTURES: tuple[str, ...] = tuple(s.value for s in Structure)


@dataclass(frozen=True)
class Sample:
    """Fluorophore density on the fine grid, split into a static and a mobile layer."""

    structure: Structure
    pixel_um: float
    static: np.ndarray  # float32 (H, W), fluorophores per fine pixel (arbitrary units)
    mobile: np.ndarray  # float32 (H, W)

    @property
    def shape(self) -> tuple[int, int]:
        """Fine-grid shape (rows, columns)."""
        return (int(self.static.shape[0]), int(self.static.shape[1]))

    @property
    def total(self) -> np.ndarray:
        """Static plus mobile density at t = 0."""
        total: np.ndarray = self.static + self.mobile
        return total


class _Canvas:
    """Collects weighted points on a periodic fine grid (the sample tiles the plane).

    Points are queued and splatted once per layer in :meth:`finish`: one ``bincount`` over the
    whole grid instead of one per filament.
    """

    def __init__(self, shape: tuple[int, int], pixel_um: float) -> None:
        self.shape = shape
        self.pixel_um = pixel_um
        self._points: dict[bool, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {
            False: [],
            True: [],
        }
        self.static_image = np.zeros(shape, np.float64)  # for structures drawn as images

    @property
    def size_um(self) -> tuple[float, float]:
        return (self.shape[0] * self.pixel_um, self.shape[1] * self.pixel_um)

    def splat(
        self, y_um: np.ndarray, x_um: np.ndarray, weight: np.ndarray | float, *, mobile: bool
    ) -> None:
        """Queue points (µm) with weights for the static or the mobile layer."""
        y = np.asarray(y_um, np.float64)
        wgt = np.broadcast_to(np.asarray(weight, np.float64), y.shape).ravel()
        self._points[mobile].append((y.ravel(), np.asarray(x_um, np.float64).ravel(), wgt))

    def _rasterise(self, mobile: bool) -> np.ndarray:
        """Bilinear splat of all queued points, wrapping at the edges."""
        h, w = self.shape
        if not self._points[mobile]:
            return np.zeros(h * w, np.float64)
        ys, xs, ws = (np.concatenate(parts) for parts in zip(*self._points[mobile], strict=True))
        fy, fx = ys / self.pixel_um, xs / self.pixel_um
        y0, x0 = np.floor(fy), np.floor(fx)
        dy, dx = fy - y0, fx - x0
        y0i, x0i = y0.astype(np.int64), x0.astype(np.int64)
        out = np.zeros(h * w, np.float64)
        for oy, ox, part in (
            (0, 0, (1 - dy) * (1 - dx)),
            (0, 1, (1 - dy) * dx),
            (1, 0, dy * (1 - dx)),
            (1, 1, dy * dx),
        ):
            idx = ((y0i + oy) % h) * w + (x0i + ox) % w
            out += np.bincount(idx, weights=ws * part, minlength=h * w)
        return out

    def finish(self, width_nm: float) -> tuple[np.ndarray, np.ndarray]:
        """Rasterise, smooth by the structure's physical width (Gaussian FWHM), and return."""
        sigma_px = width_nm / 1000.0 / self.pixel_um / 2.355
        out = []
        for mobile in (False, True):
            img = self._rasterise(mobile).reshape(self.shape)
            if not mobile:
                img += self.static_image
            if sigma_px > 0.3:
                img = ndimage.gaussian_filter(img, sigma_px, mode="wrap")
            out.append(img.astype(np.float32))
        return out[0], out[1]


def _worm_like_chain(
    rng: np.random.Generator,
    start_um: np.ndarray,
    angle_rad: float,
    length_um: float,
    step_um: float,
    persistence_um: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points (y, x) and tangent angles of a 2-D worm-like chain."""
    n = max(int(length_um / step_um), 2)
    dtheta = rng.normal(0.0, np.sqrt(step_um / persistence_um), n)
    theta = angle_rad + np.cumsum(dtheta)
    y = start_um[0] + np.cumsum(step_um * np.sin(theta))
    x = start_um[1] + np.cumsum(step_um * np.cos(theta))
    return y, x, theta


def _filaments(
    canvas: _Canvas,
    rng: np.random.Generator,
    count: int,
    length_um: tuple[float, float],
    persistence_um: float,
    brightness: float,
    mobile_fraction: float,
    angle_rad: float | None = None,
    angle_spread_rad: float = np.pi,
) -> None:
    step = canvas.pixel_um / 2.0
    size = np.array(canvas.size_um)
    for _ in range(count):
        start = rng.uniform(0, 1, 2) * size
        if angle_rad is None:
            theta0 = rng.uniform(0, 2 * np.pi)
        else:
            theta0 = angle_rad + rng.uniform(-angle_spread_rad, angle_spread_rad)
        length = rng.uniform(*length_um)
        y, x, _ = _worm_like_chain(rng, start, theta0, length, step, persistence_um)
        # fluorophores per unit length, with labelling variation along the filament
        weight = brightness * step * rng.gamma(8.0, 1 / 8.0, y.shape)
        canvas.splat(y, x, weight, mobile=bool(rng.random() < mobile_fraction))


def _microtubules(canvas: _Canvas, rng: np.random.Generator) -> float:
    area = canvas.size_um[0] * canvas.size_um[1]
    _filaments(canvas, rng, max(int(area / 25.0), 4), (10.0, 40.0), 30.0, 1.0, 0.15)
    return 25.0


def _f_actin(canvas: _Canvas, rng: np.random.Generator) -> float:
    area = canvas.size_um[0] * canvas.size_um[1]
    main = rng.uniform(0, np.pi)
    # stress fibres: bundles along one direction; cortical mesh: short random filaments
    _filaments(canvas, rng, max(int(area / 12.0), 4), (4.0, 15.0), 40.0, 1.6, 0.1, main, 0.15)
    _filaments(canvas, rng, max(int(area / 2.5), 8), (1.0, 4.0), 5.0, 0.6, 0.2)
    return 7.0


def _clathrin(canvas: _Canvas, rng: np.random.Generator) -> float:
    area = canvas.size_um[0] * canvas.size_um[1]
    n = rng.poisson(area * 1.2)
    centres = rng.uniform(0, 1, (n, 2)) * np.array(canvas.size_um)
    radius_um = rng.uniform(0.04, 0.08, n)
    brightness = rng.gamma(4.0, 0.25, n)
    points = 24
    ang = np.linspace(0, 2 * np.pi, points, endpoint=False)[None, :]
    # a third of the pits are still flat lattices: puncta rather than rings
    ring = rng.random(n) > 0.33
    r = np.where(ring, radius_um, radius_um * 0.3)[:, None]
    y = centres[:, :1] + r * np.sin(ang)
    x = centres[:, 1:] + r * np.cos(ang)
    w = np.repeat(brightness[:, None] * 3.0 / points, points, axis=1)
    mobile = rng.random(n) < 0.3
    canvas.splat(y[~mobile], x[~mobile], w[~mobile], mobile=False)
    canvas.splat(y[mobile], x[mobile], w[mobile], mobile=True)
    return 30.0


def _er(canvas: _Canvas, rng: np.random.Generator) -> float:
    size = np.array(canvas.size_um)
    n = max(int(size[0] * size[1] / 1.5), 8)
    nodes = rng.uniform(0, 1, (n, 2)) * size
    tri = Delaunay(nodes)
    edges = {
        tuple(sorted((int(s[i]), int(s[(i + 1) % 3])))) for s in tri.simplices for i in range(3)
    }
    step = canvas.pixel_um / 2.0
    for a, b in edges:
        p, q = nodes[a], nodes[b]
        length = float(np.hypot(*(q - p)))
        if length > 3.0 or rng.random() < 0.35:  # prune to a network of mostly 3-way junctions
            continue
        t = np.linspace(0, 1, max(int(length / step), 2))
        # tubules bow gently between junctions
        bow = rng.normal(0, 0.1) * np.sin(np.pi * t)
        normal = np.array([q[1] - p[1], p[0] - q[0]]) / max(length, 1e-9)
        y = p[0] + (q[0] - p[0]) * t + bow * normal[0] * length
        x = p[1] + (q[1] - p[1]) * t + bow * normal[1] * length
        canvas.splat(y, x, 1.0 * step, mobile=bool(rng.random() < 0.15))
    # flat sheets: filled triangles of the same graph with fenestrations
    for s in tri.simplices[rng.random(len(tri.simplices)) < 0.03]:
        corners = nodes[s]
        u = rng.random((4000, 2))
        flip = u.sum(axis=1) > 1
        u[flip] = 1 - u[flip]
        pts = (
            corners[0] + u[:, :1] * (corners[1] - corners[0]) + u[:, 1:] * (corners[2] - corners[0])
        )
        e1, e2 = corners[1] - corners[0], corners[2] - corners[0]
        area = 0.5 * abs(e1[0] * e2[1] - e1[1] * e2[0])
        keep = rng.random(len(pts)) > 0.2
        canvas.splat(pts[keep, 0], pts[keep, 1], 0.35 * area / 4000 / canvas.pixel_um, mobile=False)
    return 60.0


def _mitochondria(canvas: _Canvas, rng: np.random.Generator) -> float:
    area = canvas.size_um[0] * canvas.size_um[1]
    step = canvas.pixel_um / 2.0
    size = np.array(canvas.size_um)
    for _ in range(max(int(area / 12.0), 3)):
        start = rng.uniform(0, 1, 2) * size
        y, x, theta = _worm_like_chain(
            rng, start, rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 5.0), step, 4.0
        )
        width = rng.uniform(0.25, 0.4)
        arc = np.arange(y.size) * step
        across = np.arange(-width / 2, width / 2 + 1e-9, step)
        ny, nx = np.cos(theta)[:, None], -np.sin(theta)[:, None]
        py = y[:, None] + across[None, :] * ny
        px = x[:, None] + across[None, :] * nx
        # outer membrane brighter at the edges, cristae as stripes across the tube (~90 nm)
        edge = np.abs(across[None, :]) > width / 2 - 0.05
        cristae = 0.5 + 0.5 * np.cos(2 * np.pi * arc / 0.09)[:, None]
        weight = np.where(edge, 1.0, 0.45 * cristae) * step * step * 12.0
        canvas.splat(py, px, weight, mobile=bool(rng.random() < 0.3))
    return 40.0


def _nuclei(canvas: _Canvas, rng: np.random.Generator) -> float:
    h, w = canvas.shape
    px = canvas.pixel_um
    size = np.array(canvas.size_um)
    texture = ndimage.gaussian_filter(rng.standard_normal((h, w)), 0.15 / px, mode="wrap")
    texture = np.clip(1.0 + 0.6 * texture / (texture.std() + 1e-12), 0.0, None)
    for _ in range(max(int(size[0] * size[1] / 150.0), 1)):
        cy, cx = rng.uniform(0, 1, 2) * size
        a, b = rng.uniform(3.0, 7.5, 2)
        phi = rng.uniform(0, np.pi)
        # evaluate the ellipse only over its own (wrapped) bounding window
        half = min(int(np.ceil((max(a, b) + 0.5) / px)), h // 2 - 1, w // 2 - 1)
        rows = (int(cy / px) + np.arange(-half, half + 1)) % h
        cols = (int(cx / px) + np.arange(-half, half + 1)) % w
        off = np.arange(-half, half + 1) * px
        dy = off[:, None] - (cy - int(cy / px) * px)
        dx = off[None, :] - (cx - int(cx / px) * px)
        u = (dx * np.cos(phi) + dy * np.sin(phi)) / a
        v = (-dx * np.sin(phi) + dy * np.cos(phi)) / b
        body = np.clip((1.0 - np.sqrt(u**2 + v**2)) / 0.04, 0.0, 1.0)  # soft edge ~ 0.2 µm
        for _ in range(rng.integers(1, 4)):  # nucleoli: dark, dense-granular holes
            ry, rx = rng.uniform(-0.5, 0.5, 2) * min(a, b)
            hole = np.hypot(u * a - rx, v * b - ry) < rng.uniform(0.6, 1.2)
            body = np.where(hole, body * 0.25, body)
        window = np.ix_(rows, cols)
        canvas.static_image[window] += body * texture[window] * 0.02 * px / 0.0325
    return 0.0


_GENERATORS: dict[Structure, Callable[[_Canvas, np.random.Generator], float]] = {
    Structure.MICROTUBULES: _microtubules,
    Structure.CLATHRIN: _clathrin,
    Structure.ER: _er,
    Structure.F_ACTIN: _f_actin,
    Structure.MITOCHONDRIA: _mitochondria,
    Structure.NUCLEI: _nuclei,
}


def parse_structure(name: str | Structure) -> Structure:
    """Return the Structure for ``name`` or raise naming the allowed values."""
    try:
        return Structure(str(name).lower())
    except ValueError:
        raise ValueError(f"unknown structure {name!r}; allowed: {', '.join(STRUCTURES)}") from None


def make_sample(
    structure: str | Structure, shape: tuple[int, int], pixel_um: float, seed: int
) -> Sample:
    """Draw a sample of ``structure`` on a periodic fine grid of ``shape`` at ``pixel_um``.

    The result is reproducible from ``seed`` and normalised so that the 99.9th percentile of
    the total density is 1 (absolute brightness is set later by the photon budget).
    """
    kind = parse_structure(structure)
    if shape[0] < 16 or shape[1] < 16:
        raise ValueError(f"sample grid {shape} is too small; need at least 16x16 pixels")
    if not 0.005 <= pixel_um <= 0.0326:
        raise ValueError(
            f"sample grid pixel {pixel_um * 1000:.1f} nm is outside 5-32.6 nm "
            "(the fine grid must be at most the SR pixel size)"
        )
    rng = np.random.default_rng(seed)
    canvas = _Canvas(shape, pixel_um)
    width_nm = _GENERATORS[kind](canvas, rng)
    static, mobile = canvas.finish(width_nm)
    scale = float(np.percentile(static + mobile, 99.9)) or 1.0
    return Sample(kind, pixel_um, static / scale, mobile / scale)
