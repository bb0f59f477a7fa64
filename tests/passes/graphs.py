"""Hand-built integer graphs for pass tests: LSTM and GRU cells, convolution stacks, with chosen unit or
channel masks; a rollout comparison that carries the state and applies the state slot map."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from tvmse.ir import IntegerGraph, TensorInfo, build

FEATURE = (float(np.float32(1 / 127)), 0)


def _scale(rng, lo=0.002, hi=0.05) -> float:
    return float(np.float32(rng.uniform(lo, hi)))


def lstm_graph(rng, n_in: int, hidden: list[int], n_out: int, cell_weights=None, out_weight=None,
               biases=None) -> IntegerGraph:
    """frame → LSTM(hidden[0]) → … → FC(n_out) → logistic, state h{l}, c{l}; weights random unless given."""
    frame = TensorInfo("frame", (1, n_in), *FEATURE)
    inputs, ops, outputs = [frame], [], ["mask"]
    x = frame
    for l, H in enumerate(hidden):
        h = TensorInfo(f"h{l}", (1, H), *FEATURE)
        c = TensorInfo(f"c{l}", (1, H), _scale(rng, 0.005, 0.03), 0)
        inputs += [h, c]
        xh = build.concat(f"lstm{l}/xh", [x, h])
        k = x.shape[1] + H
        w = cell_weights[l] if cell_weights else rng.integers(-127, 128, (4 * H, k)).astype(np.int8)
        b = biases[l] if biases else rng.integers(-20000, 20000, 4 * H)
        fc = build.fully_connected(f"lstm{l}/fc", xh.output, w, b, rng.uniform(0.002, 0.003, 4 * H),
                                   _scale(rng, 0.02, 0.08), 0)
        pre = {g: build.slice_(f"lstm{l}/{g}_pre", fc.output, i * H, (i + 1) * H) for i, g in enumerate("ifgo")}
        act = {g: (build.tanh if g == "g" else build.logistic)(f"lstm{l}/{g}", pre[g].output) for g in "ifgo"}
        fcm = build.mul(f"lstm{l}/fc_mul", act["f"].output, c, _scale(rng, 0.005, 0.03), 0)
        ig = build.mul(f"lstm{l}/ig_mul", act["i"].output, act["g"].output, _scale(rng, 0.005, 0.03), 0)
        c_out = build.add(f"c{l}_out", fcm.output, ig.output, c.scale, 0)
        tc = build.tanh(f"lstm{l}/tanh_c", c_out.output)
        h_out = build.mul(f"h{l}_out", act["o"].output, tc.output, *FEATURE)
        ops += [xh, fc, *pre.values(), *act.values(), fcm, ig, c_out, tc, h_out]
        outputs += [f"h{l}_out", f"c{l}_out"]
        x = h_out.output
    w = out_weight if out_weight is not None else rng.integers(-127, 128, (n_out, x.shape[1])).astype(np.int8)
    out = build.fully_connected("out/fc", x, w, rng.integers(-5000, 5000, n_out), rng.uniform(0.002, 0.003, n_out),
                                _scale(rng, 0.02, 0.08), 0)
    ops += [out, build.logistic("mask", out.output)]
    return IntegerGraph(inputs, outputs, ops)


def prune_units(graph: IntegerGraph, layer: int, units: list[int], rows=True, bias=True, recurrent=True,
                consumer=True) -> IntegerGraph:
    """Zero what a unit of ``layer`` owns: gate rows, gate biases, recurrent and consumer columns."""
    ops = {op.name: op for op in graph.ops}
    fc = ops[f"lstm{layer}/fc"]
    w = fc.consts["weight"]
    H = w.shape[0] // 4
    k = w.shape[1] - H
    nxt = ops.get(f"lstm{layer + 1}/fc") or ops["out/fc"]
    for j in units:
        gate_rows = [j + g * H for g in range(4)]
        if rows:
            w[gate_rows] = 0
        if bias:
            fc.consts["bias"][gate_rows] = 0
        if recurrent:
            w[:, k + j] = 0
        if consumer:
            nxt.consts["weight"][:, j] = 0
    return graph


def _nonzero_weights(rng, shape) -> np.ndarray:
    """Random int8 weights without zeros, so a column or row is zero only where a test prunes it."""
    return (rng.integers(1, 128, shape) * rng.choice([-1, 1], shape)).astype(np.int8)


def _fc(rng, name, x, n, nonzero=True):
    k = x.shape[-1]
    w = _nonzero_weights(rng, (n, k)) if nonzero else rng.integers(-127, 128, (n, k)).astype(np.int8)
    return build.fully_connected(name, x, w, rng.integers(-3000, 3000, n), rng.uniform(0.002, 0.02, n),
                                 _scale(rng, 0.02, 0.08), int(rng.integers(-10, 10)))


def gru_graph(rng, n_in: int, H: int, n_out: int, state_rank: int = 2) -> IntegerGraph:
    """A GRU step as the TFLite converter writes Keras' cell: FC(x) and FC(h) → 3 gate slices each →
    z, r = σ(x_z + h_z), σ(x_r + h_r); ĥ = tanh(x_h + r·h_h); h' = z·h + (1 − z)·ĥ with a scalar
    constant 1; then an output FC on h' reshaped to [1, 1, H] and σ. State 'state' → 'state_next'
    (paired in ``state_pairs``, not by name), of shape [1, H] or [1, 1, H] (``state_rank``)."""
    frame = TensorInfo("frame", (1, n_in), _scale(rng), int(rng.integers(-20, 20)))
    h = TensorInfo("state", (1,) * (state_rank - 1) + (H,), *FEATURE)
    fc_x, fc_h = _fc(rng, "gru/fc_x", frame, 3 * H), _fc(rng, "gru/fc_h", h, 3 * H)
    xs = [build.slice_(f"gru/x{g}", fc_x.output, i * H, (i + 1) * H) for i, g in enumerate("zrh")]
    hs = [build.slice_(f"gru/h{g}", fc_h.output, i * H, (i + 1) * H) for i, g in enumerate("zrh")]
    pre = [build.add(f"gru/{g}_pre", xs[i].output, hs[i].output, _scale(rng, 0.02, 0.06), 0) for i, g in
           enumerate("zr")]
    z, r = build.logistic("gru/z", pre[0].output), build.logistic("gru/r", pre[1].output)
    one = build.constant("gru/one", np.array(127, np.int8), *build.SIGMOID_QUANT)
    omz = build.sub("gru/one_minus_z", one.output, z.output, *build.SIGMOID_QUANT)
    rh = build.mul("gru/r_hh", r.output, hs[2].output, _scale(rng, 0.02, 0.06), 0)
    cand_pre = build.add("gru/cand_pre", xs[2].output, rh.output, _scale(rng, 0.02, 0.06), 0)
    cand = build.tanh("gru/cand", cand_pre.output)
    zh = build.mul("gru/z_h", z.output, h, *FEATURE)
    zc = build.mul("gru/omz_cand", omz.output, cand.output, *FEATURE)
    h_next = build.add("state_next", zh.output, zc.output, *FEATURE)
    stacked = build.reshape("gru/stack", h_next.output, (1, 1, H))
    out = _fc(rng, "out/fc", stacked.output, n_out)
    ops = [fc_x, fc_h, *xs, *hs, *pre, z, r, one, omz, rh, cand_pre, cand, zh, zc, h_next, stacked, out,
           build.logistic("mask", out.output)]
    return IntegerGraph([h, frame], ["state_next", "mask"], ops, state_pairs={"state": "state_next"})


def prune_gru_units(graph: IntegerGraph, units, rows=True, bias=True, recurrent=True, consumer=True) -> IntegerGraph:
    """Zero what GRU unit j owns: its 3 gate rows in both FCs and their biases, its recurrent column
    (FC(h)) and its column in the output FC."""
    ops = {op.name: op for op in graph.ops}
    H = ops["gru/fc_h"].consts["weight"].shape[1]
    for j in units:
        gate_rows = [j, H + j, 2 * H + j]
        for fc in (ops["gru/fc_x"], ops["gru/fc_h"]):
            if rows:
                fc.consts["weight"][gate_rows] = 0
            if bias:
                fc.consts["bias"][gate_rows] = 0
        if recurrent:
            ops["gru/fc_h"].consts["weight"][:, j] = 0
        if consumer:
            ops["out/fc"].consts["weight"][:, j] = 0
    return graph


def _conv_weights(rng, shape, nonzero=True) -> np.ndarray:
    return _nonzero_weights(rng, shape) if nonzero else rng.integers(-127, 128, shape).astype(np.int8)


def conv_graph(rng, hw=(6, 5), c_in=2, c1=4, multiplier=1, c2=3, n_out=3, kernel=(3, 3), strides=(1, 1),
               middle: str = "none") -> IntegerGraph:
    """x[1,H,W,c_in] → conv_2d(c1) → ``middle`` → depthwise(×multiplier) → conv_2d 1×1 (c2) → global
    average pool → FC(n_out): a depthwise-separable (DS-CNN) stage. ``middle``: an op between the
    first conv and the depthwise (see ``MIDDLE_OPS``)."""
    x = TensorInfo("x", (1, *hw, c_in), _scale(rng), int(rng.integers(-20, 20)))
    pad = build.same_padding(hw, kernel, strides)
    conv = build.conv_2d("conv1", x, _conv_weights(rng, (c1, *kernel, c_in)), rng.integers(-3000, 3000, c1),
                         rng.uniform(0.002, 0.02, c1), _scale(rng, 0.02, 0.08), int(rng.integers(-10, 10)), strides,
                         padding=pad, activation="RELU")
    ops = [conv] + _middle(rng, middle, conv.output)
    y = ops[-1].output
    dw = build.depthwise_conv_2d("dw", y, _conv_weights(rng, (1, 3, 3, c1 * multiplier)),
                                 rng.integers(-3000, 3000, c1 * multiplier), rng.uniform(0.002, 0.02, c1 * multiplier),
                                 _scale(rng, 0.02, 0.08), int(rng.integers(-10, 10)),
                                 padding=build.same_padding(y.shape[1:3], (3, 3), (1, 1)), activation="RELU6")
    pw = build.conv_2d("pw", dw.output, _conv_weights(rng, (c2, 1, 1, c1 * multiplier)), rng.integers(-3000, 3000, c2),
                       rng.uniform(0.002, 0.02, c2), _scale(rng, 0.02, 0.08), int(rng.integers(-10, 10)))
    pool = build.average_pool("pool", pw.output, pw.output.shape[1:3], (1, 1))
    fc = _fc(rng, "logits", pool.output, n_out)
    return IntegerGraph([x], ["logits"], ops + [dw, pw, pool, fc])


MIDDLE_OPS = ("none", "leaky_relu", "relu6", "max_pool", "pad", "add_scalar", "mul_channels", "transpose_hw",
              "concat_h", "slice_w", "mean_hw", "rsqrt", "transpose_channels", "flatten")
# the ones that move channels across the last axis (the pass keeps their operands whole)
OPAQUE_MIDDLE_OPS = ("transpose_channels", "flatten")


def _middle(rng, kind: str, y: TensorInfo) -> list:
    """Ops from ``y`` to a tensor of the same channels (NHWC)."""
    q = (_scale(rng, 0.02, 0.08), int(rng.integers(-10, 10)))
    c = y.shape[-1]
    if kind == "none":
        return []
    if kind == "leaky_relu":
        return [build.leaky_relu("mid", y, 0.2, *q)]
    if kind == "relu6":
        return [build.requantize("mid", y, *q, activation="RELU6")]
    if kind == "max_pool":
        return [build.max_pool("mid", y, (2, 2), (1, 1), build.same_padding(y.shape[1:3], (2, 2), (1, 1)))]
    if kind == "pad":
        return [build.pad("mid", y, [[0, 0], [1, 0], [0, 2], [0, 0]])]
    if kind == "add_scalar":
        one = build.constant("mid/k", np.array(rng.integers(-128, 128), np.int8), *q)
        return [one, build.add("mid", y, one.output, *q)]
    if kind == "mul_channels":
        k = build.constant("mid/k", rng.integers(-128, 128, (1, 1, 1, c)), *q)
        return [k, build.mul("mid", y, k.output, *q)]
    if kind == "transpose_hw":
        return [build.transpose("mid", y, [0, 2, 1, 3])]
    if kind == "concat_h":
        return [build.concat("mid", [y, y], axis=1)]
    if kind == "slice_w":
        return [build.slice_("mid", y, 0, max(1, y.shape[2] - 1), axis=2)]
    if kind == "rsqrt":
        return [build.rsqrt("mid", y, *q)]
    if kind == "mean_hw":
        return [build.mean("mid", y, [1, 2], True, *q)]
    if kind == "transpose_channels":
        t = build.transpose("mid/t", y, [0, 3, 1, 2])
        return [t, build.transpose("mid", t.output, [0, 2, 3, 1])]
    if kind == "flatten":
        flat = build.reshape("mid/flat", y, (1, int(np.prod(y.shape))))
        return [flat, build.reshape("mid", flat.output, y.shape)]
    raise KeyError(kind)


def prune_conv_channels(graph: IntegerGraph, conv1=(), pw=(), filters=True, consumer=True) -> IntegerGraph:
    """Zero channels: ``conv1`` channels c (filter and bias; the 1×1 conv's columns of the depthwise
    outputs c·M+m), ``pw`` channels (filter and bias; the FC's columns)."""
    ops = {op.name: op for op in graph.ops}
    m = ops["dw"].attrs["depth_multiplier"]
    for layer, channels, reader, columns in (("conv1", conv1, "pw", lambda c: range(c * m, c * m + m)),
                                             ("pw", pw, "logits", lambda c: [c])):
        for c in channels:
            if filters:
                ops[layer].consts["weight"][c] = 0
                ops[layer].consts["bias"][c] = 0
            if consumer:
                ops[reader].consts["weight"][..., list(columns(c))] = 0
    return graph


def assert_same_rollout(run_a, graph_a: IntegerGraph, run_b, graph_b: IntegerGraph, rng, frames: int = 4) -> None:
    """Random frames and a random initial state through both graphs, each feeding its own state back;
    every non-state output and every state slot ``graph_b`` kept (``graph_b.state_slots``, on the last
    axis) must be equal."""
    from tvmse.targets.host.reference import streaming_state_pairs
    pairs = streaming_state_pairs(graph_a)
    shapes = {t.name: t.shape for t in graph_a.inputs}
    state_a = {k: rng.integers(-128, 128, shapes[k], dtype=np.int8) for k in pairs}
    slots = {k: graph_b.state_slots.get(k, list(range(shapes[k][-1]))) for k in pairs}
    state_b = {k: v[..., slots[k]] for k, v in state_a.items()}
    state_of = {o: i for i, o in pairs.items()}
    for f in range(frames):
        step = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8) for t in graph_a.inputs if t.name not in pairs}
        out_a, out_b = run_a({**step, **state_a}), run_b({**step, **state_b})
        for name in graph_a.outputs:
            expected = out_a[name][..., slots[state_of[name]]] if name in state_of else out_a[name]
            np.testing.assert_array_equal(expected, out_b[name], err_msg=f"{name} frame {f}")
        state_a = {k: out_a[o].reshape(state_a[k].shape) for k, o in pairs.items()}
        state_b = {k: out_b[o].reshape(state_b[k].shape) for k, o in pairs.items()}


def side_by_side(graphs: list[IntegerGraph]) -> IntegerGraph:
    """One graph computing each of ``graphs`` (names prefixed 'g{i}/'), so one TVM compile checks them all."""
    inputs, outputs, ops, pairs, slots = [], [], [], {}, {}
    for i, graph in enumerate(graphs):
        rename = lambda name: f"g{i}/{name}"
        inputs += [replace(t, name=rename(t.name)) for t in graph.inputs]
        outputs += [rename(name) for name in graph.outputs]
        ops += [replace(op, inputs=[rename(n) for n in op.inputs], output=replace(op.output, name=rename(op.name)))
                for op in graph.ops]
        pairs.update({rename(a): rename(b) for a, b in graph.state_pairs.items()})
        slots.update({rename(a): v for a, v in graph.state_slots.items()})
    return IntegerGraph(inputs, outputs, ops, state_slots=slots, state_pairs=pairs)


# ---- imported models (tests/fixtures/imported, made by real converters) ----------------------------
IMPORTED = Path(__file__).resolve().parents[1] / "fixtures" / "imported"


def imported_fixture(name: str) -> Path:
    path = IMPORTED / name
    assert path.exists(), f"fixture {path} missing (made by scripts/fixtures, committed with tests/fixtures/imported)"
    return path


def load_imported(name: str) -> IntegerGraph:
    """The imported fixture. While the importer has no SOFTMAX, a final one is read as a QUANTIZE to the
    same output quantization: folding keeps every channel of a model output either way."""
    from tvmse.frontend import tflite_import
    if "SOFTMAX" in tflite_import.CONVERTERS:
        return tflite_import.load_tflite(imported_fixture(name))[0]

    class FinalSoftmaxAsQuantize(tflite_import.TfliteImport):
        def operators(self):
            ops = super().operators()
            if ops and ops[-1].kind == "SOFTMAX":
                ops[-1].kind = "QUANTIZE"
            return ops
    return FinalSoftmaxAsQuantize(imported_fixture(name)).run()[0]
