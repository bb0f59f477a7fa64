"""A numpy evaluator of the integer form, for fast property tests (checked equal to HostReference).

Same arithmetic as ``tvmse.ir.kernels``: FC requantizes with one rounding, ADD/MUL with TFLite's
two roundings, LOGISTIC/TANH by table.
"""

from __future__ import annotations

import numpy as np

from tvmse.ir import IntegerGraph


def _requantize(x: np.ndarray, m: int, shift: int) -> np.ndarray:
    x = x.astype(np.int64) << max(shift, 0)
    right = max(-shift, 0)
    ab = x * np.int64(m)
    t = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + ((high & mask) > threshold)


def _to_int8(v: np.ndarray, zp: int) -> np.ndarray:
    return np.clip(v + zp, -128, 127).astype(np.int8)


def run(graph: IntegerGraph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    values = {t.name: np.asarray(inputs[t.name]) for t in graph.inputs}
    tensors = graph.tensors()
    for op in graph.ops:
        a, x = op.attrs, [values[n].astype(np.int64) for n in op.inputs]
        zp = op.output.zero_point
        if op.kind == "fully_connected":
            c = op.consts
            acc = (x[0] - tensors[op.inputs[0]].zero_point) @ c["weight"].astype(np.int64).T + c["bias"]
            total = 31 - c["shift"].astype(np.int64)
            y = _to_int8((acc * c["multiplier"] + (np.int64(1) << (total - 1))) >> total, zp)
        elif op.kind == "add":
            s = [_requantize((v - a[f"{k}_zp"]) << a["left_shift"], a[f"{k}_mult"], a[f"{k}_shift"])
                 for v, k in zip(x, "ab")]
            y = _to_int8(_requantize((s[0] + s[1]).astype(np.int32), a["out_mult"], a["out_shift"]), zp)
        elif op.kind == "mul":
            y = _to_int8(_requantize((x[0] - a["a_zp"]) * (x[1] - a["b_zp"]), a["mult"], a["shift"]), zp)
        elif op.kind in ("logistic", "tanh"):
            y = np.asarray(a["table"], np.int8)[x[0] + 128]
        elif op.kind == "concat":
            y = np.concatenate(x, axis=a["axis"]).astype(np.int8)
        elif op.kind == "slice":
            y = x[0][:, a["begin"]:a["end"]].astype(np.int8)
        values[op.name] = y
    return {n: values[n] for n in graph.outputs}
