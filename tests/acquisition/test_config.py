"""HookConfig: one validated document that every front end builds its hook from."""

from __future__ import annotations

import json

import pytest
import useq
from typer.testing import CliRunner

from live_restore import HookConfig, build_hook
from live_restore._cli import app
from live_restore.acquisition import ConfigError, FocusConfig, HoldConfig
from live_restore.frames import BackendName, Policy


@pytest.fixture
def fast_core(core):
    core.setExposure(5.0)
    return core


def test_a_config_round_trips_through_yaml_and_json(tmp_path):
    config = HookConfig(
        models=["richardson-lucy", "identity"],
        policy=Policy.LATEST,
        memory_mb=64,
        output=tmp_path / "out",
        focus=FocusConfig(threshold_um=0.4, hold=HoldConfig(gain=0.5)),
    )
    saved = config.save(tmp_path / "hook.yaml")
    assert HookConfig.from_file(saved) == config
    as_json = tmp_path / "hook.json"
    as_json.write_text(json.dumps(config.model_dump(mode="json")))
    assert HookConfig.from_file(as_json) == config


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("models: [identity]\nprocesss: all\n", "processs"),  # a typo is refused, not ignored
        ("models: []\n", "models"),
        ("models: [identity]\nbackend: cuda\n", "backend"),
        ("models: [identity]\nmemory_mb: -1\n", "memory_mb"),
        ("- identity\n", "mapping"),
        ("models: [identity\n", "not valid YAML"),
    ],
)
def test_a_wrong_config_is_refused_naming_the_file_and_the_field(tmp_path, text, names):
    path = tmp_path / "hook.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        HookConfig.from_file(path)
    assert str(path) in str(error.value) and names in str(error.value)


def test_build_hook_makes_the_stages_the_config_names(fast_core, tmp_path):
    config = HookConfig(models=["identity", "richardson-lucy"], output=tmp_path / "run")
    hook = build_hook(fast_core, config)
    assert hook.stages == [("identity", 1), ("richardson-lucy", 1)]
    assert hook.config.backend is BackendName.AUTO and hook.policy is Policy.ALL
    with hook:
        hook.run(useq.MDASequence(time_plan={"interval": 0, "loops": 3}))
    assert hook.report.frames_restored == 3
    assert (tmp_path / "run" / "richardson-lucy.ome.zarr").is_dir()


def test_build_hook_refuses_an_unknown_model_by_name(fast_core):
    with pytest.raises(ValueError, match="no-such-model"):
        build_hook(fast_core, HookConfig(models=["no-such-model"]))


def test_acquire_runs_from_a_hook_config_file(tmp_path):
    sequence = tmp_path / "seq.yaml"
    sequence.write_text("time_plan: {interval: 0, loops: 3}\n")
    hook_file = HookConfig(models=["identity"], memory_mb=32).save(tmp_path / "hook.yaml")
    out = tmp_path / "acq"
    args = ["acquire", "--sequence", str(sequence), "--hook-config", str(hook_file)]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "identity.ome.zarr").is_dir() and (out / "raw.ome.zarr").is_dir()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["report"]["frames_restored"] == 3


def test_acquire_refuses_a_bad_hook_config_in_one_line(tmp_path):
    sequence = tmp_path / "seq.yaml"
    sequence.write_text("time_plan: {interval: 0, loops: 3}\n")
    hook_file = tmp_path / "hook.yaml"
    hook_file.write_text("models: [identity]\npolicy: sometimes\n")
    args = ["acquire", "--sequence", str(sequence), "--hook-config", str(hook_file)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "acq")])
    assert result.exit_code == 2
    assert "policy" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "acq").exists()  # nothing that looks like a run


@pytest.mark.parametrize("case", ["output-is-a-file", "output-below-a-file", "binary-file"])
def test_a_hook_config_that_cannot_be_used_is_one_line_with_exit_2(tmp_path, case):
    sequence = tmp_path / "seq.yaml"
    sequence.write_text("time_plan: {interval: 0, loops: 2}\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    hook_file = tmp_path / "hook.yaml"
    if case == "binary-file":
        hook_file.write_bytes(b"\x00\x01\xff\xfe")
        expected = "is not a text file"
    else:
        output = a_file if case == "output-is-a-file" else a_file / "below"
        HookConfig(models=["identity"], output=output).save(hook_file)
        expected = "is a file, not a folder"
    args = ["acquire", "--sequence", str(sequence), "--hook-config", str(hook_file)]
    result = CliRunner().invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 2 and expected in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert a_file.read_text() == "not a folder"  # --overwrite never removes a file


def test_the_hook_config_output_is_used_without_out(tmp_path):
    sequence = tmp_path / "seq.yaml"
    sequence.write_text("time_plan: {interval: 0, loops: 2}\n")
    hook_file = HookConfig(models=["identity"], output=tmp_path / "from-file").save(
        tmp_path / "hook.yaml"
    )
    args = ["acquire", "--sequence", str(sequence), "--hook-config", str(hook_file)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-file" / "identity.ome.zarr").is_dir()


def test_the_frame_policy_old_name_still_reads_with_a_warning(tmp_path):
    with pytest.warns(FutureWarning, match="'process' is now 'policy'"):
        config = HookConfig(models=["identity"], process="latest")
    assert config.policy is Policy.LATEST and "process" not in config.to_yaml()
    old_file = tmp_path / "old.yaml"
    old_file.write_text("models: [identity]\nprocess: latest\n")
    with pytest.warns(FutureWarning):
        assert HookConfig.from_file(old_file).policy is Policy.LATEST
    with pytest.raises(ValueError, match="give the frame policy once"):
        HookConfig(models=["identity"], process="all", policy="all")
