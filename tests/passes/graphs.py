"""Hand-built integer graphs for pass tests: LSTM cells with chosen unit masks, single FCs."""

from __future__ import annotations

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


def assert_same_rollout(run_a, graph_a: IntegerGraph, run_b, graph_b: IntegerGraph, rng, frames: int = 4) -> None:
    """Random frames and a random initial state through both graphs, each feeding its own state back;
    every non-state output and every state slot ``graph_b`` kept (``graph_b.state_slots``) must be equal."""
    pairs = {t.name: f"{t.name}_out" for t in graph_a.inputs if f"{t.name}_out" in graph_a.outputs}
    shapes = {t.name: t.shape for t in graph_a.inputs}
    state_a = {k: rng.integers(-128, 128, shapes[k], dtype=np.int8) for k in pairs}
    slots = {k: graph_b.state_slots.get(k, list(range(shapes[k][1]))) for k in pairs}
    state_b = {k: v[:, slots[k]] for k, v in state_a.items()}
    for f in range(frames):
        frame = rng.integers(-128, 128, shapes["frame"], dtype=np.int8)
        out_a, out_b = run_a({"frame": frame, **state_a}), run_b({"frame": frame, **state_b})
        for name in graph_a.outputs:
            if name in pairs.values():
                state_in = name[: -len("_out")]
                np.testing.assert_array_equal(out_a[name][:, slots[state_in]], out_b[name], err_msg=f"{name} frame {f}")
            else:
                np.testing.assert_array_equal(out_a[name], out_b[name], err_msg=f"{name} frame {f}")
        state_a = {k: out_a[o] for k, o in pairs.items()}
        state_b = {k: out_b[o] for k, o in pairs.items()}
