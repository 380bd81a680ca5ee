"""Physics of the simulated microscope: samples, optics, SIM illumination, camera noise."""

from ._camera import CameraParams, expose, expose_frame
from ._datasets import DatasetKind, DatasetSpec, write_dataset
from ._microscope import FrameRecord, FrameTruth, ManualClock, SimMicroscope
from ._optics import OpticsParams, otf_rfft, sr_otf_rfft
from ._samples import STRUCTURES, Sample, Structure, make_sample, parse_structure
from ._scenes import LayeredSample, MovingScene, axial_nyquist_um, smooth_displacement
from ._sim_pattern import SIM_PATTERN_LABELS, SimPatternParams, pattern_index_to_angle_phase

__all__ = [
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
    "axial_nyquist_um",
    "expose",
    "expose_frame",
    "make_sample",
    "otf_rfft",
    "parse_structure",
    "pattern_index_to_angle_phase",
    "smooth_displacement",
    "sr_otf_rfft",
    "write_dataset",
]
