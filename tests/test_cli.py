from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zarr

CLI = [sys.executable, "-m", "live_restore"]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def _frames_in(store: Path) -> tuple[tuple[int, ...], int]:
    group = zarr.open_group(str(store), mode="r")
    return group["0"].shape, len(group.attrs["ome_writers"]["frame_metadata"])


def test_demo_headless_saves_and_restores_every_frame_at_the_configured_size(tmp_path):
    out = tmp_path / "demo"
    result = _run("demo", "--headless", "--frames", "20", "--frame-size", "96", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    shape, written = _frames_in(out / "raw.ome.zarr")
    assert shape == (20, 1, 96, 96)
    assert written == 20
    # the default model: DFCAN, its CPU variant here, 2x
    restored = zarr.open_group(str(out / "dfcan-sr2x-lite.ome.zarr"), mode="r")
    assert restored["0"].shape == (20, 1, 192, 192)
    assert restored.attrs["live_restore"]["missing"] == []
    assert (out / "frames.csv").is_file() and (out / "summary.json").is_file()
    text = " ".join(result.stdout.split())
    assert "photons/pixel" in text and "20 of 20 with dfcan-sr2x-lite" in text
    assert not list(tmp_path.glob("*.partial*"))


def test_demo_ten_times_never_aborts_at_exit(tmp_path):
    for i in range(10):
        result = _run(
            "demo",
            "--headless",
            "--frames",
            "3",
            "--frame-size",
            "32",
            "--model",
            "identity",
            "--out",
            str(tmp_path / f"r{i}"),
        )
        assert result.returncode == 0, (
            f"run {i}: rc={result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        assert "FATAL" not in result.stderr


def test_gui_refuses_a_missing_config_and_a_bad_backend_before_opening_a_window(tmp_path):
    result = _run("gui", "--config", str(tmp_path / "nope.cfg"))
    assert result.returncode == 2
    assert "Micro-Manager config not found" in result.stdout
    result = _run("demo", "--backend", "tensorrt-on-the-moon", "--out", str(tmp_path / "d"))
    assert result.returncode == 2
    assert "unknown backend 'tensorrt-on-the-moon'; known: auto, tensorrt" in " ".join(
        result.stdout.split()
    )
    assert not (tmp_path / "d").exists()
    if not importlib.util.find_spec("tensorrt"):
        # a real name this machine cannot run is refused too, with the reason
        result = _run("demo", "--backend", "tensorrt", "--out", str(tmp_path / "d"))
        assert result.returncode == 2 and "backend tensorrt asked for, but" in result.stdout
        assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--structure", "bananas"], "bananas"),
        (["--frame-size", "63"], "frame size 63x63 is not allowed"),
        (["--light", "Blinding"], "light level 'Blinding' is not one of"),
    ],
)
def test_failed_demo_names_the_problem_and_leaves_no_store(tmp_path, args, message):
    out = tmp_path / "bad.ome.zarr"
    result = _run(
        "demo", "--headless", "--frames", "2", "--frame-size", "32", "--out", str(out), *args
    )
    assert result.returncode == 2
    assert message in " ".join(result.stdout.split())
    assert not out.exists()
    assert not list(tmp_path.glob("bad*"))  # no half-written store under any name


def test_demo_refuses_to_overwrite_an_existing_store(tmp_path):
    out = tmp_path / "keep"
    out.mkdir()
    result = _run("demo", "--headless", "--frames", "2", "--out", str(out))
    assert result.returncode == 2
    assert "already exists" in result.stdout


def test_acquire_runs_a_yaml_sequence_on_the_cpp_democamera(tmp_path):
    pytest.importorskip("mm_test_adapters")
    sequence = tmp_path / "seq.yaml"
    sequence.write_text("time_plan:\n  interval: 0\n  loops: 6\n")
    config = Path(__file__).parents[1] / "mm_configs" / "democam.cfg"
    out = tmp_path / "acq"
    result = _run(
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
    assert result.returncode == 0, result.stdout + result.stderr
    assert zarr.open_group(str(out / "raw.ome.zarr"), mode="r")["0"].shape[0] == 6
    assert zarr.open_group(str(out / "identity.ome.zarr"), mode="r")["0"].shape[0] == 6
    rows = (out / "frames.csv").read_text().splitlines()
    assert len(rows) == 1 + 6 and all(",restored," in r for r in rows[1:])


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("time_plan: {interval: 0, loops: 2}", ["-m", "bogus"], "model 'bogus'"),
        ("time_plan: [not, a, plan]", [], "not a valid useq-schema MDA sequence"),
    ],
)
def test_acquire_names_what_is_wrong(tmp_path, content, args, message):
    sequence = tmp_path / "seq.yaml"
    sequence.write_text(content)
    result = _run("acquire", "--sequence", str(sequence), "--out", str(tmp_path / "o"), *args)
    assert result.returncode == 2
    assert message in " ".join(result.stdout.split())


def test_models_lists_the_restorers():
    result = _run("models")
    assert result.returncode == 0
    assert "richardson-lucy" in result.stdout and "identity" in result.stdout


def test_help_explains_every_command():
    for command in ([], ["demo"], ["simulate"], ["acquire"], ["models"]):
        result = _run(*command, "--help")
        assert result.returncode == 0
        assert "Usage" in result.stdout


def test_train_and_eval_commands(tmp_path):
    from typer.testing import CliRunner

    from live_restore._cli import app

    runner = CliRunner()
    folder = tmp_path / "fe"
    result = runner.invoke(
        app,
        [
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
        ],
    )
    assert result.exit_code == 0, result.output
    assert (folder / "model.yaml").is_file() and (folder / "weights.safetensors").is_file()
    result = runner.invoke(
        app,
        [
            "eval",
            "dfcan-sr2x-lite",
            "--fields",
            "1",
            "--structures",
            "microtubules",
            "--out",
            str(tmp_path / "eval"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "psnr_model" in (tmp_path / "eval" / "dfcan-sr2x-lite.csv").read_text()
    assert (tmp_path / "eval" / "dfcan-sr2x-lite.png").stat().st_size > 10_000
    result = runner.invoke(app, ["train", "no-such-model"])
    assert result.exit_code == 2 and "no training recipe" in result.output
    result = runner.invoke(app, ["train", "focus-est", "--photon-range", "20"])
    assert result.exit_code == 2 and "LOW,HIGH" in result.output


def test_demo_restores_through_onnxruntime_and_says_so_in_the_store(tmp_path):
    out = tmp_path / "ort"
    result = _run(
        "demo", "--headless", "--frames", "4", "--frame-size", "64", "--backend", "onnxruntime",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    restored = zarr.open_group(str(out / "dfcan-sr2x-lite.ome.zarr"), mode="r")
    assert restored["0"].shape == (4, 1, 128, 128)
    provenance = restored.attrs["live_restore"]
    assert provenance["backend"] == "onnxruntime" and provenance["precision"] == "fp32"


def test_engines_build_list_clear_and_a_corrupt_engine_is_reported(tmp_path):
    env = {**os.environ, "LIVE_RESTORE_ENGINE_CACHE": str(tmp_path / "cache")}
    run = lambda *args: subprocess.run(  # noqa: E731
        [*CLI, *args], capture_output=True, text=True, timeout=300, env=env
    )
    built = run("engines", "build", "focus-est")
    assert built.returncode == 0, built.stdout + built.stderr
    assert "largest difference from torch" in " ".join(built.stdout.split())
    (graph,) = (tmp_path / "cache" / "focus-est").glob("*.onnx")
    graph.write_bytes(graph.read_bytes()[:100])
    listed = " ".join(run("engines", "list").stdout.split())
    assert "focus-est" in listed and "sha256 does not match" in listed
    refused = run("engines", "build", "focus-est", "--backend", "torch-cpu")
    assert refused.returncode == 2 and "onnxruntime or tensorrt" in " ".join(refused.stdout.split())
    cleared = run("engines", "clear")
    assert "removed 1 engine" in cleared.stdout
    assert "is empty" in run("engines", "list").stdout


def test_bench_prints_a_row_per_cell_and_writes_them(tmp_path):
    table = tmp_path / "bench.csv"
    result = _run(
        "bench", "-m", "focus-est", "-b", "torch-cpu", "-b", "onnxruntime", "--size", "64",
        "--repeats", "2", "--warmup", "0", "--csv", str(table),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert [(r["model"], r["backend"], r["precision"]) for r in rows] == [
        ("focus-est", "torch-cpu", "fp32"),
        ("focus-est", "onnxruntime", "fp32"),
    ]
    assert all(float(r["median_ms"]) > 0 and float(r["gflop_per_frame"]) > 0 for r in rows)
    assert "x torch-cpu" in result.stdout and "floor share" in result.stdout
