"""The Fourier channel attention's spectrum: |FFT2(x)|^γ, fftshifted, resized to a fixed size.

Two ways to compute the same function:

- ``"fft"``: ``torch.fft.rfft2`` (cuFFT / pocketfft), then only the positions the resize reads
  (gathered from the half spectrum by conjugate symmetry), then the resize. Fast in eager
  torch; exports only as ONNX ``DFT``, which TensorRT support for is unverified
  (ENVIRONMENT.md).
- ``"dft"``: the resize keeps the spectrum at few points (bilinear: at most two neighbours per
  output row/column), so only those rows and columns of the DFT are computed, as matrix products
  with the fftshift folded into the DFT matrices. The graph is MatMul and element-wise ops only,
  which every exporter and TensorRT accept; the matrices are built for one input size at a time.
  Where the size divides the input's sides (whole frames of 256, 512, 1024 px for a 128 spectrum)
  the positions read are every k-th frequency, which are the DFT of the input folded to the
  spectrum's size: a sum over blocks and a size² DFT, a fraction of the products.

The resize is TensorFlow 1's ``resize_images(..., method=BILINEAR)`` with ``align_corners=False``
as the published Keras DFCAN used it: source coordinate = output coordinate x (in / out), no
half-pixel offset. torch's ``interpolate`` uses half-pixel centres, so it is written here as an
interpolation matrix instead.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
import torch

__all__ = ["SpectrumMethod", "attention_spectrum", "tf_bilinear_matrix"]

SpectrumMethod = Literal["fft", "dft"]

# |FFT| + eps before the power, as the published code does (keeps the gradient finite at 0)
_EPS = 1e-8


@functools.lru_cache(maxsize=64)
def tf_bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Matrix (out x in) of TF1 legacy bilinear resizing along one axis."""
    matrix = np.zeros((out_size, in_size), np.float64)
    scale = in_size / out_size
    for out_index in range(out_size):
        source = out_index * scale
        low = int(np.floor(source))
        high = min(low + 1, in_size - 1)
        frac = source - low
        matrix[out_index, low] += 1.0 - frac
        matrix[out_index, high] += frac
    matrix.setflags(write=False)
    return matrix


def _keras_fftshift_index(n: int) -> np.ndarray:
    """Frequency index at each position after the published code's fftshift.

    Keras took rows ``[-n//2:]`` then ``[:n//2]``: for even ``n`` this is ``fftshift``, for odd
    ``n`` it is ``ifftshift``. Both are a roll by ``-(n // 2)``.
    """
    return (np.arange(n) + n // 2) % n


def _read_positions(resize: np.ndarray) -> np.ndarray:
    """The input positions a resize matrix (out x in) reads: its non-zero columns."""
    return np.flatnonzero(np.abs(resize).sum(axis=0) > 0)


def _sampled_half_spectrum(rows: int, cols: int, size: int) -> tuple[torch.Tensor, ...]:
    """The cached index and resizes, made as ordinary tensors.

    Tensors made under ``torch.inference_mode`` cannot take part in autograd, so a cache first
    filled by an inference call would break training in the same process afterwards.
    """
    with torch.inference_mode(False):
        return _sampled_half_spectrum_cached(rows, cols, size)


@functools.lru_cache(maxsize=32)
def _sampled_half_spectrum_cached(rows: int, cols: int, size: int) -> tuple[torch.Tensor, ...]:
    """(flat rfft2 index, row resize, column resize) for the positions the resize reads.

    The index points into an rfft2 half spectrum for each fftshifted position the bilinear
    resize reads (|F(y, x)| = |F(-y, -x)| for a real input gives the other half); the resize
    matrices keep just those positions' columns, and are None where they are the identity.
    """
    half_cols = cols // 2 + 1
    resize_y, resize_x = tf_bilinear_matrix(rows, size), tf_bilinear_matrix(cols, size)
    used_y, used_x = _read_positions(resize_y), _read_positions(resize_x)
    freq_y, freq_x = np.meshgrid(
        _keras_fftshift_index(rows)[used_y], _keras_fftshift_index(cols)[used_x], indexing="ij"
    )
    mirrored = freq_x >= half_cols
    freq_y = np.where(mirrored, -freq_y % rows, freq_y)
    freq_x = np.where(mirrored, -freq_x % cols, freq_x)

    def reduced(matrix: np.ndarray) -> torch.Tensor | None:
        if matrix.shape[0] == matrix.shape[1] and np.array_equal(matrix, np.eye(len(matrix))):
            return None
        return torch.tensor(matrix, dtype=torch.float32)

    index = torch.from_numpy((freq_y * half_cols + freq_x).ravel())
    return index, reduced(resize_y[:, used_y]), reduced(resize_x[:, used_x])  # type: ignore[return-value]


@functools.lru_cache(maxsize=32)
def _sampled_dft(n: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cos rows, -sin rows, reduced resize matrix) for the frequencies the resize reads."""
    resize = tf_bilinear_matrix(n, out_size)
    used_positions = _read_positions(resize)
    frequencies = _keras_fftshift_index(n)[used_positions]
    angle = 2.0 * np.pi * np.outer(frequencies, np.arange(n)) / n
    return np.cos(angle), -np.sin(angle), resize[:, used_positions]


def _dft_tensors(
    n: int, out_size: int, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    cos, sin, resize = _sampled_dft(n, out_size)
    return tuple(  # type: ignore[return-value]
        torch.tensor(m, device=like.device, dtype=like.dtype) for m in (cos, sin, resize)
    )


def _amplitude(power: torch.Tensor) -> torch.Tensor:
    """sqrt(power); when training, with complex abs's zero gradient at 0 (a sqrt's is inf)."""
    if not (torch.is_grad_enabled() and power.requires_grad):
        return power.sqrt()
    nonzero = power > 0
    return torch.where(nonzero, torch.where(nonzero, power, 1.0).sqrt(), 0.0)


def attention_spectrum(
    x: torch.Tensor,
    gamma: float,
    size: int,
    method: SpectrumMethod = "fft",
    reference_px: int | None = None,
) -> torch.Tensor:
    """``resize(fftshift(c·|FFT2(x)| + eps) ** gamma)`` over the last two axes, to ``size``².

    ``c`` is 1 as published. With ``reference_px``, ``c = reference_px / sqrt(H·W)``: the
    spectrum's scale no longer grows with the input's area (an unnormalised FFT's magnitudes
    do), so a network trained on ``reference_px`` patches sees the same attention input on a
    whole frame; at ``reference_px``² inputs it is exactly the published function.
    """
    rows, cols = int(x.shape[-2]), int(x.shape[-1])
    scale = 1.0 if reference_px is None else reference_px / math.sqrt(rows * cols)
    if method == "fft":
        # the resize reads few spectrum positions, and a real input's spectrum is
        # conjugate-symmetric: a half-size rfft2, one gather of just the positions read (the
        # fftshift folded in), and the power of those alone. The same values as fft2 + abs +
        # roll + resize to float rounding, at a fraction of the memory traffic.
        index, resize_y, resize_x = _sampled_half_spectrum(rows, cols, size)
        half = torch.fft.rfft2(x.float())
        power = (half.real.square() + half.imag.square()).flatten(-2)[..., index.to(x.device)]
        magnitude = (scale * _amplitude(power) + _EPS) ** gamma
        magnitude = magnitude.unflatten(-1, (-1, size if resize_x is None else resize_x.shape[1]))
        if resize_y is not None:
            magnitude = resize_y.to(x.device) @ magnitude
        if resize_x is not None:
            magnitude = magnitude @ resize_x.to(x.device).T
        return magnitude.to(x.dtype)
    if method == "dft":
        if rows % size == 0 and cols % size == 0:
            # the resize reads every (rows / size)-th frequency, with weight 1: the spectrum of
            # the image folded (summed over its size x size blocks) at size, the same values
            # for a size² DFT instead of size·rows·cols products per map
            # rows then columns, each a sum over one axis of a 5-D view (a 6-D one ran slower
            # in OpenVINO)
            x = x.unflatten(-2, (rows // size, size)).sum(dim=-3)
            x = x.unflatten(-1, (cols // size, size)).sum(dim=-2)
            rows = cols = size
        cos_y, sin_y, resize_y = _dft_tensors(rows, size, x)
        cos_x, sin_x, resize_x = _dft_tensors(cols, size, x)
        # F = Wy x Wx^T with W = C + iS: real and imaginary parts from four real products
        left_real, left_imag = cos_y @ x, sin_y @ x
        real = left_real @ cos_x.T - left_imag @ sin_x.T
        imag = left_real @ sin_x.T + left_imag @ cos_x.T
        magnitude = (scale * torch.sqrt(real * real + imag * imag) + _EPS) ** gamma
        return resize_y @ magnitude @ resize_x.T
    raise ValueError(f"unknown spectrum method {method!r}: use 'fft' or 'dft'")
