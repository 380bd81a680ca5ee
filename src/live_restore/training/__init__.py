"""Training: simulated and file datasets, losses, the trainer and the shipped models' recipes."""

from ._adapt import AdaptResult, adapt_model, read_stack
from ._checkpoint import load_checkpoint, save_checkpoint
from ._evaluate import EvalRow, evaluate, plot_sr_matrix, record_summary, write_table
from ._files import PairedImages, biosr_pairs, tiff_pairs
from ._gan_eval import compare_generators
from ._interp import INTERP_MODELS, train_interp
from ._interp_eval import EVALUATION_SEED as INTERP_EVALUATION_SEED
from ._interp_eval import evaluate_interp, plot_interp
from ._losses import FeatureLoss, charbonnier_frequency_loss, defocus_loss, mse_ssim_loss
from ._mfsr import train_mfsr
from ._mfsr_eval import EVALUATION_SEED as MFSR_EVALUATION_SEED
from ._mfsr_eval import evaluate_mfsr
from ._precision_check import PrecisionCheck, check_precision, record_precisions
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
from ._sim_data import render_sim_fields
from ._simulated import FieldStack, FocusSampler, RefocusSampler, SRSampler, render_fields
from ._trainer import Trainer, TrainResult, TrainSettings
from ._trust_candidates import TrustCandidates, calibrate_model_trust
from ._world_interp import WorldExamples, WorldSampler, finetune_world, render_world_examples

__all__ = [
    "INTERP_EVALUATION_SEED",
    "INTERP_MODELS",
    "MFSR_EVALUATION_SEED",
    "RECIPES",
    "AdaptResult",
    "EvalRow",
    "FeatureLoss",
    "FieldStack",
    "FocusSampler",
    "Loss",
    "PairedImages",
    "PrecisionCheck",
    "Recipe",
    "RefocusSampler",
    "SRSampler",
    "SimLossTerm",
    "TrainResult",
    "TrainSettings",
    "TrainedNetwork",
    "Trainer",
    "TrainingData",
    "TrustCandidates",
    "WorldExamples",
    "WorldSampler",
    "adapt_model",
    "biosr_pairs",
    "calibrate_model_trust",
    "charbonnier_frequency_loss",
    "check_precision",
    "choose_data",
    "compare_generators",
    "defocus_loss",
    "evaluate",
    "evaluate_interp",
    "evaluate_mfsr",
    "finetune_world",
    "load_checkpoint",
    "mse_ssim_loss",
    "plot_interp",
    "plot_sr_matrix",
    "read_stack",
    "record_precisions",
    "record_summary",
    "render_fields",
    "render_sim_fields",
    "render_world_examples",
    "save_checkpoint",
    "start_network",
    "tiff_pairs",
    "train_interp",
    "train_mfsr",
    "train_model",
    "train_network",
    "write_model",
    "write_table",
]
