"""napari layers for one acquisition: the raw stream beside each stage's restored stream.

Registration: napari puts pixel ``i``'s centre at ``i * scale + translate``. A stage with factor
``s`` has pixels of ``raw_um / s``; for ``s`` of them to tile one raw pixel exactly, the first
restored pixel centre sits at ``-raw_um / 2 + raw_um / (2 s)``, so the restored layer overlays
the raw one in world coordinates (µm).

Two ways to show, chosen per update by what exists:

- **frames**: 2-D layers whose data are replaced by each new frame from the hook's mailbox
  (live mode, or an MDA that writes no store). Memory: one frame per layer.
- **stores**: N-D layers backed by the OME-Zarr stores as they are written, read one plane at a
  time when napari draws it; the sliders follow the newest restored frame. Memory does not grow
  with the acquisition's length. A stage that turns a set into one image (SIM: 9 channels -> 1)
  has a store without that axis; its layer gets a length-1 axis there, stretched over raw's
  positions, so the reconstruction shows beside whichever pattern frame the slider picks.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

import numpy as np

__all__ = ["SafeStoreView", "StreamLayers", "display_range", "restored_translate_um"]

log = logging.getLogger(__name__)

RAW_LAYER = "raw"
_SPATIAL = ("y", "x")


def restored_translate_um(raw_pixel_um: float, scale: int) -> float:
    """Offset of a ``scale``-times finer layer so that its pixels tile the raw ones."""
    return -raw_pixel_um * (scale - 1) / (2 * scale)


def display_range(image: np.ndarray) -> tuple[float, float]:
    """Contrast limits from robust percentiles of a strided sample (cheap on the GUI thread)."""
    sample = np.asarray(image)[::4, ::4].astype(np.float32, copy=False)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [0.5, 99.9])
    return float(low), float(max(high, low + 1e-6))


class SafeStoreView:
    """A store view napari can draw from while the store is being written.

    A plane not written yet, or a read that races the writer, shows as zeros instead of raising
    inside napari's drawing. The shape is frozen when wrapped, so napari's dims stay consistent
    until :class:`StreamLayers` re-wraps the grown store.

    ``spanned_axes``: positions (in the shape napari sees) of length-1 axes inserted for axes
    the store does not have (a SIM set's channel axis): their index is ignored, so the one
    image shows at every position of that axis.
    """

    def __init__(self, view: Any, spanned_axes: tuple[int, ...] = ()) -> None:
        self.view = view
        self.spanned_axes = tuple(sorted(spanned_axes))
        shape = [int(n) for n in view.shape]
        for axis in self.spanned_axes:
            shape.insert(axis, 1)
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype = np.dtype(view.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        keys = key if isinstance(key, tuple) else (key,)
        keys = keys + (slice(None),) * (self.ndim - len(keys))
        inner = tuple(k for axis, k in enumerate(keys) if axis not in self.spanned_axes)
        try:
            data = np.asarray(self.view[inner])
        except Exception as e:  # the writer's thread owns the store; never break the drawing
            log.debug("store read %s failed (%r): shown as zeros", key, e)
            data = np.zeros(self._result_shape(keys), self.dtype)
        # a spanned axis that napari slices (rather than indexes) keeps its length-1 axis
        kept = 0
        for axis, k in enumerate(keys):
            if isinstance(k, slice):
                if axis in self.spanned_axes:
                    data = np.expand_dims(data, kept)
                kept += 1
        return data

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        raise TypeError("a store view is read a plane at a time, never as a whole")

    def _result_shape(self, keys: tuple[Any, ...]) -> tuple[int, ...]:
        shape = []
        for axis, (k, n) in enumerate(zip(keys, self.shape, strict=True)):
            if isinstance(k, slice) and axis not in self.spanned_axes:
                shape.append(len(range(*k.indices(n))))
        return tuple(shape)


class StreamLayers:
    """The raw layer and one restored layer per stage, in one viewer.

    Parameters
    ----------
    viewer : napari.Viewer
    raw_pixel_um : float
        The camera's pixel size at the sample (0 or unknown: 1, i.e. pixel units).
    stages : sequence of (name, scale)
        The restoration stages, in the order their layers stack (above raw).
    """

    def __init__(
        self,
        viewer: Any,
        raw_pixel_um: float,
        stages: Sequence[tuple[str, int]],
        trust_stages: Collection[str] = (),
    ) -> None:
        self.viewer = viewer
        self.raw_pixel_um = float(raw_pixel_um) if raw_pixel_um and raw_pixel_um > 0 else 1.0
        self.scales = {name: int(scale) for name, scale in stages}
        self.trust_stages = set(trust_stages)  # their output is sigma, not an image
        self.mode: Literal["frames", "stores"] | None = None
        self.layers: dict[str, Any] = {}  # RAW_LAYER or stage name -> napari Image layer
        self._views: dict[str, Any] = {}  # the unwrapped view each store layer reads
        self._shown: dict[str, np.ndarray] = {}  # frames mode: the image each layer shows

    # -- geometry ---------------------------------------------------------------------------

    def _pixel_um(self, name: str) -> float:
        return self.raw_pixel_um / self.scales.get(name, 1)

    def _placement(
        self,
        name: str,
        ndim: int,
        spans: Mapping[int, int] | None = None,
        steps: Mapping[int, float] | None = None,
    ) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The layer's scale and translate.

        ``spans``: axis -> the raw length that the layer's length-1 axis there covers.
        ``steps``: axis -> the layer's step there in raw steps (an interpolated axis: 1/k).
        """
        lead = ndim - 2
        pixel = self._pixel_um(name)
        shift = restored_translate_um(self.raw_pixel_um, self.scales.get(name, 1))
        scale = [1.0] * lead + [pixel, pixel]
        translate = [0.0] * lead + [shift, shift]
        for axis, length in (spans or {}).items():
            # one plane stretched over raw's positions 0..length-1 of that axis
            scale[axis], translate[axis] = float(length), (length - 1) / 2
        for axis, step in (steps or {}).items():
            scale[axis] = step  # a full-rate axis: k of its frames per raw step
        return tuple(scale), tuple(translate)

    @staticmethod
    def _spans(raw_view: Any, view: Any) -> dict[int, int]:
        """Raw's non-spatial axes that ``view`` lacks: position -> raw's length there."""
        raw_dims = [str(d) for d in getattr(raw_view, "dims", ())]
        own = {str(d) for d in getattr(view, "dims", ())}
        if not raw_dims or not own or own >= set(raw_dims):
            return {}
        return {
            axis: int(raw_view.shape[axis])
            for axis, label in enumerate(raw_dims)
            if label not in own and label not in _SPATIAL
        }

    # -- layers -----------------------------------------------------------------------------

    def _add(
        self,
        name: str,
        data: Any,
        limits: tuple[float, float],
        spans: Mapping[int, int] | None = None,
    ) -> None:
        view = getattr(data, "view", None)
        finer = getattr(view, "axis_scale", {})  # a full-rate store (interpolation)
        dims = [str(d) for d in getattr(view, "dims", ())]
        steps = {dims.index(a): float(f) for a, f in finer.items() if a in dims}
        scale, translate = self._placement(name, len(data.shape), spans, steps)
        kind = "raw" if name == RAW_LAYER else "trust" if name in self.trust_stages else "restored"
        # a trust map (sigma, a model's expected error) glows red over its restored layer, so
        # untrusted regions show where the user is looking
        colormap = {"raw": "gray", "trust": "red", "restored": "magma"}[kind]
        self.layers[name] = self.viewer.add_image(
            data,
            name=name,
            scale=scale,
            translate=translate,
            contrast_limits=limits,
            colormap=colormap,
            blending="translucent" if kind == "raw" else "additive",
            opacity=0.7 if kind == "trust" else 1.0,
            metadata={"live_restore": {"kind": kind}},
        )
        self.viewer.reset_view()  # layers are added once per acquisition: frame them all

    def clear(self) -> None:
        """Remove this acquisition's layers (the user may have removed some already)."""
        for layer in self.layers.values():
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.layers.clear()
        self._views.clear()
        self._shown.clear()
        self.mode = None

    def _ensure_mode(self, mode: Literal["frames", "stores"]) -> None:
        if self.mode != mode:
            self.clear()
            self.mode = mode

    # -- updates ----------------------------------------------------------------------------

    def show_frames(
        self, raw: np.ndarray, restored: Mapping[str, np.ndarray], contrast: bool
    ) -> None:
        """Show one frame per layer (replacing the previous ones).

        Unchanged layers are left alone: a new raw frame does not re-upload a restored one.
        """
        self._ensure_mode("frames")
        for name, image in ((RAW_LAYER, raw), *restored.items()):
            if image.size == 0:
                continue
            layer = self.layers.get(name)
            if layer is None or layer not in self.viewer.layers:
                self._add(name, image, display_range(image))
                self._shown[name] = image
                continue
            if self._shown.get(name) is not image:
                self._shown[name] = image
                layer.data = image
            if contrast:
                layer.contrast_limits = display_range(image)

    def show_stores(
        self,
        raw_view: Any,
        restored_views: Mapping[str, Any],
        index: Mapping[str, int],
        latest: Mapping[str, np.ndarray],
        contrast: bool,
    ) -> None:
        """Show the stores (grown as written) and move the sliders to ``index``."""
        self._ensure_mode("stores")
        views: list[tuple[str, Any]] = [(RAW_LAYER, raw_view), *restored_views.items()]
        for name, view in views:
            layer = self.layers.get(name)
            if 0 in tuple(view.shape):  # nothing written yet: napari cannot show an empty axis
                continue
            image = latest.get(name)
            limits = display_range(image) if image is not None else (0.0, 1.0)
            spans = self._spans(raw_view, view) if name != RAW_LAYER else {}
            wrapped = SafeStoreView(view, tuple(spans))
            if layer is None or layer not in self.viewer.layers:
                self._add(name, wrapped, limits, spans)
                self._views[name] = view
            else:
                grown = wrapped.shape != tuple(layer.data.shape)
                if grown or self._views.get(name) is not view:
                    layer.data = wrapped
                    self._views[name] = view
                if contrast and image is not None:
                    layer.contrast_limits = limits
        labels = tuple(getattr(raw_view, "dims", ()))
        if self.layers and len(labels) == self.viewer.dims.ndim:
            self.viewer.dims.axis_labels = labels
        self._follow(raw_view, index)

    def _follow(self, raw_view: Any, index: Mapping[str, int]) -> None:
        labels = [d for d in getattr(raw_view, "dims", ()) if d not in _SPATIAL]
        if not labels or not self.layers:
            return
        world_ndim = self.viewer.dims.ndim
        offset = world_ndim - (len(labels) + 2)  # other layers may add leading world axes
        if offset < 0:
            return
        # in world units: a full-rate layer (interpolation) makes the world's step 1/k of raw's
        point = list(self.viewer.dims.point)
        for axis, label in enumerate(labels):
            point[offset + axis] = float(index.get(label, 0))
        if tuple(point) != tuple(self.viewer.dims.point):
            for axis, value in enumerate(point):
                if value != self.viewer.dims.point[axis]:
                    self.viewer.dims.set_point(axis, value)
