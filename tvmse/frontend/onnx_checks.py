"""Checks on an ONNX file before import: fail early, completely, with node names.

Everything found wrong is reported in one error: every unsupported op with its node names, every
dynamic input dimension, a float model with no quantization.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from tvmse.errors import ModelFileError, QuantizationError, UnsupportedModelError

# ONNX op types the QDQ → integer canonicalization understands (see qdq_to_integer.py).
SUPPORTED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "MatMul", "Gemm", "Add", "Sub", "Mul", "Sigmoid", "Tanh",
    "Relu", "Clip", "Concat", "Split", "Slice", "Identity", "Constant", "Reshape", "Squeeze", "Unsqueeze",
    "Flatten", "Transpose", "Conv", "MaxPool", "ReduceMean", "Softmax", "Gather",
    "Sqrt", "Reciprocal",   # only as Reciprocal(Sqrt(x)), which tvmse.quantize writes for Div(a, Sqrt(x))
})
# recurrent ops a quantizer leaves float: `tvmse.quantize` writes them out as int8 cells
RECURRENT_OPS = frozenset({"LSTM", "GRU"})
QUANT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Read and validate an int8 ONNX model file; raises a TvmseError subclass on any problem."""
    model = read_onnx(path)
    check_model(model, str(path))
    return model


def read_onnx(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX model file (float or quantized); ModelFileError if it is missing or not ONNX."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFileError(f"model path is not a file: {path}")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        raise ModelFileError(f"{path} is not a valid ONNX file ({type(e).__name__}: {e}); "
                             "pass a .onnx model (or an int8 .tflite)") from None
    if not model.graph.node:
        raise ModelFileError(f"{path} is not a valid ONNX file: its graph has no nodes")
    return model


def check_model(model: onnx.ModelProto, where: str) -> None:
    if not {n.op_type for n in model.graph.node} & QUANT_OPS:
        check_quantized(model, where)   # a float model: one line saying how to quantize it
    problems = unsupported_op_problems(model) + dynamic_shape_problems(model)
    if problems:
        raise UnsupportedModelError(f"{where}: cannot compile this model:\n  " + "\n  ".join(problems))
    check_quantized(model, where)


def unsupported_op_problems(model: onnx.ModelProto) -> list[str]:
    nodes_by_op = defaultdict(list)
    for node in model.graph.node:
        if node.op_type not in SUPPORTED_OPS or node.domain not in ("", "ai.onnx"):
            nodes_by_op[f"{node.domain + '.' if node.domain else ''}{node.op_type}"].append(node.name or "<unnamed>")
    problems = []
    for op, names in sorted(nodes_by_op.items()):
        fix = (" (a float recurrent node: quantize the model with --calibration CALIB.npz, which writes the "
               "cell out in int8)") if op in RECURRENT_OPS else ""
        problems.append(f"unsupported op {op} at node(s) {', '.join(names)}{fix}")
    if nodes_by_op:
        problems.append(f"supported ops are: {', '.join(sorted(SUPPORTED_OPS | RECURRENT_OPS))}")
    return problems


def dynamic_shape_problems(model: onnx.ModelProto) -> list[str]:
    initializers = {i.name for i in model.graph.initializer}
    problems = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        bad = [d.dim_param or "?" for d in dims if not d.HasField("dim_value") or d.dim_value <= 0]
        if bad or not dims:
            problems.append(f"input '{value.name}' has a dynamic shape ({', '.join(bad) or 'no shape'}); "
                            "export the model with static shapes (batch 1, one frame per step)")
    return problems


def check_quantized(model: onnx.ModelProto, where: str) -> None:
    ops = {n.op_type for n in model.graph.node}
    float_inputs = [v.name for v in model.graph.input
                    if v.type.tensor_type.elem_type not in (onnx.TensorProto.INT8,)
                    and v.name not in {i.name for i in model.graph.initializer}]
    if not ops & QUANT_OPS:
        raise QuantizationError(
            f"{where} is a float model (no QuantizeLinear/DequantizeLinear): tvmse compiles int8 models. "
            "Pass --calibration CALIB.npz (an array [T, *shape] of frames per non-state input) to quantize "
            "it while compiling, or quantize it first with `python -m tvmse.quantize`.")
    if float_inputs:
        raise QuantizationError(
            f"{where}: input(s) {', '.join(float_inputs)} are not int8; the compiled step takes int8 "
            "tensors. Make the graph start with DequantizeLinear on int8 inputs, or pass --calibration CALIB.npz to "
            "quantize the model with tvmse (onnxruntime's quantizer keeps float inputs).")
