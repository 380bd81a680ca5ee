import numpy as np
import pytest
import torch

from live_restore.inference import load_model
from live_restore.models import FocusNet, Normalisation, load_network
from live_restore.training import (
    RECIPES,
    FeatureLoss,
    FocusSampler,
    RefocusSampler,
    SRSampler,
    Trainer,
    TrainSettings,
    charbonnier_frequency_loss,
    defocus_loss,
    mse_ssim_loss,
    render_fields,
    start_network,
    train_model,
)


@pytest.fixture(scope="module")
def fields():
    return render_fields(["microtubules", "clathrin"], 1, 64, seed=5, defocus_um=(-1.0, 0.0, 1.0))


def test_samplers_give_pairs_in_network_units(fields):
    rng = np.random.default_rng(0)
    sr = SRSampler(fields, 32, (50.0, 50.0), Normalisation(output_range=4.0))
    x, y = sr.batch(3, rng)
    assert x.shape == (3, 1, 32, 32) and y.shape == (3, 1, 64, 64)
    # whole-frame percentiles: the input spans roughly [0, 1]; nearly all of the truth fits
    # the sigmoid (the brightest clathrin pits exceed 4x the input's range: they clip)
    assert -0.5 < float(x.min()) and float(x.max()) < 2.0
    assert float(y.min()) > 0.0 and float((y < 1.0).float().mean()) > 0.99
    x, y = RefocusSampler(fields, 32, (50.0, 50.0), Normalisation()).batch(2, rng)
    assert x.shape == y.shape == (2, 1, 32, 32)
    x, y = FocusSampler(fields, 32, (50.0, 50.0), Normalisation()).batch(8, rng)
    assert y.shape == (8, 1) and set(y[:, 0].tolist()) <= {-1.0, 0.0, 1.0}


def test_noise_is_fresh_for_every_example(fields):
    sampler = SRSampler(fields[:1], 64, (20.0, 20.0), Normalisation())
    a, _ = sampler.example(np.random.default_rng(1))
    b, _ = sampler.example(np.random.default_rng(2))
    assert not np.allclose(a, b)


def test_losses():
    x = torch.rand(2, 1, 32, 32)
    assert float(mse_ssim_loss(x, x)) == pytest.approx(0.0, abs=1e-5)
    assert float(mse_ssim_loss(x, 1 - x)) > 0.1
    assert float(charbonnier_frequency_loss(x, x)) == pytest.approx(1e-3, rel=1e-3)
    # (|defocus|, log-variance, sign logit) against a defocus of -1 µm
    good = defocus_loss(torch.tensor([[1.0, -4.0, -5.0]]), torch.tensor([[-1.0]]))
    wrong_magnitude = defocus_loss(torch.tensor([[0.0, -4.0, -5.0]]), torch.tensor([[-1.0]]))
    wrong_sign = defocus_loss(torch.tensor([[1.0, -4.0, 5.0]]), torch.tensor([[-1.0]]))
    assert float(wrong_magnitude) > float(good) and float(wrong_sign) > float(good) + 1
    features = FeatureLoss(FocusNet(), [1, 1, 1, 1])
    assert float(features(x, x)) == 0.0 and float(features(x, torch.rand_like(x))) > 0
    assert not any(p.requires_grad for p in features.extractor.parameters())


def test_resumed_training_equals_an_uninterrupted_run(fields, tmp_path):
    sampler = FocusSampler(fields, 32, (100.0, 100.0), Normalisation())

    def run(folder, steps, resume):
        torch.manual_seed(0)
        net = FocusNet(features=4, stages=2)
        settings = TrainSettings(steps=4, batch_size=4, learning_rate=1e-3, checkpoint_every=2)
        trainer = Trainer(
            net,
            lambda n, x, y: defocus_loss(n(x), y),
            sampler,
            lambda n: {"zero": 0.0},
            settings,
            folder,
        )
        # a 4-step schedule, interrupted after `steps`
        trainer.run(resume=resume, progress=False, stop_after=steps)
        return net

    whole = run(tmp_path / "a", 4, False)
    # resume: 2 steps, then the remaining 2 from the checkpoint, same schedule
    run(tmp_path / "b", 2, False)
    resumed = run(tmp_path / "b", 4, True)
    for p, q in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)
    assert (tmp_path / "b" / "history.csv").read_text().count("\n") == 5


def _trained_briefly(name, folder, **options):
    """``train_model`` on one field of ER, two steps of two examples unless ``options`` say."""
    settings = {"steps": 2, "batch_size": 2, "fields_per_structure": 1, "structures": ("er",)}
    return train_model(name, folder, progress=False, **(settings | options))


def test_train_model_writes_a_loadable_model(tmp_path):
    spec, result = _trained_briefly("focus-est", tmp_path / "fe")
    assert result.steps_done == 2 and "val_magnitude_mae_um" in result.validation
    loaded, network, _ = load_network(tmp_path / "fe")
    assert loaded.weights_sha256 == spec.weights_sha256 and loaded.training["steps"] == 2
    assert isinstance(network, FocusNet)


def test_biosr_and_tiff_folders_give_training_pairs(tmp_path):
    import mrcfile
    import tifffile

    from live_restore.training import PairedImages, biosr_pairs, tiff_pairs

    rng = np.random.default_rng(0)
    cell = tmp_path / "biosr" / "Cell_001"
    cell.mkdir(parents=True)
    truth = rng.random((128, 128)).astype(np.float32)
    with mrcfile.new(str(cell / "SIM_gt.mrc")) as handle:
        handle.set_data(truth)
    for level in (1, 2):
        with mrcfile.new(str(cell / f"RawSIMData_level_{level:02d}.mrc")) as handle:
            handle.set_data(rng.random((9, 64, 64)).astype(np.float32))
    pairs = biosr_pairs(tmp_path / "biosr")
    assert len(pairs) == 2 and pairs[0][0].shape == (64, 64) and pairs[0][1].shape == (128, 128)
    (tmp_path / "tiff" / "input").mkdir(parents=True)
    (tmp_path / "tiff" / "target").mkdir()
    tifffile.imwrite(tmp_path / "tiff" / "input" / "a.tif", rng.random((48, 48)).astype(np.float32))
    tifffile.imwrite(
        tmp_path / "tiff" / "target" / "a.tif", rng.random((96, 96)).astype(np.float32)
    )
    sampler = PairedImages(pairs + tiff_pairs(tmp_path / "tiff"), 32, 2, Normalisation())
    x, y = sampler.batch(4, rng)
    assert x.shape == (4, 1, 32, 32) and y.shape == (4, 1, 64, 64)
    with pytest.raises(ValueError, match="2x the input"):
        PairedImages([(np.zeros((40, 40)), np.zeros((40, 40)))], 32, 2, Normalisation())
    with pytest.raises(FileNotFoundError, match="BioSR"):
        biosr_pairs(tmp_path / "tiff")


def _started_from(name, folder, start):
    """``name`` trained one step from the model ``start``, too small a step to move it."""
    spec, _ = _trained_briefly(
        name, folder, steps=1, batch_size=1, learning_rate=1e-12, init_from=start
    )
    _, network, _ = load_network(folder)
    return spec, network


def test_dfcan_sr2x_can_start_from_the_trained_lite_model():
    # the start itself (a training step of the published size costs ~45 s of validation here;
    # train_model's --init-from path is the same call, tested on focus-est below)
    grown, note = start_network(RECIPES["dfcan-sr2x"], init_from="dfcan-sr2x-lite")
    assert note is not None and note.startswith("dfcan-sr2x-lite")
    _, lite, _ = load_network("dfcan-sr2x-lite")
    assert sum(p.numel() for p in grown.parameters()) == 1_930_753
    x = torch.rand(1, 1, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(grown(x), lite(x), atol=1e-4, rtol=0)


def test_a_model_starts_only_from_one_it_can_take_the_weights_of(tmp_path):
    with pytest.raises(ValueError, match="only a DFCAN can be grown"):
        train_model("focus-est", tmp_path / "fe", steps=1, init_from="dfcan-sr2x-lite")
    with pytest.raises(ValueError, match="must be a DFCAN"):
        train_model("dfcan-sr2x", tmp_path / "sr", steps=1, init_from="focus-est")


def test_focus_est_can_be_fine_tuned_from_the_shipped_weights(tmp_path):
    spec, tuned = _started_from("focus-est", tmp_path / "fe", "focus-est")
    assert spec.training["initialised_from"].startswith("focus-est (weights sha256")
    _, shipped, _ = load_network("focus-est")
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(tuned(x), shipped(x), atol=1e-5, rtol=0)


def test_warm_up_ramps_the_learning_rate_linearly_into_the_cosine(fields, tmp_path):
    def schedule(warmup_steps):
        settings = TrainSettings(
            steps=10, batch_size=1, learning_rate=1.0, warmup_steps=warmup_steps
        )
        trainer = Trainer(
            FocusNet(features=4, stages=1),
            lambda n, x, y: defocus_loss(n(x), y),
            FocusSampler(fields, 32, (100.0, 100.0), Normalisation()),
            lambda n: {},
            settings,
            tmp_path,
        )
        return [trainer._learning_rate(step) for step in range(10)]

    rates, cosine = schedule(4), schedule(0)
    assert rates[:4] == pytest.approx([cosine[s] * (s + 1) / 4 for s in range(4)])
    assert rates[4:] == pytest.approx(cosine[4:])
    with pytest.raises(ValueError, match="warm-up"):
        TrainSettings(steps=10, batch_size=1, learning_rate=1.0, warmup_steps=10)


def test_a_photon_range_override_trains_there_and_is_recorded(tmp_path, monkeypatch):
    from live_restore.training import _recipes

    seen = []
    original = _recipes._sampler

    def recording(recipe, chosen):
        seen.append(recipe.photon_range)
        return original(recipe, chosen)

    monkeypatch.setattr(_recipes, "_sampler", recording)
    spec, _ = _trained_briefly(
        "focus-est", tmp_path / "fe", photon_range=(15.0, 40.0), warmup_steps=1
    )
    # the training sampler and the validation set both draw from the override
    assert seen == [(15.0, 40.0), (15.0, 40.0)]
    assert "log-uniform (15.0, 40.0)" in spec.training["data"]
    assert "after 1 linear warm-up steps" in spec.training["learning_rate"]
    with pytest.raises(ValueError, match="photon range"):
        train_model("focus-est", tmp_path / "x", steps=1, photon_range=(50.0, 20.0))


def test_a_dfcan_can_start_from_one_of_its_own_size_to_fine_tune(tmp_path):
    spec, tuned = _started_from("dfcan-sr2x-lite", tmp_path / "ft", "dfcan-sr2x-lite")
    assert "its weights as they were" in spec.training["initialised_from"]
    _, lite, _ = load_network("dfcan-sr2x-lite")
    for (name, p), q in zip(tuned.state_dict().items(), lite.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)


def test_the_shipped_focus_estimator_beats_guessing_in_focus_and_reports_its_sign():
    from live_restore.training._evaluate import evaluate_focus

    session = load_model("focus-est", backend="torch-cpu")
    zs = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
    (row,) = evaluate_focus(session, ("microtubules",), (1000.0,), zs, fields=1, frame_size=128)
    scores = row.scores
    # answering "in focus" every time would err by the mean |defocus|
    assert scores["mae_um"] < 0.5 * np.mean(np.abs(zs))
    assert scores["magnitude_mae_um"] <= scores["mae_um"]
    assert 0.5 < scores["sign_accuracy"] <= 1.0
    assert scores["frames"] == len(zs)
