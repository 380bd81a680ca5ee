"""pycro-manager: restore every image of an ``Acquisition`` as the hook does for an MDA.

pycro-manager drives Micro-Manager (Java, or pymmcore without Java) through its own engine, with
no pymmcore-plus MDA signals. :class:`ImageProcessor` is its ``image_process_fn``: it passes
each raw image through untouched (pycro-manager saves it) and hands a copy to a
:class:`~live_restore.acquisition.RestoreHook`, which restores it off pycro-manager's thread and
writes the same record as for an MDA: ``<stage>.ome.zarr`` per stage, ``frames.csv``,
``run.log`` and ``summary.json``, with the event's axes as indices::

    events = multi_d_acquisition_events(num_time_points=10, z_start=0, z_end=4, z_step=1)
    with ImageProcessor(HookConfig(models=["dfcan-sr2x-tiny"], output="restored"), events) as fn:
        with Acquisition(directory="raw", name="cells", image_process_fn=fn) as acq:
            acq.acquire(events)
    print(fn.report)

pycro-manager's axes become MDA indices: ``time`` -> ``t``, ``z`` -> ``z``, ``channel`` -> ``c``
(in the order the events name the channels), ``position`` -> ``p``; the events also give the
stores their shape, so a frame that never came is named in the records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import useq

from live_restore.acquisition import HookConfig, HookReport, RestoreHook, build_hook

__all__ = ["ImageProcessor", "sequence_of_events"]

_AXES = {"time": "t", "z": "z", "channel": "c", "position": "p"}


def _axes(event: Mapping[str, Any]) -> dict[str, Any]:
    axes = event.get("axes", event.get("Axes", {}))
    unknown = sorted(set(axes) - set(_AXES))
    if unknown:
        raise ValueError(
            f"pycro-manager axes {unknown} have no MDA axis here (time, z, channel and position do)"
        )
    return dict(axes)


def sequence_of_events(events: Sequence[Mapping[str, Any]]) -> tuple[useq.MDASequence, list[str]]:
    """The MDA sequence with the axes and lengths of pycro-manager ``events``, and channels.

    Axes vary fastest last, as in the events; z and positions are numbered, not placed (the
    stores need their lengths only).
    """
    values: dict[str, list[Any]] = {}  # MDA axis -> its values, in order of first use
    changes: dict[str, int] = {}  # MDA axis -> how often it changes from event to event
    previous: dict[str, Any] = {}
    for event in events:
        for axis, value in _axes(event).items():
            name = _AXES[axis]
            seen = values.setdefault(name, [])
            if value not in seen:
                seen.append(value)
            changes[name] = changes.get(name, 0) + (name in previous and previous[name] != value)
            previous[name] = value
    if not values:
        raise ValueError("the pycro-manager events have no axes (give the acquisition's events)")
    order = sorted(values, key=changes.__getitem__)  # useq names the slowest axis first
    plans: dict[str, Any] = {"axis_order": "".join(order)}
    if "t" in values:
        plans["time_plan"] = {"interval": 0, "loops": len(values["t"])}
    if "z" in values:
        plans["z_plan"] = {"relative": [float(i) for i in range(len(values["z"]))]}
    channels = [str(c) for c in values.get("c", [])]
    if channels:
        plans["channels"] = [{"config": c} for c in channels]
    if "p" in values:
        plans["stage_positions"] = [{"name": str(p)} for p in values["p"]]
    return useq.MDASequence(**plans), channels


class _Mda:
    """pymmcore-plus's MDA signals, emitted for pycro-manager's images (the hook follows them)."""

    def __init__(self) -> None:
        from pymmcore_plus.mda.events import MDASignaler

        self.events = MDASignaler()
        self.running = False

    def get_view(self) -> None:  # pycro-manager's NDTiff store is not read back: no catch-up
        return None

    def is_paused(self) -> bool:
        return False

    def is_running(self) -> bool:
        return self.running


class _PycroManagerSource:
    """What :class:`RestoreHook` asks of a core, answered for a pycro-manager acquisition."""

    def __init__(self, pixel_size_um: float) -> None:
        from pymmcore_plus.core.events import CMMCoreSignaler

        self.mda = _Mda()
        self.events = CMMCoreSignaler()
        self.pixel_size_um = pixel_size_um

    def getPixelSizeUm(self) -> float:  # Micro-Manager's names
        return self.pixel_size_um

    def getCameraDevice(self) -> str:
        return "pycro-manager"


class ImageProcessor:
    """pycro-manager's ``image_process_fn``: raw passes through, restorations are recorded.

    Parameters
    ----------
    config : HookConfig
        The stages and the output folder, as for an MDA.
    events : list of dict
        The acquisition's pycro-manager events (e.g. ``multi_d_acquisition_events(...)``):
        they give the stores their axes and lengths.
    pixel_size_um : float, optional
        The camera's pixel size at the sample; by default pycro-manager's core is asked.

    Notes
    -----
    Focus hold and light that follows trust act through pymmcore-plus's core and are refused;
    ``config.live`` does not apply (pycro-manager has no live mode).

    It never blocks pycro-manager: each call copies the image into the hook's intake (bounded
    by ``config.memory_mb``; what it cannot hold is counted and named) and returns. Leaving the
    ``with`` block waits for the restorations (bounded as :meth:`RestoreHook.close` is);
    :attr:`report` then says what became of every frame.
    """

    def __init__(
        self,
        config: HookConfig,
        events: Sequence[Mapping[str, Any]],
        pixel_size_um: float | None = None,
    ) -> None:
        if config.focus is not None and config.focus.hold is not None:
            raise ValueError(
                "focus hold moves the stage through pymmcore-plus's MDA engine; pycro-manager "
                "has its own (estimate focus without hold)"
            )
        if config.light is not None:
            raise ValueError(
                "light that follows trust sets presets through pymmcore-plus's core; "
                "pycro-manager's core is another (leave light out)"
            )
        config = config.model_copy(update={"live": False})  # pycro-manager has no live mode
        self.sequence, self.channels = sequence_of_events(events)
        if pixel_size_um is None:
            pixel_size_um = _pycromanager_pixel_size_um()
        self._source = _PycroManagerSource(float(pixel_size_um or 0.0))
        self.hook: RestoreHook = build_hook(self._source, config)
        self.report: HookReport | None = None

    def __enter__(self) -> ImageProcessor:
        self.hook.open()
        mda = self._source.mda
        mda.running = True
        info = {"pixel_size_um": self._source.pixel_size_um, "num_camera_adapter_channels": 1}
        mda.events.sequenceStarted.emit(self.sequence, {"image_infos": [info]})
        return self

    def __call__(self, image: np.ndarray, metadata: dict[str, Any]) -> tuple[np.ndarray, Any]:
        """Hand a copy to the hook; give pycro-manager back its image and metadata, untouched.

        It never raises into pycro-manager's thread: an image the events did not announce
        still reaches the hook, whose records name it as not saved.
        """
        event = useq.MDAEvent(index=self._index(metadata.get("Axes", {})))
        self._source.mda.events.frameReady.emit(np.array(image, copy=True), event, {})
        return image, metadata

    def _index(self, axes: Mapping[str, Any]) -> dict[str, int]:
        positions = [str(p.name) for p in self.sequence.stage_positions]
        index = {}
        for axis, value in axes.items():
            name = _AXES.get(axis, axis)
            if name == "c" or (name == "p" and not isinstance(value, int)):
                known = self.channels if name == "c" else positions
                # a name the events did not announce: -1, outside the store, named as unsaved
                value = known.index(str(value)) if str(value) in known else -1
            index[name] = int(value) if isinstance(value, (int, np.integer)) else -1
        order = [str(a) for a in self.sequence.axis_order]  # frames.csv: t before z, as an MDA
        return dict(
            sorted(index.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 9)
        )

    def __exit__(self, *exc: object) -> None:
        mda = self._source.mda
        mda.running = False
        mda.events.sequenceFinished.emit(self.sequence)
        self.report = self.hook.close()


def _pycromanager_pixel_size_um() -> float:
    try:
        from pycromanager import Core

        return float(Core().get_pixel_size_um())
    except Exception:  # no pycro-manager core running: the stores carry no pixel size
        return 0.0
