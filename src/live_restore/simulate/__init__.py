"""Physics of the simulated microscope: samples, optics, SIM illumination, camera noise."""

from ._camera import CameraParams, expose, expose_frame
from ._datasets import DatasetKind, DatasetSpec, write_dataset
from ._microscope import FrameRecord, FrameTruth, ManualClock, SimMicroscope
from ._optics import OpticsParams, otf_rfft, sr_otf_rfft
from ._samples import STRUCTURES, Sample, Structure, make_sample, parse_structure
from ._scenes import LayeredSample, MovingScene, axial_nyquist_um, smooth_displacement
from ._sim_pattern import SIM_PATTERN_LABELS, SimPatternParams, pattern_index_to_angle_phase
from ._world import (
    FAMILIES,
    WorldCamera,
    WorldDraw,
    draw_world,
    layered_sample,
    world_stack,
    write_stack_ome_zarr,
)

__all__ = [
    "FAMILIES",
    "SIM_PATTERN_LABELS",
    "STRUCTURES",
    "CameraParams",
    "DatasetKind",
    "DatasetSpec",
    "FrameRecord",
    "FrameTruth",
    "LayeredSample",
    "ManualClock",
    "MovingScene",
    "OpticsParams",
    "Sample",
    "SimMicroscope",
    "SimPatternParams",
    "Structure",
    "WorldCamera",
    "WorldDraw",
    "axial_nyquist_um",
    "draw_world",
    "expose",
    "expose_frame",
    "layered_sample",
    "make_sample",
    "otf_rfft",
    "parse_structure",
    "pattern_index_to_angle_phase",
    "smooth_displacement",
    "sr_otf_rfft",
    "world_stack",
    "write_dataset",
    "write_stack_ome_zarr",
]
