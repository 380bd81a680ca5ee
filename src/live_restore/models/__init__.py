"""The restoration networks (PyTorch is their source of truth) and their shipped files."""

from . import _fourier as fourier  # the module itself: a zoo package bundles its source
from ._adapt_plan import MIN_FRAMES, MIN_POSITIONS, adapt_plan, least_positions
from ._architectures import ARCHITECTURES, build_network, load_network, register_architecture
from ._grow import grow_dfcan
from ._normalise import FrameScale, frame_scale, interp_inputs
from ._spec import (
    Architecture,
    ModelLoadError,
    ModelSpec,
    ModelTask,
    Normalisation,
    engines_dir,
    file_sha256,
    model_dir,
    read_spec,
    write_spec,
)
from .dfcan import DFCAN, DFGANDiscriminator
from .focusnet import FocusNet
from .interp import InterpNet
from .mfsr import MFSRNet
from .trust_head import TrustHead
from .unet import RefocusUNet

__all__ = [
    "ARCHITECTURES",
    "DFCAN",
    "MIN_FRAMES",
    "MIN_POSITIONS",
    "Architecture",
    "DFGANDiscriminator",
    "FocusNet",
    "FrameScale",
    "InterpNet",
    "MFSRNet",
    "ModelLoadError",
    "ModelSpec",
    "ModelTask",
    "Normalisation",
    "RefocusUNet",
    "TrustHead",
    "adapt_plan",
    "build_network",
    "engines_dir",
    "file_sha256",
    "fourier",
    "frame_scale",
    "grow_dfcan",
    "interp_inputs",
    "least_positions",
    "load_network",
    "model_dir",
    "read_spec",
    "register_architecture",
    "write_spec",
]
