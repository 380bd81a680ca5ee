"""The ``live-restore`` commands, run in this process with typer's CliRunner (the ``cli``
fixture) unless the process itself is the point: its exit code and one-line error at a real
terminal width, and a clean interpreter exit after using a core."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
import traceback
import types
from pathlib import Path

import pytest
import zarr
from click.testing import Result

CLI = [sys.executable, "-m", "live_restore"]

# the demo without its window, frames as fast as the camera (its default is one a second)
HEADLESS_DEMO = ("demo", "--headless", "--interval-s", "0")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``live-restore ARGS`` as its own process."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=env)


def _why(result: Result) -> str:
    """What a command run in-process printed, and the traceback if it raised."""
    if result.exc_info is None or isinstance(result.exception, SystemExit):
        return result.output
    return result.output + "".join(traceback.format_exception(*result.exc_info))


def _flat(text: str) -> str:
    """Text with every run of whitespace (line breaks in a table cell) made one space."""
    return " ".join(text.split())


@pytest.fixture
def no_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that would open napari here fails instead of opening it inside pytest."""

    def run_window(*args: object, **kwargs: object) -> None:
        raise AssertionError("a window was opened")

    viewer = types.ModuleType("live_restore.viewer")
    viewer.run_window = run_window  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "live_restore.viewer", viewer)


def _frames_in(store: Path) -> tuple[tuple[int, ...], int]:
    group = zarr.open_group(str(store), mode="r")
    return group["0"].shape, len(group.attrs["ome_writers"]["frame_metadata"])


@pytest.mark.slow
def test_demo_headless_saves_and_restores_every_frame_at_the_configured_size(tmp_path, cli):
    out = tmp_path / "demo"
    result = cli(
        *HEADLESS_DEMO,
        "--frames",
        "20",
        "--frame-size",
        "96",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, _why(result)
    shape, written = _frames_in(out / "raw.ome.zarr")
    assert shape == (20, 1, 96, 96)
    assert written == 20
    # the default model: DFCAN, its CPU tier here, 2x
    restored = zarr.open_group(str(out / "dfcan-sr2x-tiny.ome.zarr"), mode="r")
    assert restored["0"].shape == (20, 1, 192, 192)
    assert restored.attrs["live_restore"]["missing"] == []
    assert (out / "frames.csv").is_file() and (out / "summary.json").is_file()
    text = _flat(result.stdout)
    assert "photons/pixel" in text and "20 of 20 with dfcan-sr2x-tiny" in text
    assert not list(tmp_path.glob("*.partial*"))


@pytest.mark.slow
def test_demo_ten_times_never_aborts_at_exit(tmp_path):
    """As its own process each time: the abort ('FATAL: exception not rethrown') came at
    interpreter exit, after the core was used, and only now and then. Two at a time (each is
    mostly one core's interpreter start-up), so ten runs cost the time of five."""
    args = (*HEADLESS_DEMO, "--frames", "3", "--frame-size", "32", "--model", "identity")
    for pair in ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9)):
        running = {
            i: subprocess.Popen(
                [*CLI, *args, "--out", str(tmp_path / f"r{i}")],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in pair
        }
        for i, process in running.items():
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, f"run {i}: rc={process.returncode}\n{stdout}\n{stderr}"
            assert "FATAL" not in stderr


def test_gui_refuses_a_missing_config_and_a_bad_backend_before_opening_a_window(
    tmp_path, cli, no_window
):
    result = cli("gui", "--config", str(tmp_path / "nope.cfg"))
    assert result.exit_code == 2, _why(result)
    assert "Micro-Manager config not found" in result.stdout
    result = cli("demo", "--backend", "tensorrt-on-the-moon", "--out", str(tmp_path / "d"))
    assert result.exit_code == 2, _why(result)
    assert "unknown backend 'tensorrt-on-the-moon'; known: auto, tensorrt" in _flat(result.stdout)
    assert not (tmp_path / "d").exists()
    if not importlib.util.find_spec("tensorrt"):
        # a real name this machine cannot run is refused too, with the reason
        result = cli("demo", "--backend", "tensorrt", "--out", str(tmp_path / "d"))
        assert result.exit_code == 2, _why(result)
        assert "backend tensorrt asked for, but" in result.stdout
        assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--structure", "bananas"], "bananas"),
        (["--frame-size", "63"], "frame size 63x63 is not allowed"),
        (["--light", "Blinding"], "light level 'Blinding' is not one of"),
    ],
)
def test_failed_demo_names_the_problem_and_leaves_no_store(tmp_path, cli, args, message):
    out = tmp_path / "bad.ome.zarr"
    result = cli(
        *HEADLESS_DEMO,
        "--frames",
        "2",
        "--frame-size",
        "32",
        "--out",
        str(out),
        *args,
    )
    assert result.exit_code == 2, _why(result)
    assert message in _flat(result.stdout)
    assert not out.exists()
    assert not list(tmp_path.glob("bad*"))  # no half-written store under any name


def test_demo_refuses_to_overwrite_an_existing_store(tmp_path, cli):
    out = tmp_path / "keep"
    out.mkdir()
    (out / "precious.txt").write_text("kept")
    result = cli(*HEADLESS_DEMO, "--frames", "2", "--out", str(out))
    assert result.exit_code == 2, _why(result)
    assert "already exists" in result.stdout
    assert [p.name for p in out.iterdir()] == ["precious.txt"]


def test_a_user_error_exits_2_with_the_whole_message_on_one_line_at_60_columns(tmp_path):
    """As its own process, with COLUMNS=60 as a narrow terminal sets it: the exit code is 2 and
    the error is one line, the path and the words in it whole (rich broke it at the console
    width, once inside 'already exists')."""
    out = tmp_path / ("a-folder-name-longer-than-the-terminal-is-wide-" * 2) / "existing-output"
    out.mkdir(parents=True)
    assert len(str(out)) > 100
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    result = _run(
        *HEADLESS_DEMO,
        "--frames",
        "2",
        "--out",
        str(out),
        env=env | {"COLUMNS": "60"},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("error: ") and f" {out} already exists; " in line
    assert "--overwrite" in line


def test_acquire_runs_a_yaml_sequence_on_the_cpp_democamera(tmp_path, cli):
    pytest.importorskip("mm_test_adapters")
    sequence = tmp_path / "seq.yaml"
    sequence.write_text("time_plan:\n  interval: 0\n  loops: 6\n")
    config = Path(__file__).parents[1] / "mm_configs" / "democam.cfg"
    out = tmp_path / "acq"
    result = cli(
        "acquire",
        "--config",
        str(config),
        "--sequence",
        str(sequence),
        "-m",
        "identity",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, _why(result)
    assert zarr.open_group(str(out / "raw.ome.zarr"), mode="r")["0"].shape[0] == 6
    assert zarr.open_group(str(out / "identity.ome.zarr"), mode="r")["0"].shape[0] == 6
    rows = (out / "frames.csv").read_text().splitlines()
    assert len(rows) == 1 + 6 and all(",restored," in r for r in rows[1:])


def test_acquire_with_interp_t_saves_the_full_rate_series(tmp_path, cli):
    sequence = tmp_path / "seq.yaml"
    sequence.write_text("time_plan:\n  interval: 0\n  loops: 3\n")
    out = tmp_path / "acq"
    args = ["--sequence", str(sequence), "-m", "interp-t", "--interp-factor", "3"]
    result = cli("acquire", *args, "--out", str(out))
    assert result.exit_code == 0, _why(result)
    full = zarr.open_group(str(out / "interp-t.ome.zarr"), mode="r")
    assert full["0"].shape[0] == 7  # 3 acquired, 2 x 2 filled in
    assert full.attrs["live_restore"]["interpolated"] == ["t=1", "t=2", "t=4", "t=5"]
    rows = (out / "frames.csv").read_text().splitlines()
    assert sum(",interpolated," in r for r in rows) == 4


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("time_plan: {interval: 0, loops: 2}", ["-m", "bogus"], "model 'bogus'"),
        ("time_plan: [not, a, plan]", [], "not a valid useq-schema MDA sequence"),
    ],
)
def test_acquire_names_what_is_wrong(tmp_path, cli, content, args, message):
    sequence = tmp_path / "seq.yaml"
    sequence.write_text(content)
    result = cli("acquire", "--sequence", str(sequence), "--out", str(tmp_path / "o"), *args)
    assert result.exit_code == 2, _why(result)
    assert message in _flat(result.stdout)
    assert not (tmp_path / "o").exists()  # nothing that looks like a run


_NO_CAMERA = "\n".join(
    line
    for line in (Path(__file__).parents[1] / "mm_configs" / "sim_demo.cfg").read_text().splitlines()
    if "Camera" not in line
)


@pytest.mark.parametrize(
    ("sequence_text", "config_text", "out_under_file", "message"),
    [
        (
            "channels: [{config: NoSuchPreset, group: Channel}]\n"
            "time_plan: {interval: 0, loops: 2}",
            None,
            False,
            "channel preset 'NoSuchPreset' is not in group 'Channel' (presets: SIM-A0P0",
        ),
        ("time_plan: {interval: 0, loops: 2}", _NO_CAMERA, False, "the config has no camera"),
        ("time_plan: {interval: 0, loops: 2}", None, True, "is a file, not a folder"),
        (
            "time_plan: {interval: 0, loops: 2}",
            "Device,Foo,NoSuchLibrary,Bar",
            False,
            "'NoSuchLibrary' is not a known Micro-manager DeviceAdapter",
        ),
    ],
    ids=["unknown-preset", "no-camera", "out-under-a-file", "unknown-device"],
)
def test_acquire_refuses_a_set_up_that_cannot_run_in_one_line(
    tmp_path, cli, sequence_text, config_text, out_under_file, message
):
    sequence = tmp_path / "seq.yaml"
    sequence.write_text(sequence_text)
    args = ["acquire", "--sequence", str(sequence), "-m", "identity"]
    if config_text is not None:
        (tmp_path / "my.cfg").write_text(config_text + "\n")
        args += ["--config", str(tmp_path / "my.cfg")]
    out = tmp_path / "o"
    if out_under_file:
        (tmp_path / "a-file").write_text("")
        out = tmp_path / "a-file" / "sub" / "o"
    result = cli(*args, "--out", str(out))
    assert result.exit_code == 2, _why(result)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()  # a run that cannot start leaves nothing that looks like one


def test_models_lists_the_restorers(cli):
    result = cli("models")
    assert result.exit_code == 0, _why(result)
    assert "richardson-lucy" in result.stdout and "identity" in result.stdout


def test_help_explains_every_command(cli):
    for command in ([], ["demo"], ["simulate"], ["acquire"], ["models"]):
        result = cli(*command, "--help")
        assert result.exit_code == 0, _why(result)
        assert "Usage" in result.stdout


@pytest.mark.slow
def test_train_and_eval_commands(tmp_path, cli):
    folder = tmp_path / "fe"
    result = cli(
        "train",
        "focus-est",
        "--out",
        str(folder),
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--fields-per-structure",
        "1",
    )
    assert result.exit_code == 0, _why(result)
    assert (folder / "model.yaml").is_file() and (folder / "weights.safetensors").is_file()
    result = cli(
        "eval",
        "dfcan-sr2x-lite",
        "--fields",
        "1",
        "--structures",
        "microtubules",
        "--out",
        str(tmp_path / "eval"),
    )
    assert result.exit_code == 0, _why(result)
    assert "psnr_model" in (tmp_path / "eval" / "dfcan-sr2x-lite.csv").read_text()
    assert (tmp_path / "eval" / "dfcan-sr2x-lite.png").stat().st_size > 10_000
    result = cli("train", "no-such-model")
    assert result.exit_code == 2 and "no training recipe" in result.output, _why(result)
    result = cli("train", "focus-est", "--photon-range", "20")
    assert result.exit_code == 2 and "LOW,HIGH" in result.output, _why(result)


def test_demo_restores_through_onnxruntime_and_says_so_in_the_store(tmp_path, cli):
    out = tmp_path / "ort"
    result = cli(
        *HEADLESS_DEMO, "--frames", "4", "--frame-size", "64",
        "--backend", "onnxruntime", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, _why(result)
    restored = zarr.open_group(str(out / "dfcan-sr2x-tiny.ome.zarr"), mode="r")
    assert restored["0"].shape == (4, 1, 128, 128)
    provenance = restored.attrs["live_restore"]
    assert provenance["backend"] == "onnxruntime" and provenance["precision"] == "fp32"


def test_engines_build_list_clear_and_a_corrupt_engine_is_reported(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("LIVE_RESTORE_ENGINE_CACHE", str(tmp_path / "cache"))
    built = cli("engines", "build", "focus-est")
    assert built.exit_code == 0, _why(built)
    assert "largest difference from torch" in _flat(built.stdout)
    (graph,) = (tmp_path / "cache" / "focus-est").glob("*.onnx")
    graph.write_bytes(graph.read_bytes()[:100])
    listed = cli("engines", "list")
    assert listed.exit_code == 0, _why(listed)
    assert "focus-est" in _flat(listed.stdout) and "sha256 does not match" in _flat(listed.stdout)
    refused = cli("engines", "build", "focus-est", "--backend", "torch-cpu")
    assert refused.exit_code == 2, _why(refused)
    assert "onnxruntime, openvino or tensorrt" in _flat(refused.stdout)
    cleared = cli("engines", "clear")
    assert cleared.exit_code == 0, _why(cleared)
    assert "removed 1 engine" in cleared.stdout
    assert not list((tmp_path / "cache").rglob("*.onnx"))
    assert "is empty" in _flat(cli("engines", "list").stdout)


def test_bench_prints_a_row_per_cell_and_writes_them(tmp_path, cli):
    table = tmp_path / "bench.csv"
    result = cli(
        "bench", "-m", "focus-est", "-b", "torch-cpu", "-b", "onnxruntime", "--size", "64",
        "--repeats", "2", "--warmup", "0", "--csv", str(table),
    )  # fmt: skip
    assert result.exit_code == 0, _why(result)
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert [(r["model"], r["backend"], r["precision"]) for r in rows] == [
        ("focus-est", "torch-cpu", "fp32"),
        ("focus-est", "onnxruntime", "fp32"),
    ]
    assert all(float(r["median_ms"]) > 0 and float(r["gflop_per_frame"]) > 0 for r in rows)
    assert "x torch-cpu" in result.stdout and "floor share" in result.stdout


def test_a_bad_option_is_named_and_the_old_process_flag_still_works(cli, tmp_path):
    sequence = tmp_path / "seq.yaml"
    sequence.write_text("time_plan: {interval: 0, loops: 2}\n")
    base = ["acquire", "--sequence", str(sequence), "-m", "identity"]
    bad_mode = cli(*base, "--window-mode", "sideways", "--out", str(tmp_path / "a"))
    assert bad_mode.exit_code == 2 and "--window-mode 'sideways'" in bad_mode.output
    bad_server = cli(*base, "--server", "http://nope", "--out", str(tmp_path / "b"))
    assert bad_server.exit_code == 2 and "--server 'http://nope'" in bad_server.output
    old = cli(*base, "--process", "latest", "--out", str(tmp_path / "c"))
    assert old.exit_code == 0, old.output
    assert "--process is now --policy" in old.output
    assert '"policy": "latest"' in (tmp_path / "c" / "summary.json").read_text()


def test_a_run_of_the_same_error_prints_as_one_line_and_a_count(capsys, monkeypatch):
    from live_restore._cli_common import RepeatedErrors, console
    from live_restore.acquisition import StageError

    monkeypatch.setattr(console, "_width", 200)
    errors = RepeatedErrors()
    for frame in range(5, 60):
        errors(StageError("dfcan", frame, "unsaved", "restored and shown, not saved: disk full"))
    errors(StageError("dfcan", 60, "exception", "ValueError: other"))
    errors.flush()
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [
        "dfcan frame 5: restored and shown, not saved: disk full",
        "dfcan the same on 54 more frames (frames 6..59); all in run.log",
        "dfcan frame 60: ValueError: other",
    ]
