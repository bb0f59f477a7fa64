"""Lower tvmse's integer form to an int8 TFLite flatbuffer, the input Vela compiles.

    fully_connected → FULLY_CONNECTED (int8 weights [N, K], per-channel scales on axis 0,
                      int32 bias with scale x_scale·w_scale[n])
    add / mul       → ADD / MUL          logistic / tanh → LOGISTIC / TANH
    concat          → CONCATENATION      slice           → STRIDED_SLICE (free on Ethos-U: a read offset)

Every tensor keeps the scale and zero point of the integer form, so the interpreter derives the
same multipliers and tables; ``check_against_host`` proves it on random inputs.
"""

from __future__ import annotations

import numpy as np

from tvmse.ir import IntegerGraph, IntOp, TensorInfo
from tvmse.targets.ethosu.tflite_writer import Operator, Tensor, bias_scale, run_tflite, write_model

_ELEMENTWISE = {"add": "ADD", "mul": "MUL", "logistic": "LOGISTIC", "tanh": "TANH"}


def _activation(t: TensorInfo) -> Tensor:
    return Tensor(t.name, tuple(t.shape), "int8", np.array([t.scale], np.float32), np.array([t.zero_point], np.int64))


def _lower_op(op: IntOp, tensors: dict[str, TensorInfo]) -> tuple[Operator, list[Tensor]]:
    if op.kind == "fully_connected":
        x = tensors[op.inputs[0]]
        w_scales = np.asarray(op.attrs["weight_scales"], np.float32)
        n = len(w_scales)
        weight = Tensor(f"{op.name}.weight", op.consts["weight"].shape, "int8", w_scales, np.zeros(n, np.int64),
                        quantized_dimension=0, data=op.consts["weight"])
        bias = Tensor(f"{op.name}.bias", (n,), "int32", bias_scale(x.scale, w_scales), np.zeros(n, np.int64),
                      quantized_dimension=0, data=op.consts["bias"])
        return Operator("FULLY_CONNECTED", [x.name, weight.name, bias.name], [op.name]), [weight, bias]
    if op.kind in _ELEMENTWISE:
        return Operator(_ELEMENTWISE[op.kind], list(op.inputs), [op.name]), []
    if op.kind == "concat":
        return Operator("CONCATENATION", list(op.inputs), [op.name], {"axis": op.attrs["axis"]}), []
    if op.kind == "slice":
        x = tensors[op.inputs[0]]
        begin, end = [0] * len(x.shape), list(x.shape)
        begin[op.attrs["axis"]], end[op.attrs["axis"]] = op.attrs["begin"], op.attrs["end"]
        return Operator("STRIDED_SLICE", list(op.inputs), [op.name], {"begin": begin, "end": end}), []
    raise ValueError(f"op '{op.name}': kind '{op.kind}' has no TFLite lowering")


def lower_to_tflite(graph: IntegerGraph, description: str = "tvmse") -> bytes:
    """The integer graph as TFLite flatbuffer bytes (inputs and outputs in graph order)."""
    table = graph.tensors()
    tensors = [_activation(t) for t in table.values()]
    operators = []
    for op in graph.ops:
        operator, constants = _lower_op(op, table)
        operators.append(operator)
        tensors += constants
    return write_model(tensors, operators, [t.name for t in graph.inputs], list(graph.outputs), description)


def check_against_host(graph: IntegerGraph, model: bytes, reference, n_trials: int = 8, seed: int = 0) -> None:
    """Run random int8 inputs through the TFLite interpreter and the host reference; demand equality.

    Raises AssertionError naming the first output that differs (with the count of differing elements).
    """
    rng = np.random.default_rng(seed)
    for trial in range(n_trials):
        inputs = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8) for t in graph.inputs}
        expected = reference.run(inputs)
        got = run_tflite(model, inputs)
        for name in graph.outputs:
            if not np.array_equal(expected[name], got[name]):
                n = int(np.sum(expected[name] != got[name]))
                raise AssertionError(f"TFLite output '{name}' differs from the host reference in {n} elements "
                                     f"(trial {trial}, seed {seed})")
