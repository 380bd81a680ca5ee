"""How each shipped model is trained (``RECIPES``), and the :class:`Recipe` that says it.

A recipe is typed and built by keyword: the network it trains (the :class:`Architecture` its
model.yaml holds), its simulated data, its run length and its loss (:class:`Loss`, with the
options of that loss). :meth:`Recipe.revised` gives a run's version of one (another photon
range, more steps), validated. ``_recipes.py`` trains a recipe.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from live_restore.models import Architecture, ModelTask, Normalisation
from live_restore.simulate import Structure

__all__ = ["RECIPES", "Loss", "Recipe", "SimLossTerm"]

_FOCUS_PLANES_UM = tuple(float(z) for z in np.round(np.arange(-2.5, 2.5001, 0.1), 2))


class Loss(StrEnum):
    """The loss a recipe trains with (``training/_losses.py``, ``_physics_prior.py``)."""

    MSE_SSIM = "mse-ssim"  # DFCAN's published loss: MSE + 0.1·(1 − SSIM)
    MSE_FEATURE = "mse-feature"  # MSE + feature_weight·L1 of a frozen model's activations
    DEFOCUS = "defocus"  # |defocus| error + NLL of its log-variance + sign cross-entropy
    SIM_RECONSTRUCTION = "sim-reconstruction"  # MSE + 0.1·(1 − SSIM) + the sim_loss_terms
    ADVERSARIAL = "mse-ssim-adversarial"  # DFGAN's: MSE-SSIM + 0.1·BCE of a discriminator


class SimLossTerm(StrEnum):
    """A part of the SIM reconstruction loss (``SimReconstructionLoss``)."""

    MSE_SSIM = "mse-ssim"  # always on
    FREQUENCY = "frequency"  # 0.01·Charbonnier distance of the spectra
    PHYSICS = "physics"  # the learnable kernel's degradation consistency and its priors


_LOSS_TEXT = {
    Loss.MSE_SSIM: "MSE + 0.1·(1 − SSIM)",
    Loss.DEFOCUS: "squared error of |defocus| + Gaussian NLL of its log-variance + sign "
    "cross-entropy",
    Loss.ADVERSARIAL: "MSE + 0.1·(1 − SSIM) + 0.1·BCE(discriminator calls the output real); "
    "discriminator: BCE real vs fake, Adam 1e-4, one step per 3 generator steps (DFGAN)",
}


class Recipe(BaseModel):
    """Everything ``train NAME`` needs besides the run's options. Built by keyword."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str
    """Registry name: the model's folder in engines/."""
    description: str
    """One line on the network, model.yaml's training.description."""
    network: Architecture
    """What is trained: the architecture part of the model.yaml it writes."""
    photon_range: tuple[float, float]
    """Peak photons per pixel (low, high), drawn log-uniform, for training and validation."""
    defocus_planes_um: tuple[float, ...] = (0.0,)
    """Stage defocus of the simulated widefield planes (µm)."""
    structures: tuple[Structure, ...] = tuple(Structure)
    """The simulated structures trained on."""
    fields_per_structure: int = Field(8, ge=1)
    """Simulated fields of view (128x128 px) rendered per structure."""
    patch_size_px: int = Field(64, ge=8)
    """Side of the training crops (input grid, px)."""
    steps: int = Field(ge=1)
    """Optimiser steps of a full run."""
    batch_size: int = Field(ge=1)
    """Examples per step."""
    learning_rate: float = Field(gt=0.0)
    """Peak learning rate (Adam), followed by a cosine to 0.05x."""
    loss: Loss
    """The training loss."""
    feature_model: str | None = None
    """Loss.MSE_FEATURE: the trained model whose trunk gives the features (name or folder)."""
    feature_weight: float | None = Field(None, gt=0.0)
    """Loss.MSE_FEATURE: weight of the feature term next to the MSE."""
    sim_loss_terms: tuple[SimLossTerm, ...] = ()
    """Loss.SIM_RECONSTRUCTION: the parts of the loss (an ablation's choice)."""
    discriminator: dict[str, Any] | None = None
    """Loss.ADVERSARIAL: the arguments of its ``DFGANDiscriminator``."""
    start_from: str | None = None
    """A trained model the network starts from unless ``--init-from`` says otherwise."""

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        low, high = self.photon_range
        if not 0 < low < high:
            raise ValueError(f"photon range must be 0 < low < high, got {low}..{high}")
        task = self.network.task
        if (self.loss is Loss.DEFOCUS) != (task is ModelTask.FOCUS_ESTIMATION):
            raise ValueError(f"the {self.loss} loss is for focus estimation, not {task}")
        if (self.loss is Loss.SIM_RECONSTRUCTION) != (task is ModelTask.SIM_RECONSTRUCTION):
            raise ValueError(f"the {self.loss} loss is for SIM reconstruction, not {task}")
        feature = self.loss is Loss.MSE_FEATURE
        if feature != (self.feature_model is not None and self.feature_weight is not None):
            raise ValueError("feature_model and feature_weight go with the mse-feature loss")
        if (self.discriminator is not None) != (self.loss is Loss.ADVERSARIAL):
            raise ValueError("a discriminator goes with (and is needed by) the adversarial loss")
        if self.loss is Loss.ADVERSARIAL and task is not ModelTask.SUPER_RESOLUTION:
            raise ValueError(f"the adversarial loss is DFGAN's, for super-resolution, not {task}")
        if bool(self.sim_loss_terms) != (self.loss is Loss.SIM_RECONSTRUCTION):
            raise ValueError("sim_loss_terms go with (and are needed by) the SIM loss")
        patch = self.network.patch_size
        if patch is not None and patch != self.patch_size_px:
            raise ValueError(f"a patch-wise model trains on its {patch} px patches")
        return self

    @property
    def loss_description(self) -> str:
        """The loss in words, model.yaml's training.loss."""
        if self.loss is Loss.SIM_RECONSTRUCTION:
            return _sim_loss_name(self.sim_loss_terms)
        if self.loss is Loss.MSE_FEATURE:
            return f"MSE + {self.feature_weight:g}·feature loss ({self.feature_model} trunk)"
        return _LOSS_TEXT[self.loss]

    def revised(self, **changes: Any) -> Recipe:
        """The recipe with ``changes``, validated; a ValueError says what is wrong."""
        try:
            return Recipe.model_validate({**dict(self), **changes})
        except ValidationError as error:
            raise ValueError("; ".join(_error_text(e) for e in error.errors())) from None


def _error_text(error: ErrorDetails) -> str:
    if error["type"] == "value_error":  # a validator's own words
        return str(error.get("ctx", {}).get("error"))
    return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"


def _sim_loss_name(terms: tuple[str, ...]) -> str:
    parts = ["MSE + 0.1·(1 − SSIM)"]
    if "frequency" in terms:
        parts.append("0.01·Charbonnier(spectra)")
    if "physics" in terms:
        parts.append(
            "physics prior (0.1·|binned(kernel * estimate) − widefield|² + "
            "1e-3·(energy conservation + rotational symmetry of the learned kernel))"
        )
    return " + ".join(parts)


_SR_NORMALISATION = Normalisation(low_percentile=0.1, high_percentile=99.9, output_range=4.0)
_UNIT_NORMALISATION = Normalisation(low_percentile=0.1, high_percentile=99.9, output_range=1.0)

_DFCAN_SR2X = Architecture(
    task=ModelTask.SUPER_RESOLUTION,
    architecture="dfcan",
    arguments={"in_channels": 1, "scale": 2},
    scale=2,
    normalisation=_SR_NORMALISATION,
)
_DFCAN_SR2X_TINY = Architecture(
    task=ModelTask.SUPER_RESOLUTION,
    architecture="dfcan",
    arguments={
        "in_channels": 1,
        "scale": 2,
        "features": 16,
        "groups": 2,
        "blocks": 2,
        "reduction": 4,
        "spectrum_reference_px": 64,
    },
    scale=2,
    # whole frames up to 1024 px (its attention is size-invariant): a 1024 px frame costs 4
    # 512 px tiles' work, not 9 overlapping ones
    tile_px=1024,
    cpu_backend="openvino",  # 230 vs 290 ms (onnxruntime) per 512x512 frame on 2 cores
    normalisation=_SR_NORMALISATION,
)

# DFGAN's generator is a deeper DFCAN (the authors' DFGAN50.py: 5 groups x 10 FCABs)
_DFGAN_SR2X = _DFCAN_SR2X.model_copy(
    update={"arguments": {"in_channels": 1, "scale": 2, "groups": 5, "blocks": 10}}
)

RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            name="dfcan-sr2x",
            description="DFCAN as published (64 features, 4 groups x 4 FCABs), 2x",
            network=_DFCAN_SR2X,
            photon_range=(10.0, 500.0),
            steps=20_000,
            batch_size=8,
            learning_rate=3e-4,
            loss=Loss.MSE_SSIM,
        ),
        Recipe(
            name="dfcan-sr2x-lite",
            description="DFCAN structure at CPU size (32 features, 2 groups x 2 FCABs), 2x",
            network=Architecture(
                task=ModelTask.SUPER_RESOLUTION,
                architecture="dfcan",
                arguments={"in_channels": 1, "scale": 2, "features": 32, "groups": 2, "blocks": 2},
                scale=2,
                normalisation=_SR_NORMALISATION,
            ),
            photon_range=(10.0, 500.0),
            steps=2_000,
            batch_size=8,
            learning_rate=1e-3,
            loss=Loss.MSE_SSIM,
        ),
        Recipe(
            name="dfcan-sr2x-tiny",
            description="DFCAN structure at laptop size (16 features, 2 groups x 2 FCABs, "
            "gate reduction 4, attention spectrum scaled to its 64 px training patches), 2x, run "
            "on whole frames: the CPU tier",
            network=_DFCAN_SR2X_TINY,
            photon_range=(10.0, 500.0),
            steps=6_000,
            batch_size=8,
            learning_rate=1e-3,
            loss=Loss.MSE_SSIM,
        ),
        Recipe(
            name="dfgan-sr2x",
            description="DFGAN as published: a DFCAN generator (64 features, 5 groups x 10 "
            "FCABs), grown from dfcan-sr2x, against the 12-conv discriminator (32-512 channels "
            "at full size), 2x",
            network=_DFGAN_SR2X,
            photon_range=(10.0, 500.0),
            steps=80_000,
            batch_size=2,
            learning_rate=1e-4,
            loss=Loss.ADVERSARIAL,
            discriminator={},
            start_from="dfcan-sr2x",
        ),
        Recipe(
            name="dfgan-sr2x-tiny",
            description="DFGAN at laptop size: the dfcan-sr2x-tiny generator, fine-tuned from "
            "it, against a strided discriminator (each block's first conv stride 2, 16-256 "
            "channels), 2x",
            network=_DFCAN_SR2X_TINY,
            photon_range=(10.0, 500.0),
            steps=2_000,
            batch_size=8,
            learning_rate=1e-4,
            loss=Loss.ADVERSARIAL,
            discriminator={"widths": (16, 32, 64, 128, 256), "stride": 2},
            start_from="dfcan-sr2x-tiny",
        ),
        Recipe(
            name="refocus",
            description="U-Net, defocused widefield -> in focus (same grid)",
            network=Architecture(
                task=ModelTask.REFOCUS,
                architecture="refocus-unet",
                arguments={"features": 16, "depth": 3},
                multiple_of=8,
                normalisation=_UNIT_NORMALISATION,
            ),
            photon_range=(20.0, 1000.0),
            defocus_planes_um=_FOCUS_PLANES_UM,
            steps=1_200,
            batch_size=8,
            learning_rate=1e-3,
            loss=Loss.MSE_FEATURE,
            feature_model="focus-est",
            feature_weight=0.05,
        ),
        Recipe(
            name="dfcan-sim",
            description="DFCAN at CPU size (32 features, 2 groups x 2 FCABs) on a 9-frame SIM "
            "raw set, 2x",
            network=Architecture(
                task=ModelTask.SIM_RECONSTRUCTION,
                architecture="dfcan",
                arguments={"in_channels": 9, "scale": 2, "features": 32, "groups": 2, "blocks": 2},
                scale=2,
                normalisation=_SR_NORMALISATION,
            ),
            photon_range=(10.0, 300.0),
            fields_per_structure=6,
            steps=1_000,
            batch_size=8,
            learning_rate=1e-3,
            loss=Loss.SIM_RECONSTRUCTION,
            # the ablation's best at 500 CPU steps (benchmarks/RESULTS.md); the physics prior is
            # an option (loss_terms) that had not left the initial plateau by then
            sim_loss_terms=(SimLossTerm.MSE_SSIM,),
        ),
        Recipe(
            name="focus-est",
            description="CNN, 64x64 patch -> |defocus| µm, its variance, and its sign",
            network=Architecture(
                task=ModelTask.FOCUS_ESTIMATION,
                architecture="focusnet",
                arguments={"features": 16, "stages": 4},
                patch_size=64,
                normalisation=_UNIT_NORMALISATION,
            ),
            photon_range=(20.0, 1000.0),
            defocus_planes_um=_FOCUS_PLANES_UM,
            # 8 fields overfitted nuclei and left the sign wrong on 7 % of out-of-focus frames
            # even at 1000 photons; 64 fields and 10,000 steps cut the mean error from 0.31 to
            # 0.15-0.20 µm at >= 100 photons (benchmarks/RESULTS.md)
            fields_per_structure=64,
            steps=10_000,
            batch_size=32,
            learning_rate=2e-3,
            loss=Loss.DEFOCUS,
        ),
    )
}
