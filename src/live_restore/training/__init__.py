"""Training: simulated and file datasets, losses, the trainer and the shipped models' recipes."""

from ._checkpoint import load_checkpoint, save_checkpoint
from ._files import PairedImages, biosr_pairs, tiff_pairs
from ._losses import FeatureLoss, charbonnier_frequency_loss, defocus_loss, mse_ssim_loss
from ._recipe_book import RECIPES, Loss, Recipe, SimLossTerm
from ._recipes import (
    TrainedNetwork,
    TrainingData,
    choose_data,
    start_network,
    train_model,
    train_network,
    write_model,
)
from ._simulated import FieldStack, FocusSampler, RefocusSampler, SRSampler, render_fields
from ._trainer import Trainer, TrainResult, TrainSettings

__all__ = [
    "RECIPES",
    "FeatureLoss",
    "FieldStack",
    "FocusSampler",
    "Loss",
    "PairedImages",
    "Recipe",
    "RefocusSampler",
    "SRSampler",
    "SimLossTerm",
    "TrainResult",
    "TrainSettings",
    "TrainedNetwork",
    "Trainer",
    "TrainingData",
    "biosr_pairs",
    "charbonnier_frequency_loss",
    "choose_data",
    "defocus_loss",
    "load_checkpoint",
    "mse_ssim_loss",
    "render_fields",
    "save_checkpoint",
    "start_network",
    "tiff_pairs",
    "train_model",
    "train_network",
    "write_model",
]
