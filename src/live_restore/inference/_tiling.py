"""Run a network over a frame in overlapping tiles, blended with tapered weights.

Tiles keep the input near the size the network was trained at and bound the memory a frame
needs. The size matters for DFCAN: its attention reads an unnormalised spectrum, whose
magnitudes grow with the input's area. For dfcan-sr2x-lite (trained on 64 px patches) 128 px
tiles beat 256 px ones by up to 1.9 dB at 20 photons on one 512x512 field, although the mean
over 8 cells hid it (29.97 / 30.02 / 30.03 dB for 64 / 128 / 256 px); a model with
``spectrum_reference_px`` is size-invariant and runs whole frames (dfcan-sr2x-tiny,
benchmarks/RESULTS.md). Any frame size works: edge tiles are shifted to fit inside the frame, and
frames smaller than a tile are reflect-padded (every backend gets the same shape: parity).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["tile_starts", "tiled_apply", "tiled_apply_stack"]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``length`` with tiles of ``tile`` overlapping by >= ``overlap``."""
    if length <= tile:
        return [0]
    step = max(tile - overlap, 1)
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _taper(tile: int, overlap: int) -> np.ndarray:
    """Weights along one tile side.

    1 in the middle, ~0 on the outer half of the overlap (where the network saw its own zero
    padding), a raised-cosine ramp on the inner half. Never exactly 0, so a pixel that only one
    tile covers (the frame's edge) keeps that tile's value.
    """
    weights = np.ones(tile, np.float32)
    if overlap > 1:
        margin = overlap // 2
        ramp = np.full(overlap, 1e-6, np.float32)
        width = overlap - margin
        ramp[margin:] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(width) + 0.5) / width)
        weights[:overlap] = np.maximum(ramp, 1e-6)
        weights[-overlap:] = weights[:overlap][::-1]
    return weights


def tiled_apply(
    run: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    tile: int,
    overlap: int,
    scale: int,
    multiple_of: int = 1,
    batch: int = 8,
) -> np.ndarray:
    """``run`` over ``image`` in tiles; the blended 2-D output.

    ``image``: ``(H, W)``, or ``(C, H, W)`` for a multi-channel input (a SIM raw set), in
    network units; every channel is cut at the same place.
    """
    channels_first = image if image.ndim == 3 else image[None]
    return tiled_apply_stack(run, channels_first[None], tile, overlap, scale, multiple_of, batch)[0]


def tiled_apply_stack(
    run: Callable[[torch.Tensor], torch.Tensor],
    images: np.ndarray,
    tile: int,
    overlap: int,
    scale: int,
    multiple_of: int = 1,
    batch: int = 8,
) -> np.ndarray:
    """``run`` over several same-size ``(N, C, H, W)`` images; ``(N, s·H, s·W)`` outputs.

    The tiles of all images share the network calls (``batch`` tiles per call), so a stack
    costs fewer, fuller calls than its images one by one: how the hook catches up when it
    falls behind. Each output equals what :func:`tiled_apply` gives for its image alone.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {images.shape}")
    count, _, rows, cols = images.shape
    # pad small or odd frames up to something the network accepts
    need_rows = max(tile if rows < tile else rows, 1)
    need_cols = max(tile if cols < tile else cols, 1)
    need_rows += -need_rows % multiple_of
    need_cols += -need_cols % multiple_of
    padded = np.pad(
        images, ((0, 0), (0, 0), (0, need_rows - rows), (0, need_cols - cols)), mode="reflect"
    )
    tile_r, tile_c = min(tile, need_rows), min(tile, need_cols)
    starts = [
        (n, r, c)
        for n in range(count)
        for r in tile_starts(need_rows, tile_r, overlap)
        for c in tile_starts(need_cols, tile_c, overlap)
    ]
    out = np.zeros((count, need_rows * scale, need_cols * scale), np.float32)
    weight_sum = np.zeros((need_rows * scale, need_cols * scale), np.float32)
    taper = np.outer(
        _taper(tile_r * scale, overlap * scale), _taper(tile_c * scale, overlap * scale)
    )
    for first in range(0, len(starts), batch):
        group = starts[first : first + batch]
        tiles = np.stack([padded[n, :, r : r + tile_r, c : c + tile_c] for n, r, c in group])
        with torch.inference_mode():
            results = run(torch.from_numpy(tiles)).float().cpu().numpy()[:, 0]
        for (n, r, c), result in zip(group, results, strict=True):
            window = (
                slice(r * scale, (r + tile_r) * scale),
                slice(c * scale, (c + tile_c) * scale),
            )
            out[(n, *window)] += result * taper
            if n == 0:  # every image is cut at the same places: one weight map serves all
                weight_sum[window] += taper
    blended: np.ndarray = out / weight_sum
    return blended[:, : rows * scale, : cols * scale]
