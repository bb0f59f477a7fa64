"""``python -m tvmse.quantize MODEL.onnx --calibration CALIB.npz --output OUT.onnx``: float → int8 QDQ ONNX.

Post-training quantization of one streaming step, with TFLite's int8 rules so that every op of the
result maps onto an integer op that Vela keeps on the NPU:

1. LSTM / GRU nodes become their cells in plain ONNX ops (``tvmse.frontend.onnx_cells``); a model
   that is already QDQ (e.g. from ``onnxruntime.quantization``) is first made float again.
2. Calibration rollout: the float model runs in onnxruntime over the T frames of ``CALIB.npz`` (one
   array ``[T, *shape]`` per non-state input), the state carried from zeros, every intermediate float
   tensor observed.
3. Quantization: weights int8, symmetric, per output channel; biases int32 on the grid
   x_scale·w_scale; activations int8 per tensor, asymmetric, from the observed range (``--percentile``
   clips outliers). Tensors that TFLite's int8 kernels require to share a quantization share one:
   the two sides of data movement (reshape, squeeze, transpose, slice, split, concatenation) and a
   state input with the output fed back into it; sigmoid and tanh outputs take TFLite's fixed
   1/256, −128 and 1/128, 0.
4. The QDQ model (int8 inputs and outputs under the source's names) and the int8-vs-float error of
   every output over the calibration rollout (relative RMS, max abs), run by onnxruntime.

Only what the compile path maps onto integer ops is quantized; anything else is reported by name.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tvmse.errors import ConfigError, ModelFileError, QuantizationError, TvmseError, cli_entry
from tvmse.frontend.onnx_cells import lower_recurrent_cells
from tvmse.frontend.onnx_fold import (divisions_to_multiplications, fold_constants, fold_pad_into_conv, gather_to_slice,
                                     remove_identities)
from tvmse.frontend.state import Port, pair_states

logger = logging.getLogger("tvmse")

SIGMOID_QUANT = (1.0 / 256.0, -128)   # also SOFTMAX's int8 output
TANH_QUANT = (1.0 / 128.0, 0)
# ops whose int8 output must keep the input's quantization (TFLite moves bytes, never rescales)
DATA_MOVEMENT = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "Slice", "Split", "Identity",
                 "Gather", "MaxPool"}
WEIGHTED = {"MatMul": 1, "Gemm": 1, "Conv": 1}   # op → input index of the weight


@dataclass
class QuantizeResult:
    model: onnx.ModelProto
    state_pairs: dict[str, str]
    quant: dict[str, tuple[float, int]]           # activation → (scale, zero point)
    errors: dict[str, dict[str, float]] = field(default_factory=dict)   # output → rel_rms, max_abs
    frames: int = 0

    def error_lines(self) -> list[str]:
        return [f"{name}: relative RMS {e['rel_rms']:.4f}, max |error| {e['max_abs']:.4g} "
                f"(float range {e['float_range']:.4g})" for name, e in self.errors.items()]


# ---- preparation -----------------------------------------------------------------------------------
def strip_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float model from a QDQ one: constant DequantizeLinear folded into float initializers,
    activation QuantizeLinear → DequantizeLinear pairs bypassed."""
    if not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    rename, keep, new_inits = {}, [], []
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            data = inits[node.input[0]].astype(np.float64)
            scale = inits[node.input[1]].astype(np.float64)
            zp = inits[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2] else 0.0
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if np.ndim(scale) == 1 and data.ndim > 1:
                shape = [1] * data.ndim
                shape[axis] = -1
                scale, zp = scale.reshape(shape), np.reshape(zp, shape) if np.ndim(zp) else zp
            new_inits.append(numpy_helper.from_array(((data - zp) * scale).astype(np.float32), node.output[0]))
        elif node.op_type == "DequantizeLinear" and producer.get(node.input[0], None) is not None \
                and producer[node.input[0]].op_type == "QuantizeLinear":
            rename[node.output[0]] = producer[node.input[0]].input[0]
        elif node.op_type == "QuantizeLinear":
            continue
        else:
            keep.append(node)
    graph_outputs = {o.name for o in model.graph.output}
    for node in keep:
        for k, name in enumerate(node.input):
            while name in rename:
                name = rename[name]
            node.input[k] = name
    for node in model.graph.node:   # a graph output written by a removed QuantizeLinear/DequantizeLinear
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.output[0] in graph_outputs \
                and node.output[0] not in {o for n in keep for o in n.output} and node.input[0] not in inits:
            source = node.input[0] if node.op_type == "QuantizeLinear" else node.output[0]
            while source in rename:
                source = rename[source]
            keep.append(helper.make_node("Identity", [source], [node.output[0]]))
    for value in [*model.graph.input, *model.graph.output]:
        if value.type.tensor_type.elem_type in (TensorProto.INT8, TensorProto.UINT8):
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    del model.graph.node[:]
    model.graph.node.extend(keep)
    model.graph.initializer.extend(new_inits)
    return _drop_unused_initializers(model)


def _drop_unused_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    used = {name for n in model.graph.node for name in n.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return model


def prepare_float(model: onnx.ModelProto) -> onnx.ModelProto:
    """Float model with recurrent cells written out, shapes inferred."""
    model = remove_identities(fold_constants(strip_qdq(model)))
    model = divisions_to_multiplications(gather_to_slice(fold_pad_into_conv(model)))
    model = _drop_unused_initializers(lower_recurrent_cells(model))
    if model.opset_import and next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0) < 13:
        model = onnx.version_converter.convert_version(model, 13)   # per-axis DequantizeLinear needs 13
    return onnx.shape_inference.infer_shapes(model)


# ---- calibration ---------------------------------------------------------------------------------
def _session(model: onnx.ModelProto):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _static_shape(value: onnx.ValueInfoProto) -> tuple[int, ...]:
    return tuple(d.dim_value for d in value.type.tensor_type.shape.dim)


def _dynamic_tensors(model: onnx.ModelProto) -> set[str]:
    """Tensors that depend on a graph input (the rest are constants, e.g. shape arithmetic)."""
    dynamic = {i.name for i in model.graph.input}
    for node in model.graph.node:
        if any(name in dynamic for name in node.input):
            dynamic.update(node.output)
    return dynamic


def _float_tensors(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    values = [*model.graph.input, *model.graph.value_info, *model.graph.output]
    return {v.name: _static_shape(v) for v in values if v.type.tensor_type.elem_type == TensorProto.FLOAT}


def calibrate(model: onnx.ModelProto, frames: dict[str, np.ndarray], pairs: dict[str, str],
              percentile: float | None) -> tuple[dict[str, tuple[float, float]], dict[str, list[np.ndarray]]]:
    """(observed range of every dynamic float tensor, the float outputs of each frame)."""
    dynamic = _dynamic_tensors(model) & set(_float_tensors(model))
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    outputs = {o.name for o in probe.graph.output}
    for value in probe.graph.value_info:
        if value.name in dynamic and value.name not in outputs:
            probe.graph.output.append(value)
    session = _session(probe)
    names = [o.name for o in session.get_outputs()]
    shapes = {i.name: _static_shape(i) for i in model.graph.input}
    state = {i: np.zeros(shapes[i], np.float32) for i in pairs}
    samples: dict[str, list[np.ndarray]] = defaultdict(list)
    float_outputs: dict[str, list[np.ndarray]] = defaultdict(list)
    count = len(next(iter(frames.values())))
    for t in range(count):
        feeds = {name: frames[name][t].astype(np.float32).reshape(shapes[name]) for name in frames}
        values = dict(zip(names, session.run(names, {**feeds, **state})))
        values.update(feeds)
        values.update(state)
        for name, value in values.items():
            if name in dynamic:
                samples[name].append(np.asarray(value, np.float32).reshape(-1))
        for o in model.graph.output:
            float_outputs[o.name].append(values[o.name])
        state = {i: values[o].reshape(shapes[i]) for i, o in pairs.items()}
    ranges = {}
    for name, parts in samples.items():
        data = np.concatenate(parts)
        if percentile is None:
            ranges[name] = (float(data.min()), float(data.max()))
        else:
            ranges[name] = (float(np.percentile(data, 100 - percentile)), float(np.percentile(data, percentile)))
    return ranges, float_outputs


# ---- quantization choices ----------------------------------------------------------------------
class _Groups:
    """Union-find over tensor names: one group, one quantization."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def activation_quant(low: float, high: float) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) covering [low, high] and zero."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high - low < 1e-8:
        return 1.0 / 128.0, 0
    scale = float(np.float32((high - low) / 255.0))
    zp = int(np.clip(np.round(-128 - low / scale), -128, 127))
    return scale, zp


def choose_quant(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]], pairs: dict[str, str],
                 fused: set[str]) -> dict[str, tuple[float, int]]:
    fixed: dict[str, tuple[float, int]] = {}
    groups = _Groups()
    for node in model.graph.node:
        if node.op_type in ("Sigmoid", "Softmax"):
            fixed[node.output[0]] = SIGMOID_QUANT
        elif node.op_type == "Tanh":
            fixed[node.output[0]] = TANH_QUANT
    def fixed_of(name):
        return {fixed[m] for m in ranges if groups.find(m) == groups.find(name) and m in fixed}
    for node in model.graph.node:
        if node.op_type in DATA_MOVEMENT and node.input and node.input[0] in ranges:
            for out in node.output:
                if out in ranges and len(fixed_of(node.input[0]) | fixed_of(out)) <= 1:
                    groups.union(out, node.input[0])
        elif node.op_type == "Concat":
            for name in node.input:
                if name in ranges and len(fixed_of(name) | fixed_of(node.output[0])) <= 1:
                    groups.union(name, node.output[0])
    for i, o in pairs.items():
        if i in ranges and o in ranges and len(fixed_of(i) | fixed_of(o)) <= 1:
            groups.union(i, o)
    members: dict[str, list[str]] = defaultdict(list)
    for name in ranges:
        if name not in fused:
            members[groups.find(name)].append(name)
    quant = {}
    for names in members.values():
        pinned = {fixed[n] for n in names if n in fixed}
        if pinned:
            q = pinned.pop()
        else:
            q = activation_quant(min(ranges[n][0] for n in names), max(ranges[n][1] for n in names))
        quant.update({n: q for n in names})
    return quant


# ---- QDQ rewriting ---------------------------------------------------------------------------------
class _QdqWriter:
    def __init__(self, model: onnx.ModelProto, quant: dict[str, tuple[float, int]]):
        self.model = model
        self.quant = quant
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, value: np.ndarray, hint: str) -> str:
        self.count += 1
        name = f"{hint}/tvmse_q{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def qparams(self, tensor: str) -> tuple[str, str]:
        scale, zp = self.quant[tensor]
        return self.const(np.array(scale, np.float32), tensor + "/scale"), self.const(np.array(zp, np.int8),
                                                                                   tensor + "/zero_point")

    def q(self, value: str, out: str, tensor: str) -> None:
        self.nodes.append(helper.make_node("QuantizeLinear", [value, *self.qparams(tensor)], [out],
                                           name=f"{out}/q"))

    def dq(self, value: str, out: str, tensor: str) -> None:
        self.nodes.append(helper.make_node("DequantizeLinear", [value, *self.qparams(tensor)], [out],
                                           name=f"{out}/dq"))


def _weight_quant(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per channel along ``axis``: (int8 data, scales)."""
    other = tuple(a for a in range(w.ndim) if a != axis)
    peak = np.max(np.abs(w), axis=other) if other else np.abs(w)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    data = np.clip(np.round(w / scales.reshape(shape)), -127, 127).astype(np.int8)
    return data, scales


def write_qdq(model: onnx.ModelProto, quant: dict[str, tuple[float, int]]) -> onnx.ModelProto:
    """The float model with int8 inputs/outputs, QDQ around every quantized activation, int8 weights."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    w = _QdqWriter(model, quant)
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    replaced = _quantize_weights(w, graph, inits)
    _quantize_constant_operands(w, graph, inits, replaced)
    nodes = _quantize_activations(w, graph, quant)
    available = {v.name for v in graph.input} | {i.name for i in graph.initializer} | {i.name for i in w.inits}
    del graph.node[:]
    graph.node.extend(_toposort(w.nodes + nodes, available))
    kept = [i for i in graph.initializer if i.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(kept + w.inits)
    del graph.value_info[:]
    return _drop_unused_initializers(model)


def _dequantized_constant(w: _QdqWriter, name: str, data: np.ndarray, scale, zero_point, consumer: str,
                          axis: int | None = None) -> str:
    """A DequantizeLinear of new int8/int32 initializers standing for float constant ``name``."""
    out = f"{name}/tvmse_dq_{consumer}"
    attrs = {} if axis is None else {"axis": axis}
    w.nodes.append(helper.make_node("DequantizeLinear", [w.const(data, name), w.const(scale, name + "/scale"),
                                                         w.const(zero_point, name + "/zero_point")], [out],
                                    name=out, **attrs))
    return out


def _quantize_weights(w: _QdqWriter, graph: onnx.GraphProto, inits: dict) -> set[str]:
    """Weights of MatMul/Gemm/Conv int8 per output channel, their biases int32 on x_scale·w_scale (a
    MatMul's bias is the constant operand of the Add that follows it); returns the replaced initializers."""
    products: dict[str, tuple[str, np.ndarray]] = {}   # MatMul output → (its input activation, weight scales)
    replaced = set()
    for node in graph.node:
        index = WEIGHTED.get(node.op_type)
        if index is None or len(node.input) <= index or node.input[index] not in inits:
            continue
        if node.op_type == "Gemm":
            axis = 0 if next((a.i for a in node.attribute if a.name == "transB"), 0) else 1
        else:
            axis = 1 if node.op_type == "MatMul" else 0
        name = node.input[index]
        q, scales = _weight_quant(inits[name].astype(np.float32), axis)
        node.input[index] = _dequantized_constant(w, name, q, scales, np.zeros(len(scales), np.int8),
                                                  node.name or node.output[0], axis)
        replaced.add(name)
        products[node.output[0]] = (node.input[0], scales)
        if node.op_type in ("Gemm", "Conv") and len(node.input) > 2 and node.input[2] in inits:
            _quantize_bias(w, node, 2, node.input[0], scales, inits)
    for node in graph.node:
        for product, bias in ((0, 1), (1, 0)):   # either operand order (torch writes the bias first)
            if node.op_type == "Add" and node.input[product] in products and node.input[bias] in inits:
                x, scales = products[node.input[product]]
                _quantize_bias(w, node, bias, x, scales, inits)
    return replaced


def _quantize_constant_operands(w: _QdqWriter, graph: onnx.GraphProto, inits: dict, replaced: set[str]) -> None:
    """Other float constants read by elementwise ops (e.g. the GRU's 1 − z): int8 per tensor."""
    for node in graph.node:
        if node.op_type not in ("Add", "Sub", "Mul"):
            continue
        for k, name in enumerate(node.input):
            if name in inits and name not in replaced and inits[name].dtype == np.float32:
                value = inits[name].astype(np.float32)
                scale, zp = activation_quant(float(value.min()), float(value.max()))
                data = np.clip(np.round(value / scale) + zp, -128, 127).astype(np.int8)
                node.input[k] = _dequantized_constant(w, name, data, np.array(scale, np.float32),
                                                      np.array(zp, np.int8), node.name or node.output[0])


def _quantize_activations(w: _QdqWriter, graph: onnx.GraphProto, quant: dict) -> list[onnx.NodeProto]:
    """Each quantized tensor t becomes int8 under its own name (a graph input, or a QuantizeLinear of its
    producer's float result t/float); every reader reads DequantizeLinear(t)."""
    for value in [*graph.input, *graph.output]:
        if value.name in quant:
            value.type.tensor_type.elem_type = TensorProto.INT8
    nodes = list(graph.node)
    for node in nodes:
        for k, out in enumerate(node.output):
            if out in quant:
                node.output[k] = f"{out}/float"
                w.q(node.output[k], out, out)
    dequantized = {name: f"{name}/dequantized" for name in quant}
    for name, out in dequantized.items():
        w.dq(name, out, name)
    for node in nodes:
        for k, name in enumerate(node.input):
            node.input[k] = dequantized.get(name, name)
    return nodes


def _toposort(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """Nodes in an order where each input is produced before it is read (stable otherwise)."""
    available, ordered, pending = set(available) | {""}, [], list(nodes)
    while pending:
        ready = [n for n in pending if all(name in available for name in n.input)]
        if not ready:
            missing = sorted({i for n in pending for i in n.input if i not in available})[:5]
            raise QuantizationError(f"cannot order the quantized graph: inputs {missing} are never produced")
        for n in ready:
            available.update(n.output)
        ordered += ready
        pending = [n for n in pending if n not in ready]
    return ordered


def _quantize_bias(w: _QdqWriter, node: onnx.NodeProto, index: int, x: str, w_scales: np.ndarray, inits) -> None:
    if x not in w.quant:
        return
    acc = (np.float32(w.quant[x][0]) * w_scales.astype(np.float32)).astype(np.float32)
    bias = inits[node.input[index]].astype(np.float64).reshape(-1)
    data = np.clip(np.round(bias / acc.astype(np.float64)), -2**31, 2**31 - 1).astype(np.int32)
    node.input[index] = _dequantized_constant(w, node.input[index], data, acc, np.zeros(len(acc), np.int32),
                                              node.name or node.output[0], 0)


def _fused_products(model: onnx.ModelProto) -> set[str]:
    """Results that are part of one integer op, never quantized on their own: a MatMul's that only feeds
    a bias Add (one FC), a Sqrt's that only feeds a Reciprocal (one RSQRT)."""
    inits = {i.name for i in model.graph.initializer}
    users = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            users[name].append(node)
    fused = set()
    for node in model.graph.node:
        if node.op_type == "MatMul" and len(node.input) > 1 and node.input[1] in inits:
            use = users[node.output[0]]
            if len(use) == 1 and use[0].op_type == "Add" and any(name in inits for name in use[0].input):
                fused.add(node.output[0])
        if node.op_type == "Sqrt" and [n.op_type for n in users[node.output[0]]] == ["Reciprocal"]:
            fused.add(node.output[0])
    return fused


# ---- driver -----------------------------------------------------------------------------------
FEATURE_PIPELINES = ("tinylstm",)
MAX_AUDIO_FRAMES = 4000   # calibration frames taken from a folder of audio (64 s at a 16 ms hop)


def audio_calibration(folder: Path, features: str | None, shapes: dict, needed: list[str]) -> dict[str, np.ndarray]:
    """Frames of the project's feature pipeline (257-bin log power in [−1, 1]) from a folder of .wav/.flac."""
    from tvmse.data import corpus, framing
    if features not in FEATURE_PIPELINES:
        raise ConfigError(f"--calibration {folder} is a folder of audio: name its feature pipeline with "
                          f"--features ({', '.join(FEATURE_PIPELINES)})")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
    if not files:
        raise ConfigError(f"--calibration {folder}: no .wav or .flac files in it")
    if len(needed) != 1 or int(np.prod(shapes[needed[0]])) != framing.N_BINS:
        raise ConfigError(f"--features tinylstm feeds one input of {framing.N_BINS} values per frame; the model's "
                          f"non-state inputs are {', '.join(f'{n} {list(shapes[n])}' for n in needed)}")
    frames = []
    for path in files:
        frames.append(framing.features(framing.stft(corpus.load_audio(path))))
        if sum(len(f) for f in frames) >= MAX_AUDIO_FRAMES:
            break
    data = np.concatenate(frames)[:MAX_AUDIO_FRAMES]
    return {needed[0]: data.reshape(len(data), *shapes[needed[0]]).astype(np.float32)}


def load_calibration(path: str | Path, model: onnx.ModelProto, pairs: dict[str, str],
                     features: str | None = None) -> dict[str, np.ndarray]:
    path = Path(path)
    shapes = {i.name: _static_shape(i) for i in model.graph.input}
    if path.is_dir():
        return audio_calibration(path, features, shapes, [name for name in shapes if name not in pairs])
    if not path.is_file():
        raise ModelFileError(f"calibration file not found: {path}")
    try:
        data = dict(np.load(path))
    except Exception as e:   # noqa: BLE001 - any unreadable npz
        raise ModelFileError(f"{path} is not a readable .npz ({type(e).__name__}: {e})") from None
    needed = [name for name in shapes if name not in pairs]
    problems = [f"no array '{name}' (shape [T, {', '.join(map(str, shapes[name]))}])" for name in needed
                if name not in data]
    for name in needed:
        if name in data:
            array = data[name]
            if array.ndim < 1 or int(np.prod(array.shape[1:])) != int(np.prod(shapes[name])) or len(array) < 1:
                problems.append(f"'{name}' has shape {list(array.shape)}; expected [T, "
                                f"{', '.join(map(str, shapes[name]))}]")
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems) + f". The model's state inputs "
                          f"({', '.join(pairs) or 'none found'}) are carried from zeros and need no array.")
    count = min(len(data[n]) for n in needed)
    return {name: data[name][:count].reshape(count, *shapes[name]) for name in needed}


def _state_pairs(model: onnx.ModelProto, explicit: dict[str, str] | None) -> dict[str, str]:
    shapes = {v.name: _static_shape(v) for v in [*model.graph.input, *model.graph.output]}
    found = pair_states([Port(i.name, shapes[i.name]) for i in model.graph.input],
                        [Port(o.name, shapes[o.name]) for o in model.graph.output], explicit)
    return dict(found.pairs)


def _errors(qdq: onnx.ModelProto, quant, frames, pairs, float_outputs) -> dict[str, dict[str, float]]:
    """Run the QDQ model over the rollout (int8 state carried) and compare with the float outputs."""
    session = _session(qdq)
    shapes = {i.name: _static_shape(i) for i in qdq.graph.input}

    def q(name, x):
        s, z = quant[name]
        return np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)

    state = {i: np.full(shapes[i], quant[i][1], np.int8) for i in pairs}
    names = [o.name for o in qdq.graph.output]
    got = defaultdict(list)
    count = len(next(iter(frames.values())))
    for t in range(count):
        feeds = {name: q(name, frames[name][t].reshape(shapes[name])) for name in frames}
        values = dict(zip(names, session.run(names, {**feeds, **state})))
        for name in names:
            s, z = quant[name]
            got[name].append((values[name].astype(np.float64) - z) * s)
        state = {i: values[o].reshape(shapes[i]) for i, o in pairs.items()}
    errors = {}
    for name in names:
        ref = np.stack(float_outputs[name]).astype(np.float64)
        diff = np.stack(got[name]).reshape(ref.shape) - ref
        errors[name] = {"rel_rms": float(np.sqrt(np.mean(diff ** 2)) / max(np.sqrt(np.mean(ref ** 2)), 1e-12)),
                        "max_abs": float(np.abs(diff).max()), "float_range": float(ref.max() - ref.min())}
    return errors


def quantize_model(model: onnx.ModelProto | str | Path, calibration: str | Path, state: dict[str, str] | None = None,
                   percentile: float | None = None, features: str | None = None) -> QuantizeResult:
    """Float (or QDQ) ONNX → int8 QDQ ONNX, calibrated on ``calibration`` (see the module docstring)."""
    from tvmse.frontend.onnx_checks import read_onnx
    if not isinstance(model, onnx.ModelProto):
        model = read_onnx(Path(model))
    if percentile is not None and not 50.0 < percentile <= 100.0:
        raise ConfigError(f"--percentile {percentile}: expected a value in (50, 100], e.g. 99.99")
    float_model = prepare_float(model)
    pairs = _state_pairs(float_model, state)
    frames = load_calibration(calibration, float_model, pairs, features)
    logger.info("calibrating over %d frames (state carried: %s)", len(next(iter(frames.values()))),
                ", ".join(f"{i} ← {o}" for i, o in pairs.items()) or "none")
    ranges, float_outputs = calibrate(float_model, frames, pairs, percentile)
    quant = choose_quant(float_model, ranges, pairs, _fused_products(float_model))
    qdq = write_qdq(float_model, quant)
    result = QuantizeResult(qdq, pairs, quant, frames=len(next(iter(frames.values()))))
    result.errors = _errors(qdq, quant, frames, pairs, float_outputs)
    return result


def save_model(model: onnx.ModelProto, output: Path) -> None:
    """Write under a temporary name, then rename (no half-written file)."""
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        onnx.save(model, str(tmp))
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)


def add_calibration_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibration", metavar="CALIB.npz|FOLDER",
                   help="float model: [T, *shape] frames for each non-state input (states are carried from zeros), "
                        "or a folder of .wav/.flac with --features")
    p.add_argument("--features", choices=FEATURE_PIPELINES, default=None,
                   help="with an audio folder: the feature pipeline that turns it into frames")
    p.add_argument("--percentile", type=float, default=None,
                   help="activation ranges from this percentile of the observed values (default: min/max)")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    from tvmse.cli import command_parser
    p = command_parser("quantize", __doc__)
    p.add_argument("model", help="float (or QDQ) ONNX model of one streaming step")
    p.add_argument("--output", "-o", required=True, help="the int8 QDQ ONNX file to write")
    p.add_argument("--state", action="append", default=[], metavar="IN=OUT",
                   help="pair a state input with the output fed back into it (repeatable; default: found)")
    add_calibration_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="tvmse: %(message)s", stream=sys.stderr)
    from tvmse.compile import parse_state_pairs
    try:
        if not args.calibration:
            raise ConfigError("quantizing needs --calibration CALIB.npz (frames of each non-state input)")
        result = quantize_model(args.model, args.calibration, parse_state_pairs(args.state), args.percentile,
                                args.features)
        save_model(result.model, Path(args.output))
    except TvmseError as e:
        print(f"tvmse: error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"{args.model} → {args.output}: int8 QDQ, calibrated on {result.frames} frames; "
          f"int8 vs float over the rollout:")
    for line in result.error_lines():
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
