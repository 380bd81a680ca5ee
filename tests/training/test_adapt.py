"""live-restore adapt: an interpolation model fine-tuned on the user's own stack, checked on
held-out planes, usable wherever a model name is."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import useq
import yaml
import zarr

from live_restore.devices import demo_core, release_core
from live_restore.inference import load_model
from live_restore.models import engines_dir, file_sha256
from live_restore.simulate import ManualClock, SimMicroscope


def _measured_gain(record: dict) -> bool:
    """Never a gain it did not measure: the held-out error fell by over 2 standard errors."""
    fall = record["held_out_error_before"] - record["held_out_error_after"]
    return fall > 2 * record["held_out_change_standard_error"] and record["held_out_tiles"] > 1


@pytest.fixture(scope="module")
def z_stack(tmp_path_factory):
    """A user's z-stack: 13 planes 0.5 µm apart of the simulated sample, 2 time points."""
    path = tmp_path_factory.mktemp("stack") / "raw.ome.zarr"
    core = demo_core()
    try:
        core.setProperty("Camera", "FrameSize", 64)
        sequence = useq.MDASequence(
            z_plan={"range": 6.0, "step": 0.5}, time_plan={"interval": 0, "loops": 2}
        )
        core.mda.run(sequence, output=str(path))
    finally:
        release_core(core)
    return path


def test_adapt_writes_a_model_with_an_honest_record(z_stack, tmp_path, cli):
    out = tmp_path / "mine"
    result = cli("adapt", "interp-z", str(z_stack), "--out", str(out), "--minutes", "0.1")
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load((out / "model.yaml").read_text())
    record = spec["training"]["adapted"]
    assert spec["name"] == "interp-z-adapted" and record["parent"] == "interp-z"
    assert record["parent_weights_sha256"] == file_sha256(
        engines_dir() / "interp-z" / "weights.safetensors"
    )
    assert record["input_shape"] == [2, 13, 64, 64] and record["axis"] == "z"
    assert record["method"] == "pairs" and record["noise_model"]["gain_counts_per_count"] > 0
    assert record["training_examples"] > 0 and record["held_out_examples"] > 0
    # never a gain it did not measure: the adapted weights only when the held-out error fell
    assert record["kept"] == ("adapted" if _measured_gain(record) else "parent")
    if record["kept"] == "parent":
        parent = engines_dir() / "interp-z" / "weights.safetensors"
        assert spec["weights_sha256"] == file_sha256(parent)
    assert spec["weights_sha256"] == file_sha256(out / "weights.safetensors")
    # a model folder like any other: load_model, and a hook stage by its folder
    session = load_model(out, "torch-cpu")
    planes = np.full((2, 64, 64), 120, np.uint16)
    assert session.between(planes[0], planes[1], [0.5]).shape == (1, 64, 64)
    # and `acquire -m FOLDER`: a z-stack restored by the adapted model, its store named for it
    sequence = tmp_path / "stack.yaml"
    sequence.write_text("z_plan: {range: 1.0, step: 0.5}\n")
    run = tmp_path / "run"
    result = cli("acquire", "--sequence", str(sequence), "-m", str(out), "--out", str(run))
    assert result.exit_code == 0, result.output
    raw = zarr.open_group(str(run / "raw.ome.zarr"), mode="r")["0"]
    full = zarr.open_group(str(run / "interp-z-adapted.ome.zarr"), mode="r")["0"]
    assert raw.shape[0] == 3 and full.shape[0] == 5  # 3 planes and the 2 between them
    assert full.shape[-2:] == raw.shape[-2:]
    rows = (run / "frames.csv").read_text().splitlines()
    assert sum(",interpolated," in r for r in rows) == 2


@pytest.mark.parametrize(
    ("model", "axes", "method"), [("interp-z", "ZYX", "pairs"), ("interp-t", "TYX", "triplets")]
)
def test_an_ome_tiff_adapts_by_its_axis_method(tmp_path, cli, model, axes, method):
    rng = np.random.default_rng(0)
    # frames not square, sides not a multiple of the network's 16: crops rounded, half turns
    stack = (rng.poisson(50, (8, 40, 72)) + 100).astype(np.uint16)
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, stack, metadata={"axes": axes}, ome=True)
    out = tmp_path / "mine"
    result = cli("adapt", model, str(path), "--out", str(out), "--minutes", "0.02")
    assert result.exit_code == 0, result.output
    record = yaml.safe_load((out / "model.yaml").read_text())["training"]["adapted"]
    assert record["input_axes"] == axes.lower() and record["method"] == method
    # the held-out part: the last 3 of 8 positions: 2 pairs, or 1 triplet around the middle
    assert record["held_out_examples"] == (2 if method == "pairs" else 1)
    assert ("noise_model" in record) == (method == "pairs")
    saved = record[
        "held_out_error_after" if record["kept"] == "adapted" else "held_out_error_before"
    ]
    assert record["held_out_error_saved"] == saved


@pytest.mark.parametrize(
    ("model", "planes", "message", "options"),
    [
        ("interp-z", 4, "adapting needs at least 6", []),
        ("refocus", 8, "cannot adapt here", []),
        ("mfsr-sr2x", 8, "needs at least 10", []),  # two windows of 5, disjoint
        ("mfsr-sr2x", 12, "windows of consecutive time points", ["--axis", "z"]),
        ("dfcan-sr2x-tiny", 3, "needs at least 4", []),
        ("dfcan-sr2x-tiny", 8, "too narrow a range of brightness", []),  # flat: no noise fit
        ("dfcan-sr2x-tiny", 8, "--axis is for the interpolation models", ["--axis", "z"]),
        ("interp-z", 8, "--na: the optics are for the super-resolution", ["--na", "1.2"]),
        (
            "interp-z",
            8,
            "adapts by pairs or triplets, not 'consistency'",
            ["--method", "consistency"],
        ),
    ],
)
def test_what_cannot_adapt_is_refused_in_one_line(tmp_path, cli, model, planes, message, options):
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(
        path, np.full((planes, 32, 32), 100, np.uint16), metadata={"axes": "ZYX"}, ome=True
    )
    args = ["--out", str(tmp_path / "out"), "--minutes", "0.01", *options]
    result = cli("adapt", model, str(path), *args)
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_super_resolution_model_adapts_by_consistency_with_its_optics(tmp_path, cli):
    scope = SimMicroscope("er", 0, (48, 48), peak_photons_per_ms=5.0, clock=ManualClock())
    series = np.stack([scope.snap(np.random.default_rng(i)) for i in range(6)])
    path = tmp_path / "series.ome.tif"
    tifffile.imwrite(path, series, metadata={"axes": "TYX"}, ome=True)
    out = tmp_path / "mine"
    args = ["--out", str(out), "--minutes", "0.02", "--na", "1.2", "--emission-nm", "600"]
    result = cli("adapt", "dfcan-sr2x-tiny", str(path), *args)
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load((out / "model.yaml").read_text())
    record = spec["training"]["adapted"]
    assert record["method"] == "consistency" and "axis" not in record
    assert record["optics"] == {"na": 1.2, "emission_wavelength_nm": 600.0, "pixel_um": 0.065}
    # the widefield kernel scales with lambda / NA: 3.5 px at 1.49 and 525 nm on the 2x grid
    assert record["kernel_sigma_px"] == pytest.approx(3.5 * (0.6 / 1.2) / (0.525 / 1.49), 1e-3)
    assert record["held_out_examples"] == 1 and record["training_examples"] == 5
    assert record["kept"] == ("adapted" if _measured_gain(record) else "parent")
    session = load_model(out, "torch-cpu")
    assert session(series[0]).shape == (96, 96)


def test_the_multi_frame_model_adapts_by_consistency_on_whole_windows(tmp_path, cli):
    scope = SimMicroscope("mitochondria", 0, (48, 48), peak_photons_per_ms=5.0, clock=ManualClock())
    series = np.stack([scope.snap(np.random.default_rng(i)) for i in range(12)])
    path = tmp_path / "series.ome.tif"
    tifffile.imwrite(path, series, metadata={"axes": "TYX"}, ome=True)
    out = tmp_path / "mine"
    result = cli("adapt", "mfsr-sr2x", str(path), "--out", str(out), "--minutes", "0.02")
    assert result.exit_code == 0, result.output
    record = yaml.safe_load((out / "model.yaml").read_text())["training"]["adapted"]
    assert record["method"] == "consistency" and record["axis"] == "t"
    # 12 time points: the last 5 held out (one window of 5), 7 to train on (3 windows)
    assert (record["training_examples"], record["held_out_examples"]) == (3, 1)
    assert "windows of 5" in record["held_out"]
    assert record["kept"] == ("adapted" if _measured_gain(record) else "parent")
    session = load_model(out, "torch-cpu")
    assert session(series[:5]).shape == (96, 96)
