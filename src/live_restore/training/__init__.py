"""Training: simulated and file datasets, losses, the trainer and the shipped models' recipes."""

from ._checkpoint import load_checkpoint, save_checkpoint
from ._files import PairedImages, biosr_pairs, tiff_pairs
from ._losses import FeatureLoss, charbonnier_frequency_loss, defocus_loss, mse_ssim_loss
from ._recipes import RECIPES, Recipe, train_model
from ._simulated import FieldStack, FocusSampler, RefocusSampler, SRSampler, render_fields
from ._trainer import Trainer, TrainResult, TrainSettings

__all__ = [
    "RECIPES",
    "FeatureLoss",
    "FieldStack",
    "FocusSampler",
    "PairedImages",
    "Recipe",
    "RefocusSampler",
    "SRSampler",
    "TrainResult",
    "TrainSettings",
    "Trainer",
    "biosr_pairs",
    "charbonnier_frequency_loss",
    "defocus_loss",
    "load_checkpoint",
    "mse_ssim_loss",
    "render_fields",
    "save_checkpoint",
    "tiff_pairs",
    "train_model",
]
