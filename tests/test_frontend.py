"""Frontend: ONNX checks, TVM import, QDQ → integer canonicalization."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tvmse import frontend
from tvmse.errors import ModelFileError, QuantizationError, UnsupportedModelError
from tvmse.ir import IntegerGraph


def _fc_model(w: np.ndarray, w_scales: np.ndarray, bias: np.ndarray, x_scale=1 / 127, y_scale=0.05, extra_nodes=(),
              input_dims=None) -> onnx.ModelProto:
    """x int8 → DQ → MatMul(DQ(W [K, N], axis 1)) + DQ(b) → Q → y, the QDQ FC of tvmse's exporter."""
    k, n = w.shape
    inits = [numpy_helper.from_array(a, name) for a, name in [
        (w, "W"), (w_scales.astype(np.float32), "ws"), (np.zeros(n, np.int8), "wz"), (bias, "b"),
        ((np.float32(x_scale) * w_scales).astype(np.float32), "bs"), (np.zeros(n, np.int32), "bz"),
        (np.array(x_scale, np.float32), "xs"), (np.array(0, np.int8), "xz"),
        (np.array(y_scale, np.float32), "ys"), (np.array(3, np.int8), "yz")]]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xd"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["W", "ws", "wz"], ["wd"], name="dq_w", axis=1),
             helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bd"], name="dq_b", axis=0),
             helper.make_node("MatMul", ["xd", "wd"], ["mm"], name="fc"),
             helper.make_node("Add", ["mm", "bd"], ["yf"], name="fc_bias"),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"], name="q_y"), *extra_nodes]
    dims = input_dims or [1, k]
    graph = helper.make_graph(nodes, "fc", [helper.make_tensor_value_info("x", TensorProto.INT8, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, [1, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def _random_fc(rng, k=12, n=5):
    w = rng.integers(-127, 128, (k, n)).astype(np.int8)
    ws = (rng.random(n) * 0.01 + 0.001).astype(np.float32)
    b = rng.integers(-500, 500, n).astype(np.int32)
    return w, ws, b


def test_fc_canonicalizes_to_integer_fully_connected(tmp_path):
    rng = np.random.default_rng(0)
    w, ws, b = _random_fc(rng)
    path = tmp_path / "fc.onnx"
    onnx.save(_fc_model(w, ws, b), path)
    graph = frontend.load(path)
    assert [op.kind for op in graph.ops] == ["fully_connected"]
    op = graph.ops[0]
    assert op.name == "y" and graph.outputs == ["y"] and [t.name for t in graph.inputs] == ["x"]
    np.testing.assert_array_equal(op.consts["weight"], w.T)     # stored [N, K]
    np.testing.assert_array_equal(op.consts["bias"], b)
    np.testing.assert_array_equal(np.float32(op.attrs["weight_scales"]), ws)
    assert (op.output.scale, op.output.zero_point) == (np.float32(0.05), 3)
    assert graph.inputs[0].quant() == (np.float32(1 / 127), 0)


def test_integer_form_round_trips_through_relax(small_graph):
    again = IntegerGraph.from_module(small_graph.to_module())
    assert [(op.kind, op.name, op.inputs) for op in again.ops] == [(op.kind, op.name, op.inputs) for op in small_graph.ops]
    for a, b in zip(again.ops, small_graph.ops):
        assert a.output == b.output and a.attrs == b.attrs
        for key in a.consts:
            np.testing.assert_array_equal(a.consts[key], b.consts[key])


def test_tinylstm_canonical_form(small_graph):
    kinds = [op.kind for op in small_graph.ops]
    # per layer: concat, FC, 4 slices, 3 logistic + 2 tanh, 3 mul, 1 add; then FC + logistic
    assert kinds.count("fully_connected") == 3 and kinds.count("concat") == 2 and kinds.count("slice") == 8
    assert kinds.count("logistic") == 7 and kinds.count("tanh") == 4 and kinds.count("mul") == 6
    assert kinds.count("add") == 2
    assert small_graph.outputs == ["mask", "h0_out", "c0_out", "h1_out", "c1_out"]
    assert [t.name for t in small_graph.inputs] == ["frame", "h0", "c0", "h1", "c1"]
    names = {op.name for op in small_graph.ops}
    assert {"lstm0/fc", "lstm1/fc", "out/fc", "lstm0/i", "lstm1/tanh_c"} <= names   # source names kept


# ---- bad input --------------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        frontend.load(tmp_path / "nope.onnx")


def test_not_onnx(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"this is not a protobuf \x00\xff\x13" * 10)
    with pytest.raises(ModelFileError, match="not a valid ONNX file"):
        frontend.load(path)


def test_float_model_points_to_quantization(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "float", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              [numpy_helper.from_array(np.ones((4, 2), np.float32), "W")])
    path = tmp_path / "float.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), path)
    with pytest.raises(QuantizationError, match="float model.*[Qq]uantize"):
        frontend.load(path)


def test_unsupported_ops_listed_with_node_names(tmp_path):
    rng = np.random.default_rng(1)
    extra = [helper.make_node("Erf", ["yf"], ["r1"], name="erf_a"),
             helper.make_node("Erf", ["r1"], ["r2"], name="erf_b"),
             helper.make_node("LSTM", ["xd", "W3", "R3"], ["l"], name="my_lstm", hidden_size=2)]
    path = tmp_path / "unsupported.onnx"
    onnx.save(_fc_model(*_random_fc(rng), extra_nodes=extra), path)
    with pytest.raises(UnsupportedModelError) as info:
        frontend.load(path)
    message = str(info.value)
    assert "Erf at node(s) erf_a, erf_b" in message and "LSTM at node(s) my_lstm" in message
    assert "--calibration" in message   # a float LSTM: quantizing writes it out as int8 cells


def test_dynamic_input_shape(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "dynamic.onnx"
    onnx.save(_fc_model(*_random_fc(rng), input_dims=["batch", 12]), path)
    with pytest.raises(UnsupportedModelError, match="input 'x' has a dynamic shape \\(batch\\)"):
        frontend.load(path)


def test_sigmoid_with_another_output_quantization_gets_a_requantize(tmp_path):
    rng = np.random.default_rng(3)
    model = _fc_model(*_random_fc(rng))
    g = model.graph
    g.node.extend([helper.make_node("DequantizeLinear", ["y", "ys", "yz"], ["yd"], name="dq_y"),
                   helper.make_node("Sigmoid", ["yd"], ["s"], name="sig"),
                   helper.make_node("QuantizeLinear", ["s", "ys", "yz"], ["sq"], name="q_s")])
    g.output.append(helper.make_tensor_value_info("sq", TensorProto.INT8, [1, 5]))
    path = tmp_path / "sig.onnx"
    onnx.save(model, path)
    graph = frontend.load(path)
    logistic, requantize = graph.ops[-2:]
    assert (logistic.kind, requantize.kind) == ("logistic", "requantize")
    assert logistic.output.quant() == (1.0 / 256.0, -128)   # TFLite's fixed grid, then the file's
    assert requantize.name == "sq" and requantize.inputs == [logistic.name]
