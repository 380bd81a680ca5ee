"""The trust map: sigma follows the error the simulator's truth shows, and is calibrated."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from live_restore.inference import (
    TrustCalibration,
    dihedral_passes,
    load_model,
    trust_of,
)
from live_restore.models import engines_dir
from live_restore.simulate import CameraParams, expose
from live_restore.training._simulated import render_fields
from live_restore.training._trust_calibration import block_spearman, error_in_output_units

MODEL = "dfcan-sr2x-tiny"
HELD_OUT_SEED = 777  # neither the calibration's seeds nor training's


@pytest.fixture(scope="module")
def session():
    # the tiny model runs whole frames: 64 px tiles are these 64 px frames themselves, not
    # reflect-padded to its 512 px tiles (64 times the work)
    return load_model(MODEL, "torch-cpu", tile_px=64)


@pytest.fixture(scope="module")
def field():
    (stack,) = render_fields(["microtubules"], 1, 64, HELD_OUT_SEED)
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


def test_sigma_is_larger_where_the_error_against_truth_is_larger(session, field):
    counts, truth = field
    trust = session.with_trust(counts)
    assert trust.image.shape == trust.sigma.shape == truth.shape
    assert trust.sigma.dtype == np.float32 and (trust.sigma >= 0).all()
    error = np.abs(error_in_output_units(trust.image, truth))
    # measured on held-out fields: 0.6-0.9; a margin below that
    assert block_spearman(trust.sigma, error) > 0.4
    # the worst quarter of pixels by error has clearly more sigma than the best quarter
    low, high = np.quantile(error, [0.25, 0.75])
    assert trust.sigma[error >= high].mean() > 1.5 * trust.sigma[error <= low].mean()
    # and the calibration holds on this unseen field within a margin of its 0.90-0.98 target
    assert 0.8 <= float((error <= 2 * trust.sigma).mean()) <= 1.0


def test_the_plain_call_is_unchanged_and_trust_is_the_mean_of_the_passes(session, field):
    counts, _ = field
    passes = dihedral_passes(session, counts)
    trust = session.with_trust(counts)
    calibration = TrustCalibration.read(session.folder)
    np.testing.assert_allclose(trust.image, passes.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(trust.sigma, trust_of(passes, calibration.sigma_scale).sigma)
    np.testing.assert_allclose(session(counts), passes[0], atol=1e-4)


def test_a_model_without_calibration_says_how_to_make_one(tmp_path, field):
    folder = tmp_path / MODEL
    shutil.copytree(engines_dir() / MODEL, folder)
    (folder / "trust.yaml").unlink()
    uncalibrated = load_model(folder, "torch-cpu")
    with pytest.raises(ValueError, match=r"no trust calibration.*calibrate_trust.py"):
        uncalibrated.with_trust(field[0])
    stale = engines_dir() / MODEL / "trust.yaml"
    (folder / "trust.yaml").write_text(stale.read_text().replace("902f", "0000"))
    with pytest.raises(ValueError, match="calibrated for other weights"):
        load_model(folder, "torch-cpu").with_trust(field[0])
