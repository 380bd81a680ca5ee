import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from live_restore.inference import export_onnx
from live_restore.models import load_network


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("dfcan-sr2x", (1, 1, 48, 48)),
        ("dfcan-sr2x-lite", (1, 1, 64, 64)),
        ("focus-est", (3, 1, 64, 64)),
        ("refocus", (1, 1, 64, 64)),
    ],
)
def test_every_shipped_model_exports_to_onnx_and_runs_the_same(tmp_path, name, shape):
    _, network, _ = load_network(name)
    path = export_onnx(network, tmp_path / f"{name}.onnx", shape)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    # DFCAN's attention exports as matrix products: no DFT operator for TensorRT to refuse
    assert "DFT" not in {node.op_type for node in graph.graph.node}
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x})
    with torch.no_grad():
        expected = network(torch.from_numpy(x)).numpy()
    assert np.abs(got - expected).max() < 1e-4
