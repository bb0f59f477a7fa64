"""QDQ ONNX export of a fake-quant TinyLSTM step.

The file holds one streaming step with static shapes: int8 inputs ``frame`` [1, n_bins] and
``h0, c0, h1, c1, …`` [1, hidden]; int8 outputs ``mask`` and ``h0_out, c0_out, …``. Every int8
tensor is produced by a QuantizeLinear and read through a DequantizeLinear; weights are int8
initializers (per-output-channel scales, DequantizeLinear axis 1 on the [in, out] MatMul
weight), biases int32 initializers on the accumulator grid. The LSTM cells are written as
Concat/MatMul/Add/Split/Sigmoid/Tanh/Mul, the forms TVM's ONNX importer understands.
onnxruntime runs the file with the same outputs as the torch model's ``step`` in fake-quant mode.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from tvmse.models.quant import WEIGHT_MAX, quantize_int, weight_scales, INT32_MIN, INT32_MAX
from tvmse.models.tinylstm import (FEATURE_SCALE, SIGMOID_SCALE, SIGMOID_ZERO_POINT, TANH_SCALE,
                                   TANH_ZERO_POINT, TinyLSTM)

OPSET = 21


class _GraphWriter:
    """Accumulates QDQ nodes; every int8 activation is a named tensor with a known quantization."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.quant: dict[str, tuple[float, int]] = {}
        self._consts: dict[tuple, str] = {}

    def const(self, value: np.ndarray, hint: str) -> str:
        key = (value.dtype.str, value.shape, value.tobytes())
        if key not in self._consts:
            name = f"{hint}_{len(self._consts)}"
            self.initializers.append(numpy_helper.from_array(value, name))
            self._consts[key] = name
        return self._consts[key]

    def qparams(self, scale: float, zero_point: int) -> tuple[str, str]:
        return (self.const(np.array(scale, np.float32), "scale"),
                self.const(np.array(zero_point, np.int8), "zero_point"))

    def dq(self, tensor: str) -> str:
        s, z = self.qparams(*self.quant[tensor])
        out = f"{tensor}/dq"
        if not any(n.output[0] == out for n in self.nodes):
            self.nodes.append(helper.make_node("DequantizeLinear", [tensor, s, z], [out], name=out))
        return out

    def q(self, value: str, name: str, scale: float, zero_point: int = 0) -> str:
        s, z = self.qparams(scale, zero_point)
        self.nodes.append(helper.make_node("QuantizeLinear", [value, s, z], [name], name=f"{name}/q"))
        self.quant[name] = (float(np.float32(scale)), zero_point)
        return name

    def op(self, op_type: str, inputs: list[str], name: str, scale: float, zero_point: int = 0, **attrs) -> str:
        """op_type on dequantized int8 inputs, its output quantized to ``name``."""
        node = helper.make_node(op_type, [self.dq(t) for t in inputs], [f"{name}/f"], name=name, **attrs)
        self.nodes.append(node)
        return self.q(f"{name}/f", name, scale, zero_point)

    def fully_connected(self, x: str, w: torch.Tensor, b: torch.Tensor, name: str, out_scale: float) -> str:
        """MatMul(x, DQ(W_int8 [in, out], axis 1)) + DQ(b_int32) → Q."""
        x_scale = self.quant[x][0]
        ws = weight_scales(w)
        w_int = quantize_int(w.detach(), ws[:, None], 0, -WEIGHT_MAX, WEIGHT_MAX).numpy().astype(np.int8)
        bias_scale = (x_scale * ws).to(torch.float32)
        b_int = quantize_int(b.detach(), bias_scale, 0, INT32_MIN, INT32_MAX).numpy().astype(np.int64)
        b_int = np.clip(b_int, INT32_MIN, INT32_MAX)  # float32(INT32_MAX) is 2**31: would wrap to INT32_MIN
        w_name = self.const(np.ascontiguousarray(w_int.T), f"{name}.weight")
        ws_name = self.const(ws.numpy().astype(np.float32), f"{name}.weight_scale")
        wz_name = self.const(np.zeros(len(ws), np.int8), f"{name}.weight_zero_point")
        b_name = self.const(b_int.astype(np.int32), f"{name}.bias")
        bs_name = self.const(bias_scale.numpy(), f"{name}.bias_scale")
        bz_name = self.const(np.zeros(len(ws), np.int32), f"{name}.bias_zero_point")
        self.nodes += [
            helper.make_node("DequantizeLinear", [w_name, ws_name, wz_name], [f"{name}/w"], name=f"{name}/w", axis=1),
            helper.make_node("DequantizeLinear", [b_name, bs_name, bz_name], [f"{name}/b"], name=f"{name}/b", axis=0),
            helper.make_node("MatMul", [self.dq(x), f"{name}/w"], [f"{name}/mm"], name=f"{name}/matmul"),
            helper.make_node("Add", [f"{name}/mm", f"{name}/b"], [f"{name}/f"], name=f"{name}/bias_add"),
        ]
        return self.q(f"{name}/f", name, out_scale)


def _lstm_cell(g: _GraphWriter, model: TinyLSTM, layer: int, x: str, h: str, c: str) -> tuple[str, str]:
    H = model.config.hidden
    p = f"lstm{layer}"
    _, w, b = model.effective_weights()[layer]
    xh = g.op("Concat", [x, h], f"{p}/xh", FEATURE_SCALE, axis=1)
    gates = g.fully_connected(xh, w, b, f"{p}/fc", model.activation_scale(layer, "gates"))
    split = [f"{p}/{k}_pre/f" for k in "ifgo"]
    g.nodes.append(helper.make_node("Split", [g.dq(gates)], split, name=f"{p}/split", axis=1, num_outputs=4))
    pre = {k: g.q(f"{p}/{k}_pre/f", f"{p}/{k}_pre", *g.quant[gates]) for k in "ifgo"}
    i, f, o = (g.op("Sigmoid", [pre[k]], f"{p}/{k}", SIGMOID_SCALE, SIGMOID_ZERO_POINT) for k in "ifo")
    gg = g.op("Tanh", [pre["g"]], f"{p}/g", TANH_SCALE, TANH_ZERO_POINT)
    fc = g.op("Mul", [f, c], f"{p}/fc_mul", model.activation_scale(layer, "fc"))
    ig = g.op("Mul", [i, gg], f"{p}/ig_mul", model.activation_scale(layer, "ig"))
    c_new = g.op("Add", [fc, ig], f"c{layer}_out", model.activation_scale(layer, "c"))
    tc = g.op("Tanh", [c_new], f"{p}/tanh_c", TANH_SCALE, TANH_ZERO_POINT)
    h_new = g.op("Mul", [o, tc], f"h{layer}_out", FEATURE_SCALE)
    return h_new, c_new


def build_qdq_onnx(model: TinyLSTM) -> onnx.ModelProto:
    """The fake-quant ``model``'s streaming step as a QDQ ONNX model (in memory)."""
    cfg = model.config
    g = _GraphWriter()
    inputs = [helper.make_tensor_value_info("frame", TensorProto.INT8, [1, cfg.n_bins])]
    g.quant["frame"] = (float(np.float32(FEATURE_SCALE)), 0)
    for layer in range(cfg.layers):
        for kind, scale in (("h", FEATURE_SCALE), ("c", model.activation_scale(layer, "c"))):
            inputs.append(helper.make_tensor_value_info(f"{kind}{layer}", TensorProto.INT8, [1, cfg.hidden]))
            g.quant[f"{kind}{layer}"] = (float(np.float32(scale)), 0)
    x = "frame"
    state_out = []
    for layer in range(cfg.layers):
        x, c = _lstm_cell(g, model, layer, x, f"h{layer}", f"c{layer}")
        state_out += [x, c]
    _, w, b = model.effective_weights()[-1]
    logits = g.fully_connected(x, w, b, "out/fc", model.activation_scale(None, "logits"))
    mask = g.op("Sigmoid", [logits], "mask", SIGMOID_SCALE, SIGMOID_ZERO_POINT)
    outputs = [helper.make_tensor_value_info(t, TensorProto.INT8, [1, cfg.n_bins if t == "mask" else cfg.hidden])
               for t in [mask] + state_out]
    graph = helper.make_graph(g.nodes, "tinylstm_step", inputs, outputs, g.initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="tvmse")
    onnx_model.ir_version = 10
    onnx_model.doc_string = (f"TinyLSTM streaming step: {cfg.layers} x LSTM({cfg.hidden}), "
                             f"{cfg.n_bins} bins, int8 QDQ")
    onnx.checker.check_model(onnx_model)
    return onnx_model


def export_qdq_onnx(model: TinyLSTM, path: str | os.PathLike) -> Path:
    """Write the QDQ ONNX file atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    proto = build_qdq_onnx(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        onnx.save(proto, tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a model file is meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
