"""dfcan-sim's data, physics-prior loss and training round trip."""

import numpy as np
import pytest
import torch

from live_restore.inference import SimSession, load_model
from live_restore.models import Normalisation
from live_restore.training import Trainer, TrainSettings, train_model
from live_restore.training._physics_prior import SIM_LOSS_TERMS, SimReconstructionLoss
from live_restore.training._sim_data import SimSampler, render_sim_fields


@pytest.fixture(scope="module")
def sim_fields():
    return render_sim_fields(["microtubules"], 1, 64, seed=7)


def test_sim_sampler_gives_a_nine_frame_set_and_its_2x_truth(sim_fields):
    (field,) = sim_fields
    assert field.raw.shape == (9, 64, 64) and field.sr.shape == (128, 128)
    # the patterns average to uniform light: the set's mean is the widefield image
    assert field.raw.mean() == pytest.approx(field.sr.mean(), rel=0.02)
    x, y = SimSampler(sim_fields, 32, (50.0, 50.0), Normalisation(output_range=4.0)).batch(
        3, np.random.default_rng(0)
    )
    assert x.shape == (3, 9, 32, 32) and y.shape == (3, 1, 64, 64)
    assert not torch.allclose(x[:, 0], x[:, 1])  # frames differ by their pattern


def test_the_truth_degraded_by_a_plausible_kernel_is_the_widefield_image(sim_fields):
    # at 3000 photons the noise of the 9-frame mean is small (and nothing saturates)
    x, y = SimSampler(sim_fields, 64, (3e3, 3e3), Normalisation(output_range=4.0)).batch(
        2, np.random.default_rng(1)
    )
    widefield = x.mean(dim=1, keepdim=True)

    def residual(sigma_px: float) -> float:
        loss = SimReconstructionLoss(("physics",), 4.0, kernel_px=31, start_sigma_px=sigma_px)
        with torch.no_grad():
            return float(((loss.degrade(y) - widefield) ** 2).mean())

    # measured: 0.0036 with σ 3.5 px (the best Gaussian), 0.030 without blur (σ 0.5 px)
    assert residual(3.5) < 0.2 * residual(0.5)
    assert residual(3.5) < 0.2 * float(widefield.var())
    loss = SimReconstructionLoss(("physics",))
    assert (
        float(loss.kernel_priors().detach()) < 1e-10
    )  # a normalised Gaussian: energy and symmetry kept
    with torch.no_grad():
        loss.kernel[0, 3] += 0.05  # type: ignore[index]
    assert float(loss.kernel_priors().detach()) > 1e-4


def test_unknown_loss_terms_are_refused():
    with pytest.raises(ValueError, match="unknown loss terms"):
        SimReconstructionLoss(("mse-ssim", "perceptual"))
    with pytest.raises(ValueError, match="dfcan-sim option"):
        train_model("focus-est", None, loss_terms=("mse-ssim",))  # type: ignore[arg-type]


def test_the_learnable_kernel_trains_and_resumes_with_the_network(sim_fields, tmp_path):
    sampler = SimSampler(sim_fields, 32, (100.0, 100.0), Normalisation(output_range=4.0))

    def run(folder, steps, resume):
        torch.manual_seed(0)
        from live_restore.models import build_network

        net = build_network(
            "dfcan", {"in_channels": 9, "scale": 2, "features": 16, "groups": 1, "blocks": 1}
        )
        loss = SimReconstructionLoss(("mse-ssim", "frequency", "physics"))
        settings = TrainSettings(steps=4, batch_size=2, learning_rate=1e-2, checkpoint_every=2)
        Trainer(net, loss, sampler, lambda n: {}, settings, folder).run(
            resume=resume, progress=False, stop_after=steps
        )
        return net, loss

    _, whole = run(tmp_path / "a", 4, False)
    run(tmp_path / "b", 2, False)
    _, resumed = run(tmp_path / "b", 4, True)
    start = SimReconstructionLoss(("physics",)).kernel
    assert not torch.allclose(whole.kernel, start)  # the kernel learned
    assert torch.allclose(whole.kernel, resumed.kernel, atol=1e-6)  # and was checkpointed


def test_train_model_writes_a_sim_session_that_reconstructs_raw_sets(tmp_path, sim_fields):
    spec, result = train_model(
        "dfcan-sim",
        tmp_path / "ds",
        steps=2,
        batch_size=2,
        fields_per_structure=1,
        structures=("er",),
        progress=False,
        loss_terms=SIM_LOSS_TERMS["physics"],
    )
    assert result.steps_done == 2 and "val_nrmse" in result.validation
    assert spec.training["loss_terms"] == ["mse-ssim", "frequency", "physics"]
    assert spec.training["learned_kernel_fwhm_nm"] > 0
    session = load_model(tmp_path / "ds", backend="torch-cpu")
    assert isinstance(session, SimSession) and session.grouping.size == 9
    counts = (sim_fields[0].raw * 50 + 100).astype(np.uint16)
    restored = session(counts)
    assert restored.shape == (128, 128) and restored.dtype == np.float32
    assert np.isfinite(restored).all()
    with pytest.raises(ValueError, match=r"SIM raw set of 9 frames .* got shape \(8, 64, 64\)"):
        session(counts[:8])
