"""The trust map: sigma follows the error the simulator's truth shows, and is calibrated.

The shipped default is the trust head (one pass + a small network); the 8-pass TTA candidate
stays calibrated too, and the pair estimator is checked on noise of known size."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from live_restore.inference import (
    TRUST_HEAD_FILE,
    dihedral_passes,
    head_spread,
    load_model,
    pair_spread,
    trust_of,
)
from live_restore.models import ModelLoadError, TrustHead, engines_dir
from live_restore.simulate import CameraParams, expose
from live_restore.training._simulated import render_fields
from live_restore.training._trust_calibration import block_spearman, error_in_output_units
from live_restore.training._trust_head import head_examples, train_trust_head

MODEL = "dfcan-sr2x-tiny"
HELD_OUT_SEED = 777  # neither the calibration's seeds nor training's


@pytest.fixture(scope="module")
def session():
    return load_model(MODEL, "torch-cpu")


@pytest.fixture(scope="module")
def field():
    # 128 px, the size the trust was calibrated at (64 px ROIs: 0.73-0.86 of pixels within
    # 2 sigma for the head, README)
    (stack,) = render_fields(["microtubules"], 1, 128, HELD_OUT_SEED)
    rng = np.random.default_rng(HELD_OUT_SEED)
    counts = expose(stack.widefield[stack.focus_index] * 30.0, CameraParams(), rng)
    return counts.astype(np.float32), stack.sr * 30.0


def test_the_passes_are_the_frame_restored_under_each_symmetry(session):
    rng = np.random.default_rng(0)
    frame = (rng.poisson(40, (40, 56)) + 100).astype(np.float32)  # not square: two shapes
    passes = dihedral_passes(session, frame)
    assert passes.shape == (8, 80, 112)
    np.testing.assert_allclose(passes[0], session(frame), atol=1e-4)
    flipped_back = session(np.ascontiguousarray(frame[:, ::-1]))[:, ::-1]
    np.testing.assert_allclose(passes[4], flipped_back, atol=1e-4)


@pytest.mark.parametrize("method", ["head", "tta"])
def test_sigma_is_larger_where_the_error_against_truth_is_larger(session, field, method):
    counts, truth = field
    calibration = session.trust_calibration().candidate(method)
    trust = session.with_trust(counts, calibration)
    assert trust.image.shape == trust.sigma.shape == truth.shape
    assert trust.sigma.dtype == np.float32 and (trust.sigma >= 0).all()
    error = np.abs(error_in_output_units(trust.image, truth))
    # measured on held-out microtubule fields: 0.6-0.9 for both; a margin below that
    assert block_spearman(trust.sigma, error) > 0.4
    # the worst quarter of pixels by error has clearly more sigma than the best quarter
    low, high = np.quantile(error, [0.25, 0.75])
    assert trust.sigma[error >= high].mean() > 1.5 * trust.sigma[error <= low].mean()
    # and the calibration holds on this unseen field within a margin of its 0.90-0.98 target
    assert 0.8 <= float((error <= 2 * trust.sigma).mean()) <= 1.0


def test_the_default_is_the_head_and_its_image_is_the_plain_restoration(session, field):
    counts, _ = field
    calibration = session.trust_calibration()
    assert calibration.method == "head"
    trust = session.with_trust(counts)
    np.testing.assert_array_equal(trust.image, session(counts))
    head = session._head_for(calibration)
    expected = calibration.sigma_scale * head_spread(head, counts, trust.image)
    np.testing.assert_allclose(trust.sigma, expected, rtol=1e-6)


def test_the_tta_candidate_is_the_mean_and_spread_of_the_passes(session, field):
    counts, _ = field
    calibration = session.trust_calibration().candidate("tta")
    passes = dihedral_passes(session, counts)
    trust = session.with_trust(counts, calibration)
    np.testing.assert_allclose(trust.image, passes.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(trust.sigma, trust_of(passes, calibration.sigma_scale).sigma)
    np.testing.assert_allclose(session(counts), passes[0], atol=1e-4)
    with pytest.raises(ValueError, match="no single-frame 'pair' trust calibration"):
        session.trust_calibration().candidate("pair")


def test_the_pair_spread_reads_the_size_of_independent_noise():
    rng = np.random.default_rng(0)
    truth = np.zeros((64, 128))
    noise_std = np.where(np.arange(128) < 64, 1.0, 4.0)  # quiet left half, noisy right half
    first = truth + rng.normal(0, 1, truth.shape) * noise_std
    second = truth + rng.normal(0, 1, truth.shape) * noise_std
    spread = pair_spread(first, second)
    assert spread.shape == truth.shape and spread.dtype == np.float32
    # away from the boundary the rolling estimate is each half's own noise, within 15 %
    assert spread[:, 8:48].mean() == pytest.approx(1.0, rel=0.15)
    assert spread[:, 80:120].mean() == pytest.approx(4.0, rel=0.15)
    assert not pair_spread(first, first).any()  # the same frame twice says nothing is noise


def test_training_the_head_lowers_its_laplace_likelihood_loss(session):
    examples = head_examples(session, ["microtubules"], 1, frame_size=64, exposures=4)

    def loss(head: TrustHead) -> float:
        with torch.no_grad():
            b = torch.cat([head(e.raw[None], e.restored[None]) for e in examples])
            error = torch.cat([e.error[None] for e in examples])
            return float((error.abs() / b + torch.log(b)).mean())

    torch.manual_seed(0)
    before = loss(TrustHead(2))
    trained, facts = train_trust_head(examples, 2, steps=60, batch_size=4, crop_px=32)
    assert facts["steps"] == 60
    assert loss(trained) < before - 0.5  # untrained b ~ 0.7; the errors are ~0.01 of the range
    sigma = head_spread(trained, examples[0].raw[0].numpy(), examples[0].restored[0].numpy())
    assert sigma.shape == examples[0].restored.shape[1:]


def test_a_model_without_calibration_says_how_to_make_one(tmp_path, field):
    folder = tmp_path / MODEL
    shutil.copytree(engines_dir() / MODEL, folder)
    (folder / "trust.yaml").unlink()
    uncalibrated = load_model(folder, "torch-cpu")
    with pytest.raises(ValueError, match=r"no trust calibration.*live-restore calibrate-trust"):
        uncalibrated.with_trust(field[0])
    stale = engines_dir() / MODEL / "trust.yaml"
    (folder / "trust.yaml").write_text(stale.read_text().replace("902f", "0000"))
    with pytest.raises(ValueError, match="calibrated for other weights"):
        load_model(folder, "torch-cpu").with_trust(field[0])


@pytest.mark.parametrize("damage", ["missing", "changed", "unreadable"])
def test_a_missing_or_corrupt_trust_head_is_refused_naming_the_file(tmp_path, damage):
    folder = tmp_path / MODEL
    shutil.copytree(engines_dir() / MODEL, folder)
    head = folder / TRUST_HEAD_FILE
    if damage == "missing":
        head.unlink()
    else:
        head.write_bytes(head.read_bytes()[:100])
    if damage == "unreadable":  # no hash to catch it: the safetensors parser must
        trust = folder / "trust.yaml"
        trust.write_text(
            "\n".join(x for x in trust.read_text().splitlines() if "head_sha256" not in x)
        )
    with pytest.raises(ModelLoadError, match=TRUST_HEAD_FILE):
        load_model(folder, "torch-cpu").trust_calibration()


def test_a_method_that_needs_two_frames_is_refused_by_with_trust(session, field):
    calibration = session.trust_calibration()
    pair = type(calibration)("pair", 6.4, 0.95, calibration.details)
    with pytest.raises(ValueError, match="'pair' is not a single-frame trust method"):
        session.with_trust(field[0], pair)
    tta = calibration.candidate("tta")  # a candidate describes itself, not the default
    assert tta.details["method"] == "tta" and "test-time augmentation" in tta.details["how"]


def test_calibrate_trust_makes_a_model_trust_map_usable(tmp_path, field, cli):
    folder = tmp_path / "uncalibrated"
    shutil.copytree(engines_dir() / "dfcan-sr2x-tiny", folder)
    for name in ("trust.yaml", "trust-head.safetensors"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(ValueError, match="live-restore calibrate-trust"):
        load_model(folder, "torch-cpu").with_trust(field[0])
    args = ["--head-steps", "5", "--head-fields", "1", "--fields", "1", "--frame-size", "64"]
    result = cli("calibrate-trust", str(folder), *args)
    assert result.exit_code == 0, result.output
    assert "default:" in result.output and (folder / "trust.yaml").is_file()
    trust = load_model(folder, "torch-cpu").with_trust(field[0])
    assert trust.sigma.shape == trust.image.shape and np.isfinite(trust.sigma).all()
    refused = cli("calibrate-trust", "interp-t", "--no-write")
    assert refused.exit_code == 2 and "not a single-frame restoration model" in refused.output
