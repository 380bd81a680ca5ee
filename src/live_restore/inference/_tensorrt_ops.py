"""Which ONNX operators TensorRT's ONNX parser accepts: the documented list, as data.

TensorRT cannot be installed here, so whether it will take an exported graph is checked against
its documentation instead: onnx-tensorrt ``docs/operators.md`` for TensorRT 8.5 (operators up to
opset 17, the opset we export at), the rows marked "Y". Later versions only add operators, so a
graph inside this list is inside theirs. ``DFT`` is listed there as unsupported, which is why
DFCAN's attention exports as matrix products.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["TENSORRT_ONNX_OPERATORS", "TENSORRT_OPERATORS_SOURCE", "tensorrt_unsupported"]

TENSORRT_OPERATORS_SOURCE = "onnx-tensorrt docs/operators.md, TensorRT 8.5, opset <= 17"

TENSORRT_ONNX_OPERATORS = frozenset(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
    Cast Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum
    DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten
    Floor Gather GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater
    GreaterOrEqual GridSample GRU HardSwish HardSigmoid Identity If ImageScaler
    InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM
    LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mod Mul Neg
    NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear
    RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1
    ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
    ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter
    ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus
    Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose
    Trilu Unsqueeze Upsample Where Xor
    """.split()
)


def tensorrt_unsupported(onnx_path: Path) -> dict[str, int]:
    """Operators of the graph (subgraphs included) that are not on TensorRT's list, with counts.

    Also flags two documented restrictions our exports could hit: ``Conv``/``ConvTranspose``
    weights must be initializers, and the graph's opset must not exceed 17.
    """
    import onnx

    model = onnx.load(str(onnx_path))
    problems: dict[str, int] = {}
    for imported in model.opset_import:
        if imported.domain in ("", "ai.onnx") and imported.version > 17:
            problems[f"opset {imported.version} (> 17)"] = 1
    initializers = {tensor.name for tensor in model.graph.initializer}
    constants = {
        output for node in model.graph.node if node.op_type == "Constant" for output in node.output
    }
    for node in _nodes(model.graph):
        if node.domain not in ("", "ai.onnx") or node.op_type not in TENSORRT_ONNX_OPERATORS:
            key = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
            problems[key] = problems.get(key, 0) + 1
        elif node.op_type in ("Conv", "ConvTranspose") and node.input[1] not in (
            initializers | constants
        ):
            key = f"{node.op_type} with computed weights"
            problems[key] = problems.get(key, 0) + 1
    return problems


def _nodes(graph: Any) -> list[Any]:
    found = []
    for node in graph.node:
        found.append(node)
        for attribute in node.attribute:
            if attribute.g is not None and len(attribute.g.node):
                found.extend(_nodes(attribute.g))
            for subgraph in attribute.graphs:
                found.extend(_nodes(subgraph))
    return found
