"""One interface, several runtimes: every backend computes the same function."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from live_restore.inference import (
    Backend,
    EngineCache,
    available_backends,
    create_backend,
    export_onnx,
    load_model,
    resolve_backend,
    session_tile,
    tensorrt_unsupported,
)
from live_restore.inference._bench import bench_cells
from live_restore.models import ModelTask, file_sha256, load_network
from live_restore.simulate import ManualClock, SimMicroscope

SHIPPED = [
    "dfcan-sr2x",
    "dfcan-sr2x-lite",
    "dfcan-sr2x-tiny",
    "refocus",
    "focus-est",
    "interp-t",
    "interp-z",
    "mfsr-sr2x",
]

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
requires_tensorrt = pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("tensorrt") is None,
    reason="needs TensorRT and a CUDA device",
)


def _tiles(spec, count=3, seed=0):
    """Network-unit tiles cut from a simulated low-light frame (what a session sends)."""
    channels, height, width = session_tile(spec)
    side = max(256, height + 40 * count)  # room for the tiles (a whole-frame model's are 512 px)
    scope = SimMicroscope("microtubules", seed=seed, frame_shape=(side, side), clock=ManualClock())
    scope.excitation_percent = 100.0
    frame = scope.snap(np.random.default_rng(seed)).astype(np.float32)
    low, high = np.percentile(frame, [0.1, 99.9])
    image = (frame - low) / (high - low)
    tiles = [image[i * 40 : i * 40 + height, i * 30 : i * 30 + width] for i in range(count)]
    batch = np.stack(tiles)[:, None].repeat(channels, 1).astype(np.float32)
    if spec.task is ModelTask.INTERPOLATION:  # before, after (moved 2 px), the fraction
        batch[:, 1] = np.roll(batch[:, 0], 2, axis=-1)
        batch[:, 2] = 0.5
    return torch.from_numpy(batch)


@pytest.fixture
def cache(tmp_path):
    return EngineCache(tmp_path / "cache")


@pytest.mark.parametrize("name", SHIPPED)
def test_onnxruntime_matches_torch_within_1e_4_for_every_shipped_model(name, cache):
    spec, network, _ = load_network(name)
    torch_cpu = create_backend(network, spec, "torch-cpu", cache=cache)
    ort = create_backend(network, spec, "onnxruntime", cache=cache, tile_shape=session_tile(spec))
    assert isinstance(ort, Backend) and isinstance(torch_cpu, Backend)
    batch = _tiles(spec)
    expected, got = torch_cpu(batch), ort(batch)
    assert got.shape == expected.shape
    # DFCAN included: its attention runs torch.fft in torch and the exported DFT matrices in ONNX
    assert float((got - expected).abs().max()) < 1e-4


@pytest.mark.parametrize("shape", [(37, 45), (130, 64), (64, 201)])
def test_onnxruntime_sessions_take_odd_frame_sizes_and_agree_with_torch(shape):
    frame = np.random.default_rng(1).poisson(120, shape).astype(np.uint16)
    expected = load_model("dfcan-sr2x-lite", "torch-cpu")(frame)
    got = load_model("dfcan-sr2x-lite", "onnxruntime")(frame)
    assert got.shape == (2 * shape[0], 2 * shape[1]) == expected.shape
    assert np.abs(got - expected).max() < 1e-4 * (np.ptp(expected) + 1)


def test_the_focus_estimate_is_the_same_on_onnxruntime():
    scope = SimMicroscope("er", seed=2, frame_shape=(192, 192), clock=ManualClock())
    scope.excitation_percent = 100.0
    scope.stage_um[2] = 1.2
    frame = scope.snap(np.random.default_rng(3))
    a = load_model("focus-est", "torch-cpu")(frame)
    b = load_model("focus-est", "onnxruntime")(frame)
    assert b.defocus_um == pytest.approx(a.defocus_um, abs=1e-4)
    assert b.confidence == pytest.approx(a.confidence, abs=1e-4)


def test_provenance_names_the_backend_and_precision_auto_picked(caplog):
    with caplog.at_level(logging.INFO, logger="live_restore.inference"):
        session = load_model("refocus")
    provenance = session.provenance()
    expected = "torch-cuda" if torch.cuda.is_available() else "torch-cpu"
    assert provenance["backend"] == expected
    assert provenance["precision"] == ("fp16" if torch.cuda.is_available() else "fp32")
    assert f"refocus runs on {expected}" in caplog.text
    ort = load_model("refocus", "onnxruntime").provenance()
    assert ort["backend"] == "onnxruntime" and ort["onnx_graphs"].endswith(".onnx")


def test_wrong_backend_or_precision_names_the_fix():
    with pytest.raises(ValueError, match=r"unknown backend .cuda.*torch-cuda"):
        resolve_backend("cuda")
    with pytest.raises(ValueError, match="torch-cpu runs fp32 here, not fp16"):
        resolve_backend("torch-cpu", "fp16")
    with pytest.raises(ValueError, match="torch-cpu runs fp32 here, not int8"):
        resolve_backend("torch-cpu", "int8")
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        resolve_backend("auto", "int4")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="torch sees no CUDA device"):
            load_model("refocus", "torch-cuda")
        with pytest.raises(RuntimeError, match="no backend here runs fp16"):
            resolve_backend("auto", "fp16")
    assert resolve_backend("onnxruntime") == ("onnxruntime", "fp32")


def test_a_corrupt_cached_graph_is_detected_and_rebuilt(cache, caplog):
    spec, network, _ = load_network("focus-est")
    tile = session_tile(spec)
    backend = create_backend(network, spec, "onnxruntime", cache=cache, tile_shape=tile)
    batch = _tiles(spec)
    reference = backend(batch)
    (entry,) = cache.entries("focus-est")
    assert entry.problem() is None
    # truncate the graph, as a full disk or a killed copy would
    entry.path.write_bytes(entry.path.read_bytes()[:1000])
    assert "sha256 does not match" in (cache.entries()[0].problem() or "")
    with caplog.at_level(logging.WARNING):
        rebuilt = create_backend(network, spec, "onnxruntime", cache=cache, tile_shape=tile)
    assert "unusable" in caplog.text and "rebuilding" in caplog.text
    assert torch.equal(rebuilt(batch), reference)
    assert [e.problem() for e in cache.entries()] == [None]


def test_an_altered_graph_with_a_matching_record_is_refused_then_rebuilt(cache, caplog):
    """The record's hash is right but the file is not ONNX: ONNX Runtime refuses, we rebuild."""
    spec, network, _ = load_network("focus-est")
    tile = session_tile(spec)
    create_backend(network, spec, "onnxruntime", cache=cache, tile_shape=tile)
    (entry,) = cache.entries()
    entry.path.write_bytes(b"not an onnx graph")
    record_path = entry.path.with_name(entry.path.name + ".json")
    record = record_path.read_text().replace(entry.record["sha256"], file_sha256(entry.path))
    record_path.write_text(record)
    assert cache.entries()[0].problem() is None
    with caplog.at_level(logging.WARNING):
        backend = create_backend(network, spec, "onnxruntime", cache=cache, tile_shape=tile)
    assert "ONNX Runtime refused" in caplog.text
    assert backend(_tiles(spec)).shape[0] == 3


def test_clear_removes_one_model_or_all(cache):
    for name in ("focus-est", "refocus"):
        spec, network, _ = load_network(name)
        create_backend(network, spec, "onnxruntime", cache=cache, tile_shape=session_tile(spec))
    assert {e.model for e in cache.entries()} == {"focus-est", "refocus"}
    assert cache.clear("refocus") == 1
    assert [e.model for e in cache.entries()] == ["focus-est"]
    assert cache.clear() == 1 and cache.entries() == []


@pytest.mark.parametrize("name", SHIPPED)
def test_every_exported_graph_uses_only_operators_tensorrt_documents(name, tmp_path):
    spec, network, _ = load_network(name)
    path = export_onnx(network, tmp_path / "model.onnx", (1, *session_tile(spec)))
    assert tensorrt_unsupported(path) == {}


def test_the_operator_check_catches_what_tensorrt_refuses(tmp_path):
    """A negative control: ONNX DFT (torch.fft through the dynamo exporter) and Hardmax."""
    nodes = [
        helper.make_node("DFT", ["x"], ["spectrum"]),
        helper.make_node("Hardmax", ["spectrum"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fft",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 2])],
    )
    path = tmp_path / "dft.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert tensorrt_unsupported(path) == {"DFT": 1, "Hardmax": 1}


# --- GPU (run on the lent machine; skipped here) -----------------------------------------------


@requires_cuda
@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_on_cuda_is_within_1e_2_relative_of_fp32(name, precision, cache):
    spec, network, _ = load_network(name)
    batch = _tiles(spec, count=4)
    fp32 = create_backend(network, spec, "torch-cuda", "fp32", cache=cache)(batch)
    half = create_backend(network, spec, "torch-cuda", precision, cache=cache)(batch)
    scale = float(fp32.abs().max())
    tolerance = 1e-2 if precision == "fp16" else 3e-2  # bf16 keeps 8 mantissa bits, fp16 11
    assert float((half - fp32).abs().max()) <= tolerance * scale


@requires_cuda
@pytest.mark.parametrize("name", SHIPPED)
def test_cuda_fp32_with_graphs_matches_the_cpu(name, cache):
    spec, network, _ = load_network(name)
    batch = _tiles(spec)
    cpu = create_backend(network, spec, "torch-cpu", cache=cache)(batch)
    graphs = create_backend(network, spec, "torch-cuda", "fp32", cache=cache, cuda_graphs=True)
    first, second = graphs(batch), graphs(batch)  # the second call replays the captured graph
    # TF32 may be on for cuDNN convolutions: allow its 10-bit mantissa
    assert float((first - cpu).abs().max()) < 2e-3 * float(cpu.abs().max())
    assert torch.equal(first, second)


@requires_tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_plan_matches_torch_and_is_cached(precision, cache):
    spec, network, _ = load_network("dfcan-sr2x-lite")
    tile = session_tile(spec)
    batch = _tiles(spec)
    expected = create_backend(network, spec, "torch-cpu", cache=cache)(batch)
    plan = create_backend(network, spec, "tensorrt", precision, cache=cache, tile_shape=tile)
    tolerance = 1e-3 if precision == "fp32" else 1e-2
    assert float((plan(batch) - expected).abs().max()) < tolerance * float(expected.abs().max())
    assert {e.kind for e in cache.entries()} == {"onnx", "plan"}


@requires_tensorrt
def test_a_corrupt_tensorrt_plan_is_rebuilt(cache, caplog):
    spec, network, _ = load_network("focus-est")
    tile = session_tile(spec)
    create_backend(network, spec, "tensorrt", "fp32", cache=cache, tile_shape=tile)
    (plan,) = [e for e in cache.entries() if e.kind == "plan"]
    plan.path.write_bytes(plan.path.read_bytes()[:4096])
    with caplog.at_level(logging.WARNING):
        backend = create_backend(network, spec, "tensorrt", "fp32", cache=cache, tile_shape=tile)
    assert "unusable" in caplog.text
    assert backend(_tiles(spec)).shape[0] == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU backend comes first there")
def test_auto_takes_a_models_measured_cpu_runtime_everywhere_auto_is_resolved(cache):
    assert resolve_backend("auto") == ("torch-cpu", "fp32")
    assert resolve_backend("auto", cpu_backend="onnxruntime") == ("onnxruntime", "fp32")
    assert resolve_backend("torch-cpu", cpu_backend="onnxruntime")[0] == "torch-cpu"  # asked
    # a reduced precision only on the runtime it was checked on, not on a stand-in
    assert resolve_backend("auto", "auto", "onnxruntime", ("int8", "fp32")) == (
        "onnxruntime",
        "int8",
    )
    assert resolve_backend("onnxruntime", "auto", "openvino", ("int8", "fp32"))[1] == "fp32"
    # model.yaml: cpu_backend openvino (onnxruntime stands in without it), cpu_precisions bf16
    expected = "openvino" if "openvino" in available_backends() else "onnxruntime"
    tiny = load_model("dfcan-sr2x-tiny", cache=cache)
    assert tiny.provenance()["backend"] == expected
    assert load_model("dfcan-sr2x-tiny", channels_last=True).backend == "torch-cpu"  # torch option
    cells = list(bench_cells(["dfcan-sr2x-tiny", "refocus"], ["auto"], [64], ["auto"]))
    assert [c[1] for c in cells] == [expected, "torch-cpu"]
