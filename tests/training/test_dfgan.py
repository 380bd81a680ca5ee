"""DFGAN: the adversarial loss trains both networks apart, resumes, and its evaluation can tell
painted texture from the sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from live_restore.models import DFCAN, DFGANDiscriminator, read_spec
from live_restore.simulate import OpticsParams
from live_restore.training import RECIPES, Loss, Trainer, TrainSettings, train_model
from live_restore.training._adversarial import AdversarialLoss
from live_restore.training._gan_eval import generator_scores


class _Pairs:
    """Fixed random 16 px inputs and their 2x targets, in [0, 1]."""

    def batch(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(rng.random((size, 1, 16, 16), dtype=np.float32))
        return x, torch.nn.functional.interpolate(x, scale_factor=2.0)


def _tiny_gan() -> tuple[DFCAN, AdversarialLoss]:
    torch.manual_seed(0)
    generator = DFCAN(features=8, groups=1, blocks=1, reduction=4)
    discriminator = DFGANDiscriminator(widths=(4, 8), stride=2, dense=8)
    return generator, AdversarialLoss(discriminator, learning_rate=1e-3)


def test_the_discriminator_learns_on_its_own_steps_and_the_generator_on_its_own(
    tmp_path: Path,
) -> None:
    generator, loss = _tiny_gan()
    d_before = {k: v.clone() for k, v in loss.discriminator.state_dict().items()}
    g_before = {k: v.clone() for k, v in generator.state_dict().items()}
    settings = TrainSettings(steps=4, batch_size=2, learning_rate=1e-3, validate_every=4)
    trainer = Trainer(generator, loss, _Pairs(), lambda _: loss.scores(), settings, tmp_path)
    result = trainer.run(progress=False)
    # steps 0 and 3 updated the discriminator (one per 3 generator steps), at its own rate
    d_after = loss.discriminator.state_dict()
    assert any(not torch.equal(d_before[k], d_after[k]) for k in d_before)
    assert any(not torch.equal(g_before[k], v) for k, v in generator.state_dict().items())
    assert all(p.grad is None for p in loss.discriminator.parameters())
    assert 0.0 < result.validation["d_real"] < 1.0 and result.validation["adversarial"] > 0
    # the discriminator's weights are in the checkpoint, so a resumed run faces the same one
    saved = load_file(str(tmp_path / "checkpoint.safetensors"))
    key = "loss.discriminator.decision.weight"
    assert torch.equal(saved[key], d_after["decision.weight"])


def test_a_generator_step_never_moves_the_discriminator() -> None:
    # the Trainer's Adam holds the loss module's parameters too (it trains learnable losses):
    # on a generator-only step they must carry no gradient, so Adam leaves them alone
    generator, loss = _tiny_gan()
    optimizer = torch.optim.Adam([*generator.parameters(), *loss.parameters()], lr=1e-2)
    x, y = _Pairs().batch(2, np.random.default_rng(2))
    loss._calls = 1  # not a discriminator step
    d_before = {k: v.clone() for k, v in loss.discriminator.state_dict().items()}
    g_before = {k: v.clone() for k, v in generator.state_dict().items()}
    optimizer.zero_grad(set_to_none=True)
    loss(generator, x, y).backward()
    optimizer.step()
    assert all(torch.equal(d_before[k], v) for k, v in loss.discriminator.state_dict().items())
    assert any(not torch.equal(g_before[k], v) for k, v in generator.state_dict().items())


def test_the_generator_loss_is_the_content_loss_plus_a_tenth_of_the_adversarial() -> None:
    generator, loss = _tiny_gan()
    x, y = _Pairs().batch(2, np.random.default_rng(1))
    loss._calls = 1  # not a discriminator step
    total = float(loss(generator, x, y).detach())
    scores = loss.scores()
    assert total == pytest.approx(scores["content"] + 0.1 * scores["adversarial"], rel=1e-5)


def test_dfgan_recipes_start_from_their_dfcan_and_need_a_discriminator() -> None:
    tiny = RECIPES["dfgan-sr2x-tiny"]
    assert tiny.loss is Loss.ADVERSARIAL and tiny.start_from == "dfcan-sr2x-tiny"
    assert tiny.network == RECIPES["dfcan-sr2x-tiny"].network
    assert RECIPES["dfgan-sr2x"].network.arguments["blocks"] == 10  # DFGAN50's deeper DFCAN
    with pytest.raises(ValueError, match="discriminator goes with"):
        tiny.revised(discriminator=None)
    with pytest.raises(ValueError, match="discriminator goes with"):
        RECIPES["dfcan-sr2x-tiny"].revised(discriminator={})
    with pytest.raises(ValueError, match="for super-resolution"):
        RECIPES["refocus"].revised(
            loss=Loss.ADVERSARIAL, discriminator={}, feature_model=None, feature_weight=None
        )


def test_train_dfgan_tiny_writes_a_generator_started_from_dfcan(tmp_path: Path) -> None:
    spec, result = train_model(
        "dfgan-sr2x-tiny", tmp_path, steps=2, batch_size=2, fields_per_structure=1,
        structures=("clathrin",), progress=False,
    )  # fmt: skip
    assert result.steps_done == 2
    assert spec.training["initialised_from"].startswith("dfcan-sr2x-tiny")
    assert spec.training["discriminator"]["arguments"]["stride"] == 2
    assert "BCE" in spec.training["loss"]
    assert read_spec(tmp_path).architecture == "dfcan"


def test_painted_background_texture_shows_in_the_gan_scores() -> None:
    rng = np.random.default_rng(0)
    truth = np.zeros((128, 128))
    truth[40:88, 60:64] = 100.0  # one bright bar on a dark field
    truth = np.fft.irfft2(np.fft.rfft2(truth) * np.exp(-0.01 * np.arange(65) ** 2), (128, 128))
    truth = np.clip(truth, 0, None) + 1.0
    texture = rng.normal(0, 3, truth.shape)  # fine speckle, at every frequency
    pixel_um = OpticsParams().sr_pixel_um
    honest = generator_scores(truth, truth, pixel_um)
    painted = generator_scores(truth + texture, truth, pixel_um)
    assert painted["background_error_pct"] > honest["background_error_pct"] + 1.0
    assert painted["sr_band_power"] > 2 * honest["sr_band_power"]
    assert painted["psnr"] < honest["psnr"]
