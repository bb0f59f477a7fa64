"""ONNX ``LSTM`` and ``GRU`` nodes of one time step → the cell written in plain ONNX ops.

TVM's ONNX importer has no LSTM or GRU, and an int8 step needs every gate visible to quantize it
the way TFLite does. One converter per recurrent op (``CELL_CONVERTERS``) replaces the node by::

    LSTM (gate order i, o, f, c):
        g = MatMul(Concat(x, h), [W | R]ᵀ) + (Wb + Rb)          one FC over the joint input
        i, o, f, c̃ = σ(g[0:H]), σ(g[H:2H]), σ(g[2H:3H]), tanh(g[3H:4H])
        c' = f·c + i·c̃;   h' = o·tanh(c')
    GRU (gate order z, r, h):
        zr = MatMul(Concat(x, h), [W_zr | R_zr]ᵀ) + (Wb_zr + Rb_zr);  z, r = σ(zr[0:H]), σ(zr[H:2H])
        n = tanh(x W_hᵀ + Wb_h + r·(h R_hᵀ + Rb_h))     (linear_before_reset = 1, PyTorch's GRU)
        n = tanh(x W_hᵀ + Wb_h + (r·h) R_hᵀ + Rb_h)     (linear_before_reset = 0)
        h' = (1 − z)·n + z·h

with the node's outputs ``Y`` [1, 1, 1, H], ``Y_h`` and ``Y_c`` [1, 1, H] as reshapes of h' / c'.

Preconditions: one time step (sequence length 1), batch 1, forward direction, the default
activations, no peepholes, no clip, ``input_forget`` = 0, layout 0, constant W, R, B. A node that
breaks one is reported with the reason; nothing is approximated.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tvmse.errors import UnsupportedModelError


class _Builder:
    """Emits nodes and initializers with names derived from the replaced node's name."""

    def __init__(self, graph: onnx.GraphProto, prefix: str):
        self.graph, self.prefix, self.nodes, self.count = graph, prefix, [], 0

    def name(self, what: str) -> str:
        self.count += 1
        return f"{self.prefix}/{what}"

    def const(self, what: str, value: np.ndarray) -> str:
        name = self.name(what)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], what: str, output: str | None = None, **attrs) -> str:
        output = output or self.name(what)
        self.nodes.append(helper.make_node(op, inputs, [output], name=self.name(what + "_node"), **attrs))
        return output

    def fc(self, x: str, weight: np.ndarray, bias: np.ndarray, what: str) -> str:
        """x [1, K] @ weight[N, K]ᵀ + bias[N] as MatMul + Add (the pattern quantizers and tvmse map to one FC)."""
        product = self.node("MatMul", [x, self.const(what + "_W", weight.T.astype(np.float32))], what + "_matmul")
        return self.node("Add", [product, self.const(what + "_B", bias.astype(np.float32))], what)

    def slice_(self, x: str, begin: int, end: int, what: str) -> str:
        return self.node("Slice", [x, self.const(what + "_starts", np.array([begin], np.int64)),
                                   self.const(what + "_ends", np.array([end], np.int64)),
                                   self.const(what + "_axes", np.array([1], np.int64))], what)

    def reshape(self, x: str, shape, what: str, output: str | None = None) -> str:
        return self.node("Reshape", [x, self.const(what + "_shape", np.array(shape, np.int64))], what, output)


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _check(node: onnx.NodeProto, constants: dict, shapes: dict, gates: int) -> tuple[np.ndarray, ...]:
    """W [gates·H, K], R [gates·H, H], Wb, Rb of a one-step forward node; UnsupportedModelError otherwise."""
    where = f"{node.op_type} node '{node.name}'"
    a = _attrs(node)
    problems = []
    if a.get("direction", b"forward") not in (b"forward", "forward"):
        problems.append(f"direction {a['direction']!r} (only forward)")
    if a.get("activations") not in (None, [b"Sigmoid", b"Tanh", b"Tanh"], [b"Sigmoid", b"Tanh"]):
        problems.append(f"activations {a['activations']} (only the defaults)")
    for key in ("clip", "input_forget", "layout"):
        if a.get(key):
            problems.append(f"attribute {key}={a[key]}")
    inputs = list(node.input) + [""] * 8
    if len(node.input) > 7 and node.input[7]:
        problems.append("peephole weights P")
    if inputs[4]:
        problems.append("a sequence_lens input (drop it: one step)")
    for index, what in ((1, "W"), (2, "R")):
        if inputs[index] not in constants:
            problems.append(f"{what} is not a constant")
    x_shape = shapes.get(inputs[0])
    if x_shape is not None and (len(x_shape) != 3 or x_shape[0] != 1 or x_shape[1] != 1):
        problems.append(f"input X of shape {x_shape} (one step of batch 1: [1, 1, features])")
    if problems:
        raise UnsupportedModelError(f"{where}: cannot lower " + "; ".join(problems))
    w, r = constants[inputs[1]][0], constants[inputs[2]][0]
    hidden = r.shape[1]
    b = constants[inputs[3]][0] if inputs[3] else np.zeros(2 * gates * hidden, np.float32)
    if w.shape[0] != gates * hidden:
        raise UnsupportedModelError(f"{where}: W has {w.shape[0]} rows, expected {gates}·{hidden}")
    return w.astype(np.float64), r.astype(np.float64), b[:gates * hidden].astype(np.float64), \
        b[gates * hidden:].astype(np.float64)


def _state_input(b: _Builder, name: str, hidden: int, what: str) -> str:
    """The [1, H] view of an initial-state input, or zeros when the node has none."""
    if not name:
        return b.const(what + "_zero", np.zeros((1, hidden), np.float32))
    return b.reshape(name, [1, hidden], what)


def _outputs(b: _Builder, node: onnx.NodeProto, values: list[str], hidden: int) -> None:
    """Y [1, 1, 1, H] and Y_h / Y_c [1, 1, H] under the node's own output names."""
    outputs = list(node.output) + [""] * 3
    if outputs[0]:
        b.reshape(values[0], [1, 1, 1, hidden], "Y", outputs[0])
    for k, value in enumerate(values):
        if outputs[k + 1]:
            b.reshape(value, [1, 1, hidden], f"Y_{'hc'[k]}", outputs[k + 1])


def lstm_cell(node: onnx.NodeProto, graph: onnx.GraphProto, constants: dict, shapes: dict) -> list[onnx.NodeProto]:
    w, r, wb, rb = _check(node, constants, shapes, 4)
    hidden = r.shape[1]
    b = _Builder(graph, node.name or node.output[0])
    inputs = list(node.input) + [""] * 8
    x = b.reshape(inputs[0], [1, w.shape[1]], "x")
    h = _state_input(b, inputs[5], hidden, "h")
    c = _state_input(b, inputs[6], hidden, "c")
    joint = b.node("Concat", [x, h], "xh", axis=1)
    gates = b.fc(joint, np.concatenate([w, r], axis=1), wb + rb, "gates")
    i, o, f = (b.node("Sigmoid", [b.slice_(gates, k * hidden, (k + 1) * hidden, f"{g}_pre")], g)
               for k, g in enumerate("iof"))
    candidate = b.node("Tanh", [b.slice_(gates, 3 * hidden, 4 * hidden, "g_pre")], "g")
    c_new = b.node("Add", [b.node("Mul", [f, c], "fc"), b.node("Mul", [i, candidate], "ig")], "c_new")
    h_new = b.node("Mul", [o, b.node("Tanh", [c_new], "tanh_c")], "h_new")
    _outputs(b, node, [h_new, c_new], hidden)
    return b.nodes


def gru_cell(node: onnx.NodeProto, graph: onnx.GraphProto, constants: dict, shapes: dict) -> list[onnx.NodeProto]:
    w, r, wb, rb = _check(node, constants, shapes, 3)
    hidden = r.shape[1]
    before_reset = bool(_attrs(node).get("linear_before_reset", 0))
    b = _Builder(graph, node.name or node.output[0])
    inputs = list(node.input) + [""] * 6
    x = b.reshape(inputs[0], [1, w.shape[1]], "x")
    h = _state_input(b, inputs[5], hidden, "h")
    zr_rows = slice(0, 2 * hidden)
    joint = b.node("Concat", [x, h], "xh", axis=1)
    zr = b.fc(joint, np.concatenate([w[zr_rows], r[zr_rows]], axis=1), wb[zr_rows] + rb[zr_rows], "zr")
    z = b.node("Sigmoid", [b.slice_(zr, 0, hidden, "z_pre")], "z")
    reset = b.node("Sigmoid", [b.slice_(zr, hidden, 2 * hidden, "r_pre")], "r")
    n_rows = slice(2 * hidden, 3 * hidden)
    x_part = b.fc(x, w[n_rows], wb[n_rows], "n_x")
    if before_reset:
        h_part = b.node("Mul", [reset, b.fc(h, r[n_rows], rb[n_rows], "n_h")], "r_n_h")
        pre = b.node("Add", [x_part, h_part], "n_pre")
    else:
        h_part = b.fc(b.node("Mul", [reset, h], "r_h"), r[n_rows], rb[n_rows], "n_h")
        pre = b.node("Add", [x_part, h_part], "n_pre")
    n = b.node("Tanh", [pre], "n")
    one_minus_z = b.node("Sub", [b.const("one", np.ones((1, hidden), np.float32)), z], "one_minus_z")
    h_new = b.node("Add", [b.node("Mul", [one_minus_z, n], "zn"), b.node("Mul", [z, h], "zh")], "h_new")
    _outputs(b, node, [h_new], hidden)
    return b.nodes


CELL_CONVERTERS: dict[str, Callable] = {"LSTM": lstm_cell, "GRU": gru_cell}


def lower_recurrent_cells(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with every LSTM/GRU node replaced by its cell (see the module docstring)."""
    if not any(n.op_type in CELL_CONVERTERS for n in model.graph.node):
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:   # noqa: BLE001 - shapes only sharpen the checks
        inferred = model
    shapes = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    nodes = []
    for node in model.graph.node:
        convert = CELL_CONVERTERS.get(node.op_type)
        nodes += convert(node, model.graph, constants, shapes) if convert else [node]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model
