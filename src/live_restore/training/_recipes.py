"""Training a shipped model from its recipe (``_recipe_book.py``).

``train_model`` is three steps, each usable alone: :func:`choose_data` renders the simulated
fields (or reads paired files) and holds some out for validation, :func:`train_network` runs the
trainer, and :func:`write_model` writes ``weights.safetensors`` and ``model.yaml``
(architecture, normalisation, optics, what it was trained on and for how long, weights sha256)
into the model's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from live_restore.models import (
    DFCAN,
    DFGANDiscriminator,
    ModelSpec,
    ModelTask,
    build_network,
    file_sha256,
    grow_dfcan,
    load_network,
    write_spec,
)
from live_restore.simulate import OpticsParams

from ._adversarial import AdversarialLoss
from ._files import PairedImages, biosr_pairs, tiff_pairs
from ._losses import FeatureLoss, defocus_loss, mse_ssim_loss
from ._physics_prior import SimReconstructionLoss
from ._recipe_book import RECIPES, Loss, Recipe, SimLossTerm
from ._sim_data import SimFieldStack, SimSampler, render_sim_fields
from ._simulated import FieldStack, FocusSampler, RefocusSampler, SRSampler, render_fields
from ._trainer import (
    BatchSource,
    LossFunction,
    Trainer,
    TrainResult,
    TrainSettings,
    Validation,
    run_facts,
)

__all__ = [
    "RECIPES",
    "Loss",
    "Recipe",
    "SimLossTerm",
    "TrainedNetwork",
    "TrainingData",
    "choose_data",
    "start_network",
    "train_model",
    "train_network",
    "write_model",
]

# held-out fields use other sample seeds than training ever does
VALIDATION_SEED_OFFSET = 10_000


def _sampler(recipe: Recipe, fields: list[FieldStack] | list[SimFieldStack]) -> BatchSource:
    task, patch, photons = recipe.network.task, recipe.patch_size_px, recipe.photon_range
    normalisation = recipe.network.normalisation
    if task is ModelTask.SIM_RECONSTRUCTION:
        return SimSampler(fields, patch, photons, normalisation)  # type: ignore[arg-type]
    kinds: dict[ModelTask, type[SRSampler] | type[RefocusSampler] | type[FocusSampler]] = {
        ModelTask.SUPER_RESOLUTION: SRSampler,
        ModelTask.REFOCUS: RefocusSampler,
        ModelTask.FOCUS_ESTIMATION: FocusSampler,
    }
    return kinds[task](fields, patch, photons, normalisation)  # type: ignore[arg-type]


def _loss(recipe: Recipe) -> LossFunction:
    if recipe.loss is Loss.SIM_RECONSTRUCTION:
        terms = tuple(term.value for term in recipe.sim_loss_terms)
        return SimReconstructionLoss(terms, recipe.network.normalisation.output_range)
    if recipe.loss is Loss.DEFOCUS:
        return lambda net, x, y: defocus_loss(net(x), y)
    if recipe.loss is Loss.MSE_SSIM:
        return lambda net, x, y: mse_ssim_loss(net(x), y)
    if recipe.loss is Loss.ADVERSARIAL:
        assert recipe.discriminator is not None
        return AdversarialLoss(DFGANDiscriminator(**recipe.discriminator))
    assert recipe.feature_model is not None and recipe.feature_weight is not None
    _, extractor, _ = load_network(recipe.feature_model)
    features = FeatureLoss(extractor, [1.0, 1.0, 1.0, 1.0])
    weight = recipe.feature_weight

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
    wanted = recipe.network

    def refuse_other_normalisation() -> None:
        # checked after the architecture, the mismatch a user most needs named
        if start_spec.normalisation != wanted.normalisation:
            raise ValueError(
                f"{start_spec.name} was trained with another normalisation than {recipe.name}"
            )

    if not isinstance(network, DFCAN):
        if (start_spec.architecture, start_spec.arguments) != (
            wanted.architecture,
            wanted.arguments,
        ):
            raise ValueError(
                f"{start_spec.name} ({start_spec.architecture} {start_spec.arguments}) cannot "
                f"start {recipe.name}: a {wanted.architecture} starts only from one with the "
                f"same arguments {wanted.arguments} (only a DFCAN can be grown)"
            )
        refuse_other_normalisation()
        network.load_state_dict(start.state_dict())
        how = "its weights as they were (the same architecture)"
    else:
        if not isinstance(start, DFCAN) or start_spec.scale != wanted.scale:
            raise ValueError(
                f"{start_spec.name} ({start_spec.architecture}, scale {start_spec.scale}) "
                f"cannot start {recipe.name}: it must be a DFCAN of scale {wanted.scale}"
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


def _set_nrmse(inputs: torch.Tensor, targets: torch.Tensor) -> Validation:
    """Validation NRMSE over a fixed held-out set, run in batches of 16."""
    # one span for the whole set: a nearly empty patch must not dominate the score
    span = float(targets.max() - targets.min())

    def image_error(net: nn.Module) -> dict[str, float]:
        outputs = torch.cat([net(inputs[i : i + 16]) for i in range(0, len(inputs), 16)])
        rmse = float(((outputs - targets) ** 2).mean().sqrt())
        return {"val_nrmse": rmse / span}

    return image_error


def _validation(recipe: Recipe, fields: list[FieldStack] | list[SimFieldStack]) -> Validation:
    focus = recipe.network.task is ModelTask.FOCUS_ESTIMATION
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


@dataclass(frozen=True)
class TrainingData:
    """What a recipe trains on, its held-out score, and model.yaml's training.data line."""

    source: BatchSource
    validation: Validation
    description: str


def _file_data(recipe: Recipe, root: Path) -> TrainingData:
    if recipe.network.task is not ModelTask.SUPER_RESOLUTION:
        raise ValueError(f"{recipe.name} trains on simulated data only (it needs known defocus)")
    pairs = biosr_pairs(root) if any(root.glob("Cell_*")) else tiff_pairs(root)
    held_out = pairs[::10] if len(pairs) >= 10 else pairs[-1:]
    training = [p for i, p in enumerate(pairs) if i % 10] if len(pairs) >= 10 else pairs[:-1]
    if not training:
        raise ValueError(f"{root} holds {len(pairs)} pair(s): need at least 2 (one held out)")
    make = lambda chosen: PairedImages(  # noqa: E731
        chosen, recipe.patch_size_px, recipe.network.scale, recipe.network.normalisation
    )
    inputs, targets = make(held_out).batch(32, np.random.default_rng(12345))
    return TrainingData(
        make(training),
        _set_nrmse(inputs, targets),
        f"{root}: {len(training)} pairs ({len(held_out)} held out)",
    )


def choose_data(
    recipe: Recipe, *, seed: int = 0, data: Path | None = None, progress: bool = True
) -> TrainingData:
    """The recipe's training batches and held-out validation.

    Simulated by default: the recipe's structures, ``fields_per_structure`` fields each rendered
    from ``seed`` and two held-out fields each from other seeds. ``data`` (super-resolution
    only) is a BioSR folder (``Cell_*``) or a folder of paired TIFFs (``input/``, ``target/``),
    of which every tenth pair is held out.
    """
    if data is not None:
        return _file_data(recipe, Path(data))
    structures = [structure.value for structure in recipe.structures]
    per_structure, photons = recipe.fields_per_structure, recipe.photon_range
    held_out_seed = seed + VALIDATION_SEED_OFFSET
    if recipe.network.task is ModelTask.SIM_RECONSTRUCTION:
        sim_fields = render_sim_fields(structures, per_structure, 128, seed, progress=progress)
        held_out_sim = render_sim_fields(structures, 2, 128, held_out_seed, progress=progress)
        return TrainingData(
            _sampler(recipe, sim_fields),
            _validation(recipe, held_out_sim),
            f"simulated SIM raw sets (3 angles x 3 phases, 200 nm period, m 0.8): "
            f"{', '.join(structures)}; {per_structure} fields of 128x128 px each; peak "
            f"photons per frame log-uniform {photons}; fresh camera noise per frame",
        )
    planes = recipe.defocus_planes_um
    fields = render_fields(structures, per_structure, 128, seed, planes, progress=progress)
    held_out = render_fields(structures, 2, 128, held_out_seed, planes, progress=progress)
    return TrainingData(
        _sampler(recipe, fields),
        _validation(recipe, held_out),
        f"simulated: {', '.join(structures)}; {per_structure} fields of 128x128 px "
        f"each; peak photons log-uniform {photons}; fresh camera noise per "
        f"example; defocus planes {min(planes)}..{max(planes)} µm",
    )


def start_network(
    recipe: Recipe, *, seed: int = 0, init_from: str | Path | None = None
) -> tuple[nn.Module, str | None]:
    """The recipe's network, seeded, or started from the trained model ``init_from``.

    A DFCAN starts from a smaller one grown to the recipe's size with its function kept
    (:func:`~live_restore.models.grow_dfcan`) or from one of the same size; any other
    architecture from one with the same arguments, to fine-tune it. Also returns the note
    model.yaml keeps of the start (None without ``init_from``).
    """
    torch.manual_seed(seed)
    network = build_network(recipe.network.architecture, recipe.network.arguments)
    if init_from is None:
        return network, None
    return _started_from(recipe, network, init_from, seed)


@dataclass(frozen=True)
class TrainedNetwork:
    """A trained network and how its run went."""

    network: nn.Module
    settings: TrainSettings
    result: TrainResult
    learned_kernel_fwhm_nm: float | None = None  # the SIM loss's physics prior, if trained


def train_network(
    recipe: Recipe,
    network: nn.Module,
    data: TrainingData,
    settings: TrainSettings,
    folder: Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TrainedNetwork:
    """Train ``network`` with the recipe's loss (checkpoints and history.csv in ``folder``)."""
    loss = _loss(recipe)
    validation = data.validation
    if isinstance(loss, AdversarialLoss):
        adversarial = loss

        # the discriminator's view since the last validation, beside the held-out error
        def validation(net: nn.Module) -> dict[str, float]:
            return {**data.validation(net), **adversarial.scores()}

    trainer = Trainer(network, loss, data.source, validation, settings, folder)
    result = trainer.run(resume=resume, progress=progress)
    fwhm = None
    if isinstance(loss, SimReconstructionLoss):
        fwhm = loss.kernel_fwhm_nm(OpticsParams().sr_pixel_um * 1000)
    return TrainedNetwork(network, settings, result, fwhm)


def write_model(
    recipe: Recipe,
    trained: TrainedNetwork,
    folder: Path,
    *,
    data_description: str,
    initialised_from: str | None = None,
) -> ModelSpec:
    """Write ``weights.safetensors`` and ``model.yaml`` into ``folder``; the spec written."""
    from safetensors.torch import save_file

    settings, result = trained.settings, trained.result
    extra_training: dict[str, Any] = {}
    if initialised_from is not None:
        extra_training["initialised_from"] = initialised_from
    if recipe.discriminator is not None:
        extra_training["discriminator"] = {
            "arguments": {
                k: list(v) if isinstance(v, tuple) else v for k, v in recipe.discriminator.items()
            },
            "learning_rate": 1e-4,
            "steps_per_generator_step": "1/3",
        }
    if recipe.loss is Loss.SIM_RECONSTRUCTION:
        extra_training["loss_terms"] = [term.value for term in recipe.sim_loss_terms]
    if trained.learned_kernel_fwhm_nm is not None:
        extra_training["learned_kernel_fwhm_nm"] = round(trained.learned_kernel_fwhm_nm, 1)
    weights = folder / "weights.safetensors"
    state = trained.network.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    optics = OpticsParams()
    warmup = settings.warmup_steps
    spec = ModelSpec(
        name=recipe.name,
        **dict(recipe.network),
        optics={
            "na": optics.na,
            "emission_wavelength_nm": optics.emission_wavelength_nm,
            "pixel_um": optics.pixel_um,
        },
        training={
            "description": recipe.description,
            "data": data_description,
            "loss": recipe.loss_description,
            "steps": result.steps_done,
            "batch_size": settings.batch_size,
            "patch_size": recipe.patch_size_px,
            "learning_rate": (
                f"{settings.learning_rate} "
                + (f"after {warmup} linear warm-up steps, " if warmup else "")
                + f"cosine to {settings.final_learning_rate_fraction}x"
            ),
            "seed": settings.seed,
            **run_facts(result),
            **extra_training,
        },
        weights_sha256=file_sha256(weights),
    )
    write_spec(folder, spec)
    return spec


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
    max_seconds: float | None = None,
) -> tuple[ModelSpec, TrainResult]:
    """Train the model ``name`` and write its files into ``folder``.

    The recipe, revised by the options given, goes through :func:`choose_data` (``data``: a
    folder of pairs instead of simulated fields), :func:`start_network` (``init_from``; a
    resumed checkpoint overrides it), :func:`train_network` and :func:`write_model`.
    ``loss_terms`` (``dfcan-sim`` only) picks the loss's parts for an ablation: any of
    ``mse-ssim``, ``frequency``, ``physics``. ``photon_range`` (peak photons, low and high)
    replaces the recipe's for training and validation alike, e.g. to fine-tune for low light.
    ``warmup_steps`` ramps the learning rate up linearly before its cosine.
    """
    if name not in RECIPES:
        raise ValueError(f"no training recipe for {name!r}; known: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    changes: dict[str, Any] = {}
    if photon_range is not None:
        changes["photon_range"] = photon_range
    if loss_terms is not None and recipe.loss is not Loss.SIM_RECONSTRUCTION:
        raise ValueError(f"loss terms are a dfcan-sim option; {name} has one loss")
    if loss_terms:
        changes["sim_loss_terms"] = loss_terms
    settings = TrainSettings(
        steps=steps or recipe.steps,
        batch_size=batch_size or recipe.batch_size,
        learning_rate=learning_rate or recipe.learning_rate,
        seed=seed,
        validate_every=max(1, min(100, (steps or recipe.steps) // 10)),
        warmup_steps=warmup_steps,
        max_seconds=max_seconds,
    )
    changes |= {k: getattr(settings, k) for k in ("steps", "batch_size", "learning_rate")}
    if fields_per_structure:
        changes["fields_per_structure"] = fields_per_structure
    if structures:
        changes["structures"] = structures
    recipe = recipe.revised(**changes)
    # the network first (rendering draws no torch randomness): a wrong --init-from fails fast
    init_from = init_from or recipe.start_from
    network, initialised_from = start_network(recipe, seed=seed, init_from=init_from)
    chosen = choose_data(recipe, seed=seed, data=data, progress=progress)
    trained = train_network(
        recipe, network, chosen, settings, folder, resume=resume, progress=progress
    )
    spec = write_model(
        recipe,
        trained,
        folder,
        data_description=chosen.description,
        initialised_from=initialised_from,
    )
    return spec, trained.result
