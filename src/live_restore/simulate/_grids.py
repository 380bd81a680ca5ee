"""Periodic and band-limited grid operations the simulated microscope renders with."""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

__all__ = [
    "add_wrapped",
    "band_limit_to_coarse",
    "coarse_band",
    "crop_wrapped",
    "next_fast_even",
    "phase_ramp",
    "wrapped_pieces",
]


def next_fast_even(n: int) -> int:
    size = sfft.next_fast_len(n, real=True)
    while size % 2:
        size = sfft.next_fast_len(size + 1, real=True)
    return int(size)


def phase_ramp(
    shape: tuple[int, int], shift_px: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Separable rfft-grid factors that shift an image by sub-pixel amounts: out(x) = in(x + s).

    Returned as a column and a row, so applying them costs two broadcasts, not a 2-D ``exp``.
    """
    ky = np.fft.fftfreq(shape[0])
    kx = np.fft.rfftfreq(shape[1])
    column = np.exp(2j * np.pi * ky * shift_px[0]).astype(np.complex64)[:, None]
    row = np.exp(2j * np.pi * kx * shift_px[1]).astype(np.complex64)[None, :]
    return column, row


def wrapped_pieces(start: int, length: int, period: int) -> list[tuple[slice, slice]]:
    """(source, destination) slices covering ``start .. start+length`` on a periodic axis."""
    if length > period:
        raise ValueError(f"window of {length} px is larger than the periodic sample ({period} px)")
    start %= period
    first = min(length, period - start)
    pieces = [(slice(start, start + first), slice(0, first))]
    if first < length:
        pieces.append((slice(0, length - first), slice(first, length)))
    return pieces


def crop_wrapped(image: np.ndarray, top: int, left: int, shape: tuple[int, int]) -> np.ndarray:
    """Copy of a window of a periodic image (plain slices: at most four pieces)."""
    out = np.empty(shape, image.dtype)
    for src_r, dst_r in wrapped_pieces(top, shape[0], image.shape[0]):
        for src_c, dst_c in wrapped_pieces(left, shape[1], image.shape[1]):
            out[dst_r, dst_c] = image[src_r, src_c]
    return out


def add_wrapped(
    image: np.ndarray, top: int, left: int, shape: tuple[int, int], value: float
) -> None:
    """Add ``value`` over a window of a periodic image, in place."""
    for src_r, _ in wrapped_pieces(top, shape[0], image.shape[0]):
        for src_c, _ in wrapped_pieces(left, shape[1], image.shape[1]):
            image[src_r, src_c] += value


def band_limit_to_coarse(fine: np.ndarray, factor: int) -> np.ndarray:
    """Exact band-limited resampling onto a grid ``factor`` times coarser.

    Values are integrals over the coarse pixel (sum of the fine pixels it covers), band-limited
    at the coarse Nyquist frequency: what the optics passes is kept exactly.
    """
    coarse_shape = (fine.shape[0] // factor, fine.shape[1] // factor)
    spec = sfft.rfft2(fine.astype(np.float32), workers=-1)
    small = coarse_band(spec, (int(fine.shape[0]), int(fine.shape[1])), coarse_shape)
    coarse: np.ndarray = sfft.irfft2(small, s=coarse_shape, workers=-1).astype(np.float32)
    return coarse


def coarse_band(
    spec: np.ndarray, fine_shape: tuple[int, int], coarse_shape: tuple[int, int]
) -> np.ndarray:
    """The part of a fine-grid rfft2 spectrum below the coarse grid's Nyquist frequency.

    Laid out as the coarse grid's rfft2 spectrum; the Nyquist row and column are dropped.
    """
    ch, cw = coarse_shape
    small = np.zeros((ch, cw // 2 + 1), np.complex64)
    small[: ch // 2] = spec[: ch // 2, : cw // 2 + 1]
    small[ch // 2 + 1 :] = spec[fine_shape[0] - ch // 2 + 1 :, : cw // 2 + 1]
    small[:, cw // 2] = 0
    return small
