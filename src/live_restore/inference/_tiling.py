"""Run a network over a frame in overlapping tiles, blended with tapered weights.

Tiles keep the input near the size the network was trained at and bound the memory a frame
needs. The size matters for DFCAN: its attention reads an unnormalised spectrum, whose
magnitudes grow with the input's area. For dfcan-sr2x-lite (trained on 64 px patches) 128 px
tiles beat 256 px ones by up to 1.9 dB at 20 photons on one 512x512 field, although the mean
over 8 cells hid it (29.97 / 30.02 / 30.03 dB for 64 / 128 / 256 px); a model with
``spectrum_reference_px`` is size-invariant and runs whole frames (dfcan-sr2x-tiny,
benchmarks/RESULTS.md). Any frame size works: edge tiles are shifted to fit inside the frame, and
a frame smaller than a tile is one piece (``padded_side``: its side up to a multiple of 64 px); the
cut is the same on every backend (parity), and an exported backend builds a graph for each size
it meets once (cached): one per camera ROI.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = [
    "SMALLEST_TILE_PX",
    "padded_side",
    "tile_run_shape",
    "tile_starts",
    "tiled_apply",
    "tiled_apply_stack",
]

SMALLEST_TILE_PX = 64  # the training patch of every shipped model


def padded_side(side: int, tile: int, multiple_of: int = 1) -> int:
    """The side a frame's side is reflect-padded to before it is cut into tiles.

    A side of at least a tile stays (up to the network's multiple). A shorter one is run whole,
    padded up to a multiple of ``SMALLEST_TILE_PX`` (the training patch), at most the tile: a
    128 px ROI padded to a 1024 px tile would cost 64x, and a power of two would cost up to 4x
    (a 520 px ROI as 1024 px), while multiples of 64 px bound how many graphs an exported backend
    (ONNX, OpenVINO, TensorRT) builds for the ROIs a camera offers.
    """
    need = side
    if side < tile:
        need = min(side + -side % SMALLEST_TILE_PX, tile)
    return need + -need % multiple_of


def tile_run_shape(
    frame_shape: tuple[int, int], tile: int, multiple_of: int = 1
) -> tuple[int, int]:
    """The (rows, cols) of the tiles ``tiled_apply`` runs for a frame (smaller for small frames)."""
    rows, cols = (min(tile, padded_side(side, tile, multiple_of)) for side in frame_shape)
    return rows, cols


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
    need_rows, need_cols = (
        padded_side(rows, tile, multiple_of),
        padded_side(cols, tile, multiple_of),
    )
    padded = np.pad(
        images, ((0, 0), (0, 0), (0, need_rows - rows), (0, need_cols - cols)), mode="reflect"
    )
    tile_r, tile_c = min(tile, need_rows), min(tile, need_cols)
    # a side run whole is one tile: its overlap only has to fit inside it
    overlap_r, overlap_c = min(overlap, tile_r // 2), min(overlap, tile_c // 2)
    starts = [
        (n, r, c)
        for n in range(count)
        for r in tile_starts(need_rows, tile_r, overlap_r)
        for c in tile_starts(need_cols, tile_c, overlap_c)
    ]
    out = np.zeros((count, need_rows * scale, need_cols * scale), np.float32)
    weight_sum = np.zeros((need_rows * scale, need_cols * scale), np.float32)
    taper = np.outer(
        _taper(tile_r * scale, overlap_r * scale), _taper(tile_c * scale, overlap_c * scale)
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
