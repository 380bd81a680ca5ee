"""live-restore adapt: an interpolation model fine-tuned on the user's own stack, checked on
held-out planes, usable wherever a model name is."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import useq
import yaml

from live_restore import HookConfig, build_hook
from live_restore.devices import demo_core, release_core
from live_restore.inference import load_model
from live_restore.models import engines_dir, file_sha256


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


def test_adapt_writes_a_model_with_an_honest_record(z_stack, tmp_path, cli, core):
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
    assert record["training_triplets"] > 0 and record["held_out_triplets"] > 0
    # never a gain it did not measure: the adapted weights only when the held-out error fell
    improved = record["held_out_error_after"] < record["held_out_error_before"]
    assert record["kept"] == ("adapted" if improved else "parent")
    if not improved:
        parent = engines_dir() / "interp-z" / "weights.safetensors"
        assert spec["weights_sha256"] == file_sha256(parent)
    assert spec["weights_sha256"] == file_sha256(out / "weights.safetensors")
    # a model folder like any other: load_model, and a hook stage by its folder
    session = load_model(out, "torch-cpu")
    planes = np.full((2, 64, 64), 120, np.uint16)
    assert session.between(planes[0], planes[1], [0.5]).shape == (1, 64, 64)
    core.setProperty("Camera", "FrameSize", 64)
    config = HookConfig(models=[str(out)], output=tmp_path / "run", progress=False, live=False)
    with build_hook(core, config) as hook:
        hook.run(useq.MDASequence(z_plan={"range": 1.0, "step": 0.5}))
    assert (
        hook.report.frames_restored == 3
        and (tmp_path / "run" / "interp-z-adapted.ome.zarr").is_dir()
    )


def test_an_ome_tiff_stack_adapts_too(tmp_path, cli):
    rng = np.random.default_rng(0)
    stack = (rng.poisson(50, (8, 48, 48)) + 100).astype(np.uint16)
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, stack, metadata={"axes": "ZYX"}, ome=True)
    out = tmp_path / "mine"
    result = cli("adapt", "interp-z", str(path), "--out", str(out), "--minutes", "0.02")
    assert result.exit_code == 0, result.output
    assert (
        yaml.safe_load((out / "model.yaml").read_text())["training"]["adapted"]["input_axes"]
        == "zyx"
    )


@pytest.mark.parametrize(
    ("model", "planes", "message"),
    [
        ("interp-z", 4, "adapting needs at least 6"),
        ("dfcan-sr2x-tiny", 8, "cannot adapt here"),
    ],
)
def test_what_cannot_adapt_is_refused_in_one_line(tmp_path, cli, model, planes, message):
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(
        path, np.full((planes, 32, 32), 100, np.uint16), metadata={"axes": "ZYX"}, ome=True
    )
    result = cli("adapt", model, str(path), "--out", str(tmp_path / "out"), "--minutes", "0.01")
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
