"""The CPU tier: OpenVINO beside ONNX Runtime, reduced precision, and what ``auto`` picks.

Tolerances, against float32 torch on the same tiles (network units, output in (0, 1)):
- OpenVINO fp32: 1e-4, as ONNX Runtime (the same exported graph);
- bf16 (8-bit mantissa inside OpenVINO's kernels): 3e-2 at any pixel; measured 1.0e-2 on a
  512x512 frame;
- int8 (QDQ): a mean absolute error under 1e-2 and any pixel under 0.15; measured 6 % at
  worst on a 512x512 frame, which is why int8 fails the quality check and ``auto`` never takes
  it for the shipped models (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from live_restore.inference import (
    EngineCache,
    available_backends,
    cpu_choice,
    create_backend,
    load_model,
    precisions_here,
    record_cpu_choice,
    resolve_backend,
)
from live_restore.inference._cpu_choice import fastest
from live_restore.models import load_network, model_dir, read_spec

pytestmark = pytest.mark.skipif(
    "openvino" not in available_backends(), reason="needs openvino (the [openvino] extra)"
)
requires_bf16 = pytest.mark.skipif(
    "openvino" not in available_backends() or "bf16" not in precisions_here("openvino"),
    reason="this CPU has no bfloat16 instructions",
)


@pytest.fixture
def cache(tmp_path):
    return EngineCache(tmp_path / "cache")


def _frame(shape=(96, 80), seed=0):
    return np.random.default_rng(seed).poisson(120, shape).astype(np.uint16)


def _tiles(shape=(2, 1, 64, 96), seed=0):
    # smooth structure plus noise, in the network's units (what a session sends)
    rng = np.random.default_rng(seed)
    base = rng.random(shape).astype(np.float32)
    return torch.from_numpy(np.clip(0.3 * base + 0.5 * np.roll(base, 1, -1), 0, 1))


@pytest.mark.parametrize("name", ["dfcan-sr2x-tiny", "refocus"])
def test_openvino_fp32_matches_torch_within_1e_4(name, cache):
    spec, network, _ = load_network(name)
    reference = create_backend(network, spec, "torch-cpu", cache=cache)
    openvino = create_backend(network, spec, "openvino", "fp32", cache=cache)
    batch = _tiles()
    expected, got = reference(batch), openvino(batch)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-4
    assert openvino.describe()["precision"] == "fp32"


@requires_bf16
def test_openvino_bf16_is_within_its_stated_tolerance(cache):
    spec, network, _ = load_network("dfcan-sr2x-tiny")
    expected = create_backend(network, spec, "torch-cpu", cache=cache)(_tiles())
    got = create_backend(network, spec, "openvino", "bf16", cache=cache)(_tiles())
    error = (got - expected).abs()
    assert 0 < float(error.max()) < 3e-2  # reduced, so not bit-equal; within the tolerance


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_int8_is_a_calibrated_graph_within_its_stated_tolerance(backend, cache):
    spec, network, _ = load_network("dfcan-sr2x-tiny")
    expected = create_backend(network, spec, "torch-cpu", cache=cache)(_tiles())
    runtime = create_backend(network, spec, backend, "int8", cache=cache)
    error = (runtime(_tiles()) - expected).abs()
    assert float(error.mean()) < 1e-2 and float(error.max()) < 0.15
    # the int8 graph is a cached artefact, keyed by its calibration
    (int8,) = [e for e in cache.entries("dfcan-sr2x-tiny") if e.kind == "int8"]
    assert int8.problem() is None and "calibration" in int8.record["fields"]


def test_int8_is_refused_in_one_line_for_a_model_it_cannot_calibrate(cache):
    spec, network, _ = load_network("interp-t")
    with pytest.raises(ValueError, match=r"interp-t .* has no int8 calibration"):
        create_backend(network, spec, "openvino", "int8", cache=cache)


def test_a_frame_size_never_seen_runs_and_matches_torch(cache):
    # tiny runs whole frames: each new size is a new graph, exported on first use
    frame = _frame((138, 202), seed=3)
    expected = load_model("dfcan-sr2x-tiny", "torch-cpu")(frame)
    session = load_model("dfcan-sr2x-tiny", "openvino", "fp32", cache=cache)
    got = session(frame)
    assert got.shape == (276, 404) == expected.shape
    assert np.abs(got - expected).max() < 1e-4 * (np.ptp(expected) + 1)


def test_prepare_builds_the_graph_for_the_camera_frame_before_the_first_frame(cache):
    session = load_model("dfcan-sr2x-tiny", "openvino", "fp32", cache=cache)
    assert cache.entries("dfcan-sr2x-tiny") == []  # a whole-frame model builds nothing at load
    session.prepare((100, 130))
    (graph,) = cache.entries("dfcan-sr2x-tiny")
    assert graph.record["fields"]["input_chw"] == [1, 128, 192]  # up to multiples of 64 px
    session(_frame((100, 130)))
    assert cache.entries("dfcan-sr2x-tiny") == [graph]  # the first frame built nothing more


def test_auto_takes_model_yaml_choice_then_this_machines_measurement(cache):
    spec = read_spec(model_dir("dfcan-sr2x-tiny"))
    from_yaml = cpu_choice(spec, cache, torch.get_num_threads())
    assert from_yaml.source == "model.yaml" and from_yaml.backend == spec.cpu_backend
    expected = next(p for p in spec.cpu_precisions if p in precisions_here("openvino"))
    if not torch.cuda.is_available():
        assert resolve_backend("auto", "auto", from_yaml.backend, from_yaml.precisions) == (
            "openvino",
            expected,
        )
    # this machine measured onnxruntime fp32 fastest at most sizes: auto follows, and says so
    timings = [
        ("openvino", "fp32", 256, 30.0),
        ("onnxruntime", "fp32", 256, 20.0),
        ("onnxruntime", "fp32", 512, 80.0),
        ("openvino", "fp32", 512, 90.0),
        ("openvino", "int8", 512, 10.0),  # not allowed by model.yaml unless it passed
        ("torch-cpu", "fp32", 512, 200.0),
    ]
    (backend, precision), path = record_cpu_choice(spec, cache, torch.get_num_threads(), timings)
    allowed_int8 = "int8" in spec.cpu_precisions
    expected_choice = ("openvino", "int8") if allowed_int8 else ("onnxruntime", "fp32")
    assert (backend, precision) == expected_choice
    document = json.loads(path.read_text())
    assert document["choice"] == {"backend": backend, "precision": precision}
    assert cache.entries("dfcan-sr2x-tiny")[0].record["fields"]["cpu"]  # keyed by this CPU
    recorded = cpu_choice(spec, cache, torch.get_num_threads())
    assert recorded.backend == backend and recorded.source.startswith("bench record")
    if not torch.cuda.is_available():
        session = load_model("dfcan-sr2x-tiny", cache=cache)
        assert (session.backend, session.precision) == (backend, precision)
    # other weights, or another thread count, measure afresh
    other = spec.model_copy(update={"weights_sha256": "0" * 64})
    assert cpu_choice(other, cache, torch.get_num_threads()).source == "model.yaml"


def test_the_fastest_cell_wins_at_the_most_sizes_ties_going_to_the_larger_frame():
    rows = [("a", "fp32", 256, 1.0), ("b", "fp32", 256, 2.0), ("b", "fp32", 1024, 5.0)]
    rows += [("a", "fp32", 1024, 6.0)]
    assert fastest(rows) == ("b", "fp32")  # one size each: b won the larger
    assert fastest([*rows, ("a", "fp32", 512, 1.0)]) == ("a", "fp32")


def test_precision_check_scores_against_float32_torch_and_records_what_passed(tmp_path):
    from live_restore.training import check_precision, record_precisions

    folder = tmp_path / "tiny-copy"
    shutil.copytree(model_dir("dfcan-sr2x-tiny"), folder)
    precision = "bf16" if "bf16" in precisions_here("openvino") else "fp32"
    check = check_precision(
        str(folder), "openvino", precision, ["microtubules"], [50.0], fields=1, frame_size=96
    )
    (row,) = check.rows
    assert set(row.scores) >= {"psnr_loss_db", "ms_ssim_loss", "psnr_reference"}
    assert abs(check.worst_psnr_loss_db) < 0.1 and check.passed
    int8 = check_precision(
        str(folder), "openvino", "int8", ["microtubules"], [50.0], fields=1, frame_size=96
    )
    record_precisions(str(folder), [check, int8])
    written = yaml.safe_load((folder / "model.yaml").read_text())
    assert written["cpu_precisions"][-1] == "fp32"
    assert ("int8" in written["cpu_precisions"]) == int8.passed
    table = written["evaluation"]["cpu_precision"]
    assert table["int8"]["cells"]["microtubules 50 photons"]["psnr_loss_db"] == pytest.approx(
        int8.worst_psnr_loss_db, abs=1e-3
    )
    with pytest.raises(ValueError, match="single-frame super-resolution and refocus"):
        check_precision("interp-t", "openvino", "fp32", fields=1)
