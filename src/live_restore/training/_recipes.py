"""How each shipped model is trained: architecture, data, loss, defaults. One entry per model.

``train_model`` renders the simulated fields, trains, and writes ``weights.safetensors`` and
``model.yaml`` (architecture, normalisation, optics, what it was trained on and for how long,
weights sha256) into the model's folder.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from live_restore._version import __version__
from live_restore.models import (
    DFCAN,
    ModelSpec,
    ModelTask,
    Normalisation,
    build_network,
    file_sha256,
    grow_dfcan,
    load_network,
    write_spec,
)
from live_restore.simulate import STRUCTURES, OpticsParams

from ._files import PairedImages, biosr_pairs, tiff_pairs
from ._losses import FeatureLoss, defocus_loss, mse_ssim_loss
from ._physics_prior import SIM_LOSS_TERMS, SimReconstructionLoss
from ._sim_data import SimFieldStack, SimSampler, render_sim_fields
from ._simulated import FieldStack, FocusSampler, RefocusSampler, SRSampler, render_fields
from ._trainer import BatchSource, Trainer, TrainResult, TrainSettings

__all__ = ["RECIPES", "Recipe", "train_model"]

# held-out fields use other sample seeds than training ever does
VALIDATION_SEED_OFFSET = 10_000
_FOCUS_PLANES_UM = tuple(np.round(np.arange(-2.5, 2.5001, 0.1), 2))


@dataclass(frozen=True)
class Recipe:
    """Everything ``train NAME`` needs besides the run length."""

    name: str
    task: ModelTask
    architecture: str
    arguments: dict[str, Any]
    scale: int
    multiple_of: int
    normalisation: Normalisation
    patch_size: int
    photon_range: tuple[float, float]
    defocus_planes_um: tuple[float, ...]
    steps: int
    batch_size: int
    learning_rate: float
    loss_name: str
    description: str
    fields_per_structure: int = 8
    structures: tuple[str, ...] = STRUCTURES
    extra: dict[str, Any] = field(default_factory=dict)


_SR_NORMALISATION = Normalisation(low_percentile=0.1, high_percentile=99.9, output_range=4.0)

RECIPES: dict[str, Recipe] = {
    "dfcan-sr2x": Recipe(
        "dfcan-sr2x",
        ModelTask.SUPER_RESOLUTION,
        "dfcan",
        {"in_channels": 1, "scale": 2},
        2,
        1,
        _SR_NORMALISATION,
        64,
        (10.0, 500.0),
        (0.0,),
        20_000,
        8,
        3e-4,
        "MSE + 0.1·(1 − SSIM)",
        "DFCAN as published (64 features, 4 groups x 4 FCABs), 2x",
    ),
    "dfcan-sr2x-lite": Recipe(
        "dfcan-sr2x-lite",
        ModelTask.SUPER_RESOLUTION,
        "dfcan",
        {"in_channels": 1, "scale": 2, "features": 32, "groups": 2, "blocks": 2},
        2,
        1,
        _SR_NORMALISATION,
        64,
        (10.0, 500.0),
        (0.0,),
        2_000,
        8,
        1e-3,
        "MSE + 0.1·(1 − SSIM)",
        "DFCAN structure at CPU size (32 features, 2 groups x 2 FCABs), 2x",
    ),
    "refocus": Recipe(
        "refocus",
        ModelTask.REFOCUS,
        "refocus-unet",
        {"features": 16, "depth": 3},
        1,
        8,
        Normalisation(low_percentile=0.1, high_percentile=99.9, output_range=1.0),
        64,
        (20.0, 1000.0),
        _FOCUS_PLANES_UM,
        1_200,
        8,
        1e-3,
        "MSE + 0.05·feature loss (focus-est trunk)",
        "U-Net, defocused widefield -> in focus (same grid)",
        extra={"feature_model": "focus-est", "feature_weight": 0.05},
    ),
    "dfcan-sim": Recipe(
        "dfcan-sim",
        ModelTask.SIM_RECONSTRUCTION,
        "dfcan",
        {"in_channels": 9, "scale": 2, "features": 32, "groups": 2, "blocks": 2},
        2,
        1,
        _SR_NORMALISATION,
        64,
        (10.0, 300.0),
        (0.0,),
        1_000,
        8,
        1e-3,
        "",  # from the loss terms (_loss_name)
        "DFCAN at CPU size (32 features, 2 groups x 2 FCABs) on a 9-frame SIM raw set, 2x",
        fields_per_structure=6,
        # the ablation's best at 500 CPU steps (benchmarks/RESULTS.md); the physics prior is
        # an option (loss_terms) that had not left the initial plateau by then
        extra={"loss_terms": SIM_LOSS_TERMS["mse-ssim"]},
    ),
    "focus-est": Recipe(
        "focus-est",
        ModelTask.FOCUS_ESTIMATION,
        "focusnet",
        {"features": 16, "stages": 4},
        1,
        1,
        Normalisation(low_percentile=0.1, high_percentile=99.9, output_range=1.0),
        64,
        (20.0, 1000.0),
        _FOCUS_PLANES_UM,
        10_000,
        32,
        2e-3,
        "squared error of |defocus| + Gaussian NLL of its log-variance + sign cross-entropy",
        "CNN, 64x64 patch -> |defocus| µm, its variance, and its sign",
        # 8 fields overfitted nuclei and left the sign wrong on 7 % of out-of-focus frames even
        # at 1000 photons; 64 fields and 10,000 steps cut the mean error from 0.31 to
        # 0.15-0.20 µm at >= 100 photons (benchmarks/RESULTS.md)
        fields_per_structure=64,
    ),
}


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


def _sampler(recipe: Recipe, fields: list[FieldStack] | list[SimFieldStack]) -> BatchSource:
    if recipe.task is ModelTask.SIM_RECONSTRUCTION:
        return SimSampler(
            fields,  # type: ignore[arg-type]
            recipe.patch_size,
            recipe.photon_range,
            recipe.normalisation,
        )
    kinds: dict[ModelTask, type[SRSampler] | type[RefocusSampler] | type[FocusSampler]] = {
        ModelTask.SUPER_RESOLUTION: SRSampler,
        ModelTask.REFOCUS: RefocusSampler,
        ModelTask.FOCUS_ESTIMATION: FocusSampler,
    }
    return kinds[recipe.task](
        fields,  # type: ignore[arg-type]
        recipe.patch_size,
        recipe.photon_range,
        recipe.normalisation,
    )


def _loss(
    recipe: Recipe, loss_terms: tuple[str, ...] | None = None
) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    if recipe.task is ModelTask.SIM_RECONSTRUCTION:
        return SimReconstructionLoss(
            loss_terms or recipe.extra["loss_terms"], recipe.normalisation.output_range
        )
    if recipe.task is ModelTask.FOCUS_ESTIMATION:
        return lambda net, x, y: defocus_loss(net(x), y)
    if recipe.task is ModelTask.SUPER_RESOLUTION:
        return lambda net, x, y: mse_ssim_loss(net(x), y)
    _, extractor, _ = load_network(recipe.extra["feature_model"])
    features = FeatureLoss(extractor, [1.0, 1.0, 1.0, 1.0])
    weight = float(recipe.extra["feature_weight"])

    def refocus_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        prediction = net(x)
        return nn.functional.mse_loss(prediction, y) + weight * features(prediction, y)

    return refocus_loss


def _started_from(
    recipe: Recipe, network: nn.Module, init_from: str | Path, seed: int
) -> tuple[nn.Module, str]:
    """``network`` started from a trained model, and the note that says how.

    A DFCAN may start from a smaller trained DFCAN, grown to this size (Net2Net), or from one of
    its own size; any other architecture only from a model with the same architecture and
    arguments, to fine-tune it.
    """
    start_spec, start, _ = load_network(init_from)

    def refuse_other_normalisation() -> None:
        # checked after the architecture, the mismatch a user most needs named
        if start_spec.normalisation != recipe.normalisation:
            raise ValueError(
                f"{start_spec.name} was trained with another normalisation than {recipe.name}"
            )

    if not isinstance(network, DFCAN):
        if (start_spec.architecture, start_spec.arguments) != (
            recipe.architecture,
            recipe.arguments,
        ):
            raise ValueError(
                f"{start_spec.name} ({start_spec.architecture} {start_spec.arguments}) cannot "
                f"start {recipe.name}: a {recipe.architecture} starts only from one with the "
                f"same arguments {recipe.arguments} (only a DFCAN can be grown)"
            )
        refuse_other_normalisation()
        network.load_state_dict(start.state_dict())
        how = "its weights as they were (the same architecture)"
    else:
        if not isinstance(start, DFCAN) or start_spec.scale != recipe.scale:
            raise ValueError(
                f"{start_spec.name} ({start_spec.architecture}, scale {start_spec.scale}) "
                f"cannot start {recipe.name}: it must be a DFCAN of scale {recipe.scale}"
            )
        refuse_other_normalisation()
        if start.in_channels != network.in_channels:
            raise ValueError(f"{start_spec.name} takes other input channels than {recipe.name}")
        size = (network.features, len(network.groups), network.blocks_per_group)
        network = grow_dfcan(start, *size, seed=seed)
        how = (
            "its weights as they were (the same size)"
            if (start.features, len(start.groups), start.blocks_per_group) == size
            else "grown to this size with its function kept (Net2Net: copied channels with "
            "split weights, identity FCABs and groups)"
        )
    steps = start_spec.training.get("steps", "?")
    note = (
        f"{start_spec.name} (weights sha256 {start_spec.weights_sha256[:12]}..., {steps} "
        f"steps), {how}, then trained as this entry says"
    )
    return network.train(), note


def _set_nrmse(
    inputs: torch.Tensor, targets: torch.Tensor
) -> Callable[[nn.Module], dict[str, float]]:
    """Validation NRMSE over a fixed held-out set, run in batches of 16."""
    # one span for the whole set: a nearly empty patch must not dominate the score
    span = float(targets.max() - targets.min())

    def image_error(net: nn.Module) -> dict[str, float]:
        outputs = torch.cat([net(inputs[i : i + 16]) for i in range(0, len(inputs), 16)])
        rmse = float(((outputs - targets) ** 2).mean().sqrt())
        return {"val_nrmse": rmse / span}

    return image_error


def _validation(
    recipe: Recipe, fields: list[FieldStack] | list[SimFieldStack]
) -> Callable[[nn.Module], dict[str, float]]:
    focus = recipe.task is ModelTask.FOCUS_ESTIMATION
    # 64 patches let the focus sign accuracy move only in steps of ~1/57; the estimator is
    # small enough that 512 cost little (~0.6 s a validation on 2 cores, every ~13 s of training)
    examples = 512 if focus else 64
    inputs, targets = _sampler(recipe, fields).batch(examples, np.random.default_rng(12345))
    if focus:

        def focus_error(net: nn.Module) -> dict[str, float]:
            output, defocus = net(inputs), targets[:, 0]
            # the sign only counts where it is meaningful (|defocus| >= 0.3 µm)
            away = defocus.abs() >= 0.3
            sign_right = ((output[:, 2] > 0) == (defocus > 0))[away].float().mean()
            return {
                "val_magnitude_mae_um": float((output[:, 0] - defocus.abs()).abs().mean()),
                "val_sign_accuracy": float(sign_right),
            }

        return focus_error
    return _set_nrmse(inputs, targets)


def _file_data(
    recipe: Recipe, root: Path
) -> tuple[BatchSource, Callable[[nn.Module], dict[str, float]], str]:
    if recipe.task is not ModelTask.SUPER_RESOLUTION:
        raise ValueError(f"{recipe.name} trains on simulated data only (it needs known defocus)")
    pairs = biosr_pairs(root) if any(root.glob("Cell_*")) else tiff_pairs(root)
    held_out = pairs[::10] if len(pairs) >= 10 else pairs[-1:]
    training = [p for i, p in enumerate(pairs) if i % 10] if len(pairs) >= 10 else pairs[:-1]
    if not training:
        raise ValueError(f"{root} holds {len(pairs)} pair(s): need at least 2 (one held out)")
    make = lambda chosen: PairedImages(  # noqa: E731
        chosen, recipe.patch_size, recipe.scale, recipe.normalisation
    )
    inputs, targets = make(held_out).batch(32, np.random.default_rng(12345))
    return (
        make(training),
        _set_nrmse(inputs, targets),
        f"{root}: {len(training)} pairs ({len(held_out)} held out)",
    )


def train_model(
    name: str,
    folder: Path,
    steps: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    seed: int = 0,
    resume: bool = False,
    fields_per_structure: int | None = None,
    structures: tuple[str, ...] | None = None,
    data: Path | None = None,
    progress: bool = True,
    loss_terms: tuple[str, ...] | None = None,
    init_from: str | Path | None = None,
    photon_range: tuple[float, float] | None = None,
    warmup_steps: int = 0,
) -> tuple[ModelSpec, TrainResult]:
    """Train the model ``name`` and write its files into ``folder``.

    Simulated data by default; ``data`` (super-resolution models only) is a BioSR folder
    (``Cell_*``) or a folder of paired TIFFs (``input/``, ``target/``), of which every tenth
    pair is held out for validation. ``loss_terms`` (``dfcan-sim`` only) picks the loss's
    parts for an ablation: any of ``mse-ssim``, ``frequency``, ``physics``. ``init_from``
    starts from a trained model: for a DFCAN, a smaller one grown to the recipe's size with its
    function kept (:func:`~live_restore.models.grow_dfcan`) or one of the same size; for any
    other architecture, one with the same arguments, to fine-tune it. A resumed checkpoint
    overrides it. ``photon_range`` (peak photons, low and
    high) replaces the recipe's for training and validation alike, e.g. to fine-tune for low
    light. ``warmup_steps`` ramps the learning rate up linearly before its cosine.
    """
    from safetensors.torch import save_file

    if name not in RECIPES:
        raise ValueError(f"no training recipe for {name!r}; known: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    if photon_range is not None:
        low, high = photon_range
        if not 0 < low < high:
            raise ValueError(f"photon range must be 0 < low < high, got {low}..{high}")
        recipe = replace(recipe, photon_range=(float(low), float(high)))
    chosen_structures = structures or recipe.structures
    per_structure = fields_per_structure or recipe.fields_per_structure
    settings = TrainSettings(
        steps=steps or recipe.steps,
        batch_size=batch_size or recipe.batch_size,
        learning_rate=learning_rate or recipe.learning_rate,
        seed=seed,
        validate_every=max(1, min(100, (steps or recipe.steps) // 10)),
        warmup_steps=warmup_steps,
    )
    # the network first (rendering draws no torch randomness): a wrong --init-from fails fast
    extra_training: dict[str, Any] = {}
    torch.manual_seed(seed)
    network = build_network(recipe.architecture, recipe.arguments)
    if init_from is not None:
        network, extra_training["initialised_from"] = _started_from(
            recipe, network, init_from, seed
        )
    planes = recipe.defocus_planes_um
    source: BatchSource
    if loss_terms is not None and recipe.task is not ModelTask.SIM_RECONSTRUCTION:
        raise ValueError(f"loss terms are a dfcan-sim option; {name} has one loss")
    terms = tuple(loss_terms or recipe.extra.get("loss_terms", ()))
    if data is None and recipe.task is ModelTask.SIM_RECONSTRUCTION:
        sim_fields = render_sim_fields(
            chosen_structures, per_structure, 128, seed, progress=progress
        )
        held_out_sim = render_sim_fields(
            chosen_structures, 2, 128, seed + VALIDATION_SEED_OFFSET, progress=progress
        )
        source, validation = _sampler(recipe, sim_fields), _validation(recipe, held_out_sim)
        data_text = (
            f"simulated SIM raw sets (3 angles x 3 phases, 200 nm period, m 0.8): "
            f"{', '.join(chosen_structures)}; {per_structure} fields of 128x128 px each; peak "
            f"photons per frame log-uniform {recipe.photon_range}; fresh camera noise per frame"
        )
    elif data is None:
        fields = render_fields(
            chosen_structures, per_structure, 128, seed, planes, progress=progress
        )
        held_out = render_fields(
            chosen_structures, 2, 128, seed + VALIDATION_SEED_OFFSET, planes, progress=progress
        )
        source, validation = _sampler(recipe, fields), _validation(recipe, held_out)
        data_text = (
            f"simulated: {', '.join(chosen_structures)}; {per_structure} fields of 128x128 px "
            f"each; peak photons log-uniform {recipe.photon_range}; fresh camera noise per "
            f"example; defocus planes {min(planes)}..{max(planes)} µm"
        )
    else:
        source, validation, data_text = _file_data(recipe, Path(data))
    loss = _loss(recipe, terms or None)
    trainer = Trainer(network, loss, source, validation, settings, folder)
    result = trainer.run(resume=resume, progress=progress)
    if isinstance(loss, SimReconstructionLoss):
        extra_training["loss_terms"] = list(loss.terms)
        fwhm = loss.kernel_fwhm_nm(OpticsParams().sr_pixel_um * 1000)
        if fwhm is not None:
            extra_training["learned_kernel_fwhm_nm"] = round(fwhm, 1)
    weights = folder / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(weights))
    optics = OpticsParams()
    spec = ModelSpec(
        name=name,
        task=recipe.task,
        architecture=recipe.architecture,
        arguments=recipe.arguments,
        scale=recipe.scale,
        multiple_of=recipe.multiple_of,
        patch_size=recipe.patch_size if recipe.task is ModelTask.FOCUS_ESTIMATION else None,
        normalisation=recipe.normalisation,
        optics={
            "na": optics.na,
            "emission_wavelength_nm": optics.emission_wavelength_nm,
            "pixel_um": optics.pixel_um,
        },
        training={
            "description": recipe.description,
            "data": data_text,
            "loss": _sim_loss_name(terms) if terms else recipe.loss_name,
            "steps": result.steps_done,
            "batch_size": settings.batch_size,
            "patch_size": recipe.patch_size,
            "learning_rate": (
                f"{settings.learning_rate} "
                + (f"after {warmup_steps} linear warm-up steps, " if warmup_steps else "")
                + f"cosine to {settings.final_learning_rate_fraction}x"
            ),
            "seed": seed,
            "seconds": round(result.seconds, 1),
            "device": f"{'cuda' if torch.cuda.is_available() else 'cpu'} "
            f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
            "torch": torch.__version__,
            "live_restore": __version__,
            "date": time.strftime("%Y-%m-%d"),
            "final_loss": round(result.final_loss, 6),
            "validation": {k: round(v, 5) for k, v in result.validation.items()},
            **extra_training,
        },
        weights_sha256=file_sha256(weights),
    )
    write_spec(folder, spec)
    return spec, result
