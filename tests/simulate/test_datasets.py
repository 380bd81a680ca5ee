from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile
import zarr

from live_restore.simulate import DatasetKind, DatasetSpec, write_dataset


def _spec(kind, **kwargs):
    defaults = {
        "structures": ["microtubules", "clathrin"],
        "photon_levels": [20.0, 100.0],
        "samples_per_combination": 2,
        "frame_size": 32,
    }
    defaults.update(kwargs)
    return DatasetSpec(kind=kind, **defaults)


def test_sr_pairs_as_ome_zarr_hold_raw_and_ground_truth(tmp_path):
    out = write_dataset(_spec(DatasetKind.SR_PAIRS), tmp_path / "sr")
    group = zarr.open_group(str(out / "data.ome.zarr"), mode="r")
    raw, gt_sr, gt_wf = group["raw/0"], group["gt_sr/0"], group["gt_widefield/0"]
    assert raw.shape == (8, 32, 32) and raw.dtype == np.uint16
    assert gt_sr.shape == (8, 64, 64) and gt_sr.dtype == np.float32
    assert group["gt_sr"].attrs["ome"]["multiscales"][0]["datasets"][0][
        "coordinateTransformations"
    ][0]["scale"][-1] == pytest.approx(0.0325)
    with open(out / "samples.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["structure"] for r in rows} == {"microtubules", "clathrin"}
    # low light has lower counts than high light, and the raw is a noisy draw of the truth
    levels = np.array([float(r["peak_photons"]) for r in rows])
    raw_signal = raw[:].reshape(8, -1).astype(float).mean(1) - 100
    truth_signal = gt_wf[:].reshape(8, -1).mean(1)
    assert np.all(np.abs(raw_signal - truth_signal) < 5 * np.sqrt(truth_signal / 1024 + 0.01))
    assert raw_signal[levels == 100].mean() > 3 * raw_signal[levels == 20].mean()
    assert json.loads((out / "dataset.json").read_text())["kind"] == "sr-pairs"


def test_same_seed_gives_the_same_dataset(tmp_path):
    a = write_dataset(_spec(DatasetKind.SR_PAIRS), tmp_path / "a")
    b = write_dataset(_spec(DatasetKind.SR_PAIRS), tmp_path / "b")
    np.testing.assert_array_equal(
        zarr.open_group(str(a / "data.ome.zarr"))["raw/0"][:],
        zarr.open_group(str(b / "data.ome.zarr"))["raw/0"][:],
    )


def test_defocus_series_as_tiff_record_their_defocus(tmp_path):
    spec = _spec(
        DatasetKind.DEFOCUS,
        structures=["er"],
        photon_levels=[200.0],
        samples_per_combination=1,
        defocus_range_um=1.0,
        defocus_step_um=0.5,
    )
    out = write_dataset(spec, tmp_path / "dz", fmt="tiff")
    raw = tifffile.imread(out / "raw.ome.tif")
    assert raw.shape == (5, 32, 32)  # tifffile squeezes the length-1 sample axis on read
    raw = raw[None]
    assert json.loads((out / "dataset.json").read_text())["defocus_um"] == [
        -1.0,
        -0.5,
        0.0,
        0.5,
        1.0,
    ]
    sharpness = raw[0].reshape(5, -1).astype(float).std(1)
    assert int(np.argmax(sharpness)) == 2  # the in-focus plane is the sharpest


def test_sim_sets_hold_nine_frames_whose_mean_is_widefield(tmp_path):
    out = write_dataset(
        _spec(
            DatasetKind.SIM,
            structures=["clathrin"],
            photon_levels=[1000.0],
            samples_per_combination=1,
        ),
        tmp_path / "sim",
    )
    group = zarr.open_group(str(out / "data.ome.zarr"), mode="r")
    raw = group["raw/0"][0].astype(float) - 100
    assert raw.shape == (9, 32, 32)
    widefield = group["gt_widefield/0"][0]
    assert np.corrcoef(raw.mean(0).ravel(), widefield.ravel())[0, 1] > 0.95


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"structures": ["bananas"]}, "unknown structure 'bananas'"),
        ({"photon_levels": [0.0]}, "photon level 0.0 must be positive"),
        ({"frame_size": 33}, "frame size 33x33 is not allowed"),
    ],
)
def test_bad_dataset_requests_are_refused_before_writing(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        write_dataset(_spec(DatasetKind.SR_PAIRS, **changes), tmp_path / "bad")
    assert not list(tmp_path.iterdir())
