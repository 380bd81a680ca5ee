"""The trust map live: ``MODEL+trust`` saves sigma beside the restored store, names the untrusted
share of each frame in frames.csv, and refuses models without a per-pixel trust."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import useq
import zarr

from live_restore.acquisition import HookConfig, RestoreHook, build_hook, make_restorer
from live_restore.acquisition._build import build_parts
from live_restore.acquisition._trust_stage import TrustStage, untrusted_fraction
from live_restore.inference import load_model

FRAMES = 3


def test_sigma_is_saved_beside_the_restored_store_with_its_provenance(core, tmp_path):
    core.setConfig("LightLevel", "Low")  # photon-starved: the case trust is for
    # tiles of the 64 px frames themselves (the tiny model runs whole frames; its 512 px tiles
    # would pad each one 64-fold); make_restorer("dfcan-sr2x-tiny+trust") builds the same stage
    session = load_model("dfcan-sr2x-tiny", tile_px=64)
    stages = [session, TrustStage(load_model("dfcan-sr2x-tiny", tile_px=64))]
    out = tmp_path / "run"
    with RestoreHook(core, stages, output=out) as hook:
        hook.run(useq.MDASequence(time_plan={"interval": 0, "loops": FRAMES}))
    restored = np.asarray(zarr.open_group(str(out / "dfcan-sr2x-tiny.ome.zarr"))["0"][:])
    trust = zarr.open_group(str(out / "dfcan-sr2x-tiny-trust.ome.zarr"), mode="r")
    sigma = np.asarray(trust["0"][:])
    assert sigma.shape == restored.shape == (FRAMES, 128, 128)
    assert np.isfinite(sigma).all() and (sigma >= 0).all() and sigma.std() > 0
    provenance = trust.attrs["live_restore"]
    assert provenance["model"] == "dfcan-sr2x-tiny-trust"
    assert float(provenance["trust_sigma_scale"]) > 0 and "sigma" in provenance["output"]
    with (out / "frames.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["stage"] == "dfcan-sr2x-tiny-trust"]
    assert [r["status"] for r in rows] == ["restored"] * FRAMES
    assert all(r["flags"].startswith("untrusted ") and r["flags"].endswith("%") for r in rows)
    assert hook.report.errors == 0


def test_the_untrusted_share_counts_pixels_whose_sigma_exceeds_a_tenth_of_the_span():
    raw = np.zeros((8, 8))
    raw[0, 0], raw[7, 7] = 0.0, 100.0  # span ~ 100 counts (0.1-99.9 percentiles)
    sigma = np.zeros((16, 16))
    sigma[:4] = 50.0  # a quarter of the field expects errors of half the span
    assert untrusted_fraction(sigma, raw) == pytest.approx(0.25)
    assert untrusted_fraction(sigma * 0.01, raw) == 0.0


@pytest.mark.parametrize(
    ("name", "message"),
    [("interp-t+trust", "single-frame models only"), ("refocus+trust", "no trust calibration")],
)
def test_a_model_without_a_trust_map_is_refused_up_front(core, name, message):
    with pytest.raises(ValueError, match=message):
        make_restorer(name, core)


def test_a_calibration_made_for_other_weights_is_refused_up_front(tmp_path):
    import shutil

    import yaml

    from live_restore.models import model_dir

    folder = tmp_path / "dfcan-sr2x-tiny"
    shutil.copytree(model_dir("dfcan-sr2x-tiny"), folder)
    trust = folder / "trust.yaml"
    record = yaml.safe_load(trust.read_text(encoding="utf-8"))
    record["weights_sha256"] = "0" * 64  # calibrated for weights that are not these
    trust.write_text(yaml.safe_dump(record), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"calibrated for other weights.*live-restore calibrate-trust"
    ):
        TrustStage(load_model(folder, tile_px=64))


def test_a_trust_stage_beside_its_model_reuses_the_restoration(core, tmp_path):
    config = HookConfig(models=["dfcan-sr2x-tiny", "dfcan-sr2x-tiny+trust"])
    parts = build_parts(core, config)
    model, trust = parts.stages
    assert isinstance(trust, TrustStage) and trust.session is model and trust.borrowed
    passes: list[int] = []
    runtime = model.runtime
    model.runtime = lambda batch: (passes.append(len(batch)), runtime(batch))[1]
    frame = np.random.default_rng(0).poisson(30, (64, 64)).astype(np.uint16) + 100
    restored = model(frame)
    sigma = trust(frame)
    assert len(passes) == 1  # the trust map cost the head, not a second restoration
    assert sigma.shape == restored.shape
    np.testing.assert_array_equal(model.with_trust(frame).image, restored)
    trust(frame + 1)  # another frame is restored anew
    assert len(passes) == 2
    for stage in parts.stages:
        stage.close()
    parts.executor.close()


def test_the_shared_stages_restore_and_save_every_frame_in_a_run(core, tmp_path):
    out = tmp_path / "run"
    config = HookConfig(models=["dfcan-sr2x-tiny", "dfcan-sr2x-tiny+trust"], output=out)
    with build_hook(core, config) as hook:
        hook.run(useq.MDASequence(time_plan={"interval": 0, "loops": FRAMES}))
    assert hook.report.errors == 0
    for store in ("dfcan-sr2x-tiny", "dfcan-sr2x-tiny-trust"):
        data = np.asarray(zarr.open_group(str(out / f"{store}.ome.zarr"), mode="r")["0"][:])
        assert data.shape[0] == FRAMES and np.isfinite(data).all()
