"""The int8 TFLite writer: file layout, validation, interpreter round trips, Vela placement.

Every op kind is written as a one-op model with random shapes and
quantisation, run in the TFLite interpreter and compared bit for bit with
``tvmse.quant_math``; an LSTM-cell chain (FC -> SPLIT -> LOGISTIC/TANH -> MUL
-> ADD) is checked as a whole model; Vela must place every op on the NPU.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from importlib import resources
from pathlib import Path
from shutil import which

import numpy as np
import pytest
import tflite
from flatbuffers.number_types import UOffsetTFlags

from tvmse import quant_math as qm
from tvmse.targets.ethosu.tflite_writer import Operator, Tensor, bias_scale, run_tflite, write_model

SIGMOID_Q = (qm.LOGISTIC_OUTPUT_SCALE, qm.LOGISTIC_OUTPUT_ZERO_POINT)
TANH_Q = (qm.TANH_OUTPUT_SCALE, qm.TANH_OUTPUT_ZERO_POINT)


def _tensor(name, shape, scale, zero_point, dtype="int8", data=None, quantized_dimension=0) -> Tensor:
    return Tensor(name, tuple(shape), dtype, np.atleast_1d(np.asarray(scale, np.float32)),
                  np.atleast_1d(np.asarray(zero_point, np.int64)), quantized_dimension, data)


def _log_uniform(rng, low, high, size=None) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), size)).astype(np.float32)


def _int8(rng, shape) -> np.ndarray:
    return rng.integers(-128, 128, shape).astype(np.int8)


def _fc_tensors(rng, depth: int, units: int, per_channel: bool = True, rows: int = 1, name: str = "fc"):
    """x -> FULLY_CONNECTED(w, b) -> y tensors and the quantisation the numpy kernel needs."""
    x_scale, y_scale = _log_uniform(rng, 1e-3, 0.5), _log_uniform(rng, 1e-2, 1.0)
    w_scales = _log_uniform(rng, 1e-4, 1e-2, units if per_channel else 1)
    w = rng.integers(-127, 128, (units, depth)).astype(np.int8)
    b = rng.integers(-5000, 5000, units).astype(np.int32)
    x_zp, y_zp = (int(v) for v in rng.integers(-20, 20, 2))
    tensors = [
        _tensor("x", (rows, depth), x_scale, x_zp),
        _tensor(f"{name}.w", w.shape, w_scales, np.zeros(w_scales.size), data=w),
        _tensor(f"{name}.b", b.shape, bias_scale(x_scale, w_scales), np.zeros(w_scales.size), "int32", b),
        _tensor("y", (rows, units), y_scale, y_zp),
    ]
    return tensors, (w, b, x_scale, x_zp, w_scales, y_scale, y_zp)


def _fc_model(rng, depth=24, units=10, per_channel=True) -> bytes:
    tensors, _ = _fc_tensors(rng, depth, units, per_channel)
    return write_model(tensors, [Operator("FULLY_CONNECTED", ["x", "fc.w", "fc.b"], ["y"])], ["x"], ["y"])


def _parse(model: bytes):
    return tflite.Model.GetRootAsModel(model, 0)


def _ops(model: bytes):
    """(builtin code, custom code, input tensors, output tensors) per operator of subgraph 0."""
    m = _parse(model)
    graph = m.Subgraphs(0)
    result = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = m.OperatorCodes(op.OpcodeIndex())
        inputs = [graph.Tensors(t) if t >= 0 else None for t in op.InputsAsNumpy()]
        outputs = [graph.Tensors(t) for t in op.OutputsAsNumpy()]
        result.append((code.BuiltinCode(), code.CustomCode(), inputs, outputs, op))
    return result


def _constant(model: bytes, tensor) -> np.ndarray:
    data = _parse(model).Buffers(tensor.Buffer()).DataAsNumpy()
    dtype = {tflite.TensorType.INT32: np.int32, tflite.TensorType.INT8: np.int8}[tensor.Type()]
    return np.frombuffer(data.tobytes(), dtype).reshape(tensor.ShapeAsNumpy() if tensor.ShapeLength() else ())


# --------------------------------------------------------------------------
# File layout
# --------------------------------------------------------------------------


def test_model_header_buffers_and_operator_codes():
    rng = np.random.default_rng(0)
    tensors, _ = _fc_tensors(rng, 16, 8)
    tensors += [_tensor("y2", (1, 8), 0.05, 0), _tensor("w2", (8, 8), 0.01, 0, data=_int8(rng, (8, 8))),
                _tensor("y3", (1, 8), 0.07, 3)]
    model = write_model(tensors, [
        Operator("FULLY_CONNECTED", ["x", "fc.w", "fc.b"], ["y"]),
        Operator("FULLY_CONNECTED", ["y", "w2"], ["y2"]),
        Operator("ADD", ["y", "y2"], ["y3"]),
    ], ["x"], ["y3"], description="unit test")
    m = _parse(model)
    assert model[4:8] == b"TFL3" and m.Version() == 3 and m.Description() == b"unit test"
    assert m.SubgraphsLength() == 1 and m.Buffers(0).DataLength() == 0
    codes = [(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(m.OperatorCodesLength())]
    assert codes == [(tflite.BuiltinOperator.FULLY_CONNECTED,) * 2, (tflite.BuiltinOperator.ADD,) * 2]
    for i in range(1, m.BuffersLength()):  # constants start on 16-byte boundaries
        table = m.Buffers(i)._tab
        assert table.Vector(UOffsetTFlags.py_type(table.Offset(4))) % 16 == 0


def test_fully_connected_layout():
    rng = np.random.default_rng(1)
    tensors, (w, b, x_scale, _, w_scales, _, _) = _fc_tensors(rng, 16, 8)
    model = write_model(tensors, [Operator("FULLY_CONNECTED", ["x", "fc.w", "fc.b"], ["y"])], ["x"], ["y"])
    [(_, _, (_, weights, bias), _, op)] = _ops(model)
    options = tflite.FullyConnectedOptions()
    options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
    assert op.BuiltinOptionsType() == tflite.BuiltinOptions.FullyConnectedOptions
    assert not options.KeepNumDims()
    assert options.WeightsFormat() == tflite.FullyConnectedOptionsWeightsFormat.DEFAULT
    assert options.FusedActivationFunction() == tflite.ActivationFunctionType.NONE
    assert np.array_equal(_constant(model, weights), w) and np.array_equal(_constant(model, bias), b)
    quant = bias.Quantization()
    assert np.array_equal(quant.ScaleAsNumpy(), np.float32(x_scale) * w_scales)
    assert not quant.ZeroPointAsNumpy().any() and quant.QuantizedDimension() == 0
    assert np.array_equal(weights.Quantization().ScaleAsNumpy(), w_scales)


def test_parameters_become_int32_constant_inputs():
    x = _tensor("x", (2, 12), 0.1, 0)
    parts = [_tensor(f"p{i}", (2, 3), 0.1, 0) for i in range(4)]
    sliced = _tensor("s", (1, 5), 0.1, 0)
    strided = _tensor("t", (2, 3), 0.1, 0)
    flat = _tensor("r", (24,), 0.1, 0)
    model = write_model([x, *parts, sliced, strided, flat], [
        Operator("SPLIT", ["x"], [p.name for p in parts], {"axis": -1, "num_splits": 4}),
        Operator("SLICE", ["x"], ["s"], {"begin": [1, 2], "size": [1, 5]}),
        Operator("STRIDED_SLICE", ["x"], ["t"], {"begin": [0, 1], "end": [2, 10], "strides": [1, 3]}),
        Operator("RESHAPE", ["x"], ["r"]),
    ], ["x"], ["p0", "p3", "s", "t", "r"])
    (_, _, split_in, _, split), (_, _, slice_in, _, _), (_, _, strided_in, _, _), (_, _, reshape_in, _, _) = _ops(model)
    assert split_in[0].ShapeLength() == 0 and _constant(model, split_in[0]) == 1 and split_in[1].Name() == b"x"
    options = tflite.SplitOptions()
    options.Init(split.BuiltinOptions().Bytes, split.BuiltinOptions().Pos)
    assert options.NumSplits() == 4
    assert [_constant(model, t).tolist() for t in slice_in[1:]] == [[1, 2], [1, 5]]
    assert [_constant(model, t).tolist() for t in strided_in[1:]] == [[0, 1], [2, 10], [1, 3]]
    assert _constant(model, reshape_in[1]).tolist() == [24]
    assert all(t.Quantization() is None or t.Quantization().ScaleLength() == 0 for t in split_in[:1] + slice_in[1:])


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def _valid_graph():
    rng = np.random.default_rng(2)
    tensors, _ = _fc_tensors(rng, 8, 4)
    tensors += [_tensor("s", (1, 4), *SIGMOID_Q)]
    operators = [Operator("FULLY_CONNECTED", ["x", "fc.w", "fc.b"], ["y"]), Operator("LOGISTIC", ["y"], ["s"])]
    return tensors, operators, ["x"], ["s"]


def _replace_tensor(tensors, name, **changes):
    return [Tensor(**{**t.__dict__, **changes}) if t.name == name else t for t in tensors]


_BREAKAGES = {
    "unknown input": (lambda t, o, i, u: (t, [Operator("FULLY_CONNECTED", ["nope", "fc.w"], ["y"]), o[1]], i, u),
                      "unknown tensor 'nope'"),
    "weights do not fit": (lambda t, o, i, u: (_replace_tensor(t, "x", shape=(1, 9)), o, i, u), "do not fit input"),
    "weights not constant": (lambda t, o, i, u: (_replace_tensor(t, "fc.w", data=None), o, i, u), "constant int8"),
    "output shape": (lambda t, o, i, u: (_replace_tensor(t, "y", shape=(1, 5)), o, i, u), r"expected \(1, 4\)"),
    "bias scale": (lambda t, o, i, u: (_replace_tensor(t, "fc.b", scale=np.full(4, 0.5, np.float32)), o, i, u),
                   "input_scale \\* weight_scale"),
    "scale count": (lambda t, o, i, u: (_replace_tensor(t, "fc.w", scale=np.full(3, 0.01, np.float32),
                                                        zero_point=np.zeros(3, np.int64)), o, i, u), "scales"),
    "logistic output": (lambda t, o, i, u: (_replace_tensor(t, "s", zero_point=np.array([0])), o, i, u),
                        "scale 0.00390625, zero point -128"),
    "duplicate name": (lambda t, o, i, u: (t + [t[0]], o, i, u), "used twice"),
    "output not produced": (lambda t, o, i, u: (t, o[:1], i, u), "produced by no operator"),
    "out of order": (lambda t, o, i, u: (t, o[::-1], i, u), "not produced before"),
    "unknown kind": (lambda t, o, i, u: (t, [o[0], Operator("HARD_SWISH", ["y"], ["s"])], i, u), "unsupported op kind"),
    "fused activation": (lambda t, o, i, u: (t, [Operator("FULLY_CONNECTED", ["x", "fc.w", "fc.b"], ["y"],
                                                          {"fused_activation_function": "TANH"}), o[1]], i, u),
                         "fused activation 'TANH'"),
    "dtype": (lambda t, o, i, u: (_replace_tensor(t, "x", dtype="int16"), o, i, u), "dtype 'int16'"),
    "constant graph input": (lambda t, o, i, u: (t, o, ["fc.w"], u), "is a constant"),
}


@pytest.mark.parametrize("breakage", list(_BREAKAGES))
def test_inconsistent_graphs_raise_value_error(breakage):
    write_model(*_valid_graph())  # the unbroken graph is fine
    break_graph, message = _BREAKAGES[breakage]
    with pytest.raises(ValueError, match=message):
        write_model(*break_graph(*_valid_graph()))


def test_quantisation_tflite_refuses_is_caught_before_writing():
    a, b = _tensor("a", (1, 4), 1.0, 0), _tensor("b", (1, 4), 1.0, 0)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):  # TFLite would abort the process
        write_model([a, b, _tensor("y", (1, 4), 1e-7, 0)], [Operator("ADD", ["a", "b"], ["y"])], ["a", "b"], ["y"])
    parts = [_tensor("p", (1, 2), 0.1, 0), _tensor("q", (1, 2), 0.2, 0), _tensor("y", (1, 4), 0.1, 0)]
    with pytest.raises(ValueError, match="share scale"):
        write_model(parts, [Operator("CONCATENATION", ["p", "q"], ["y"], {"axis": 1})], ["p", "q"], ["y"])
    with pytest.raises(ValueError, match="cannot split"):
        write_model([a, _tensor("h", (1, 2), 1.0, 0)] + [_tensor(f"s{i}", (1, 1), 1.0, 0) for i in range(3)],
                    [Operator("SPLIT", ["a"], ["s0", "s1", "s2"], {"axis": 1, "num_splits": 3})], ["a"], ["s0"])
    with pytest.raises(ValueError, match="outside"):
        write_model([a, _tensor("y", (1, 3), 1.0, 0)],
                    [Operator("SLICE", ["a"], ["y"], {"begin": [0, 2], "size": [1, 3]})], ["a"], ["y"])


def test_run_tflite_checks_its_inputs():
    model = _fc_model(np.random.default_rng(3))
    with pytest.raises(ValueError, match="model inputs"):
        run_tflite(model, {"wrong": np.zeros((1, 24), np.int8)})
    with pytest.raises(ValueError, match=r"int8\[1, 24\]"):
        run_tflite(model, {"x": np.zeros((1, 24), np.int16)})


# --------------------------------------------------------------------------
# One-op round trips through the interpreter
# --------------------------------------------------------------------------


@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
def test_fully_connected_round_trip(per_channel):
    rng = np.random.default_rng(4 + per_channel)
    for _ in range(25):
        rows, depth, units = int(rng.integers(1, 4)), int(rng.integers(1, 200)), int(rng.integers(1, 64))
        tensors, (w, b, *quant) = _fc_tensors(rng, depth, units, per_channel, rows)
        model = write_model(tensors, [Operator("FULLY_CONNECTED", ["x", "fc.w", "fc.b"], ["y"])], ["x"], ["y"])
        x = _int8(rng, (rows, depth))
        expected = qm.fully_connected(x, w, b, quant[0], quant[1], *quant[2:], requantize="float")
        assert np.array_equal(run_tflite(model, {"x": x})["y"], expected)


@pytest.mark.parametrize("kind", ["ADD", "MUL", "LOGISTIC", "TANH"])
def test_elementwise_round_trip(kind):
    rng = np.random.default_rng(["ADD", "MUL", "LOGISTIC", "TANH"].index(kind))
    for _ in range(25):
        shape = tuple(int(d) for d in rng.integers(1, 9, int(rng.integers(1, 4))))
        a_q = (_log_uniform(rng, 1e-3, 1.0), int(rng.integers(-128, 128)))
        a = _int8(rng, shape)
        if kind in ("ADD", "MUL"):
            b_q, y_q = (_log_uniform(rng, 1e-3, 1.0), int(rng.integers(-128, 128))), (_log_uniform(rng, 1e-2, 1.0), 3)
            b = _int8(rng, shape)
            tensors = [_tensor("a", shape, *a_q), _tensor("b", shape, *b_q), _tensor("y", shape, *y_q)]
            feeds, inputs = {"a": a, "b": b}, ["a", "b"]
            expected = getattr(qm, kind.lower())(a, b, *a_q, *b_q, *y_q)
        else:
            tensors = [_tensor("a", shape, *a_q), _tensor("y", shape, *(SIGMOID_Q if kind == "LOGISTIC" else TANH_Q))]
            feeds, inputs = {"a": a}, ["a"]
            expected = getattr(qm, kind.lower())(a, *a_q)
        model = write_model(tensors, [Operator(kind, inputs, ["y"])], inputs, ["y"])
        assert np.array_equal(run_tflite(model, feeds)["y"], expected)


def _random_shape(rng, rank_low=1, rank_high=4):
    return [int(d) for d in rng.integers(1, 7, int(rng.integers(rank_low, rank_high + 1)))]


def test_concatenation_round_trip():
    rng = np.random.default_rng(6)
    for _ in range(30):
        shape = _random_shape(rng)
        axis = int(rng.integers(-len(shape), len(shape)))
        pieces = []
        for _ in range(int(rng.integers(1, 5))):
            piece = list(shape)
            piece[axis] = int(rng.integers(1, 5))
            pieces.append(_int8(rng, piece))
        quant = (_log_uniform(rng, 1e-3, 1.0), int(rng.integers(-128, 128)))
        expected = qm.concatenation(pieces, axis, [quant[0]] * len(pieces), [quant[1]] * len(pieces), *quant)
        names = [f"in{i}" for i in range(len(pieces))]
        tensors = [_tensor(n, p.shape, *quant) for n, p in zip(names, pieces)] + [_tensor("y", expected.shape, *quant)]
        model = write_model(tensors, [Operator("CONCATENATION", names, ["y"], {"axis": axis})], names, ["y"])
        assert np.array_equal(run_tflite(model, dict(zip(names, pieces)))["y"], expected)


def test_split_round_trip():
    rng = np.random.default_rng(7)
    for _ in range(30):
        shape = _random_shape(rng)
        axis = int(rng.integers(0, len(shape)))
        num_splits = int(rng.integers(1, 5))
        shape[axis] *= num_splits
        x = _int8(rng, shape)
        parts = qm.split(x, num_splits, axis)
        names = [f"out{i}" for i in range(num_splits)]
        tensors = [_tensor("x", shape, 0.1, 1)] + [_tensor(n, p.shape, 0.1, 1) for n, p in zip(names, parts)]
        model = write_model(tensors, [Operator("SPLIT", ["x"], names, {"axis": axis, "num_splits": num_splits})],
                            ["x"], names)
        got = run_tflite(model, {"x": x})
        assert all(np.array_equal(got[n], p) for n, p in zip(names, parts))


@pytest.mark.parametrize("kind", ["SLICE", "STRIDED_SLICE", "RESHAPE"])
def test_slice_and_reshape_round_trip(kind):
    rng = np.random.default_rng(8 + len(kind))
    for _ in range(30):
        shape = _random_shape(rng, 2, 4)
        x = _int8(rng, shape)
        begin = [int(rng.integers(0, d)) for d in shape]
        if kind == "SLICE":
            size = [int(rng.integers(1, d - b + 1)) for b, d in zip(begin, shape)]
            options, expected = {"begin": begin, "size": size}, qm.slice(x, begin, size)
        elif kind == "STRIDED_SLICE":
            end = [int(rng.integers(b + 1, d + 1)) for b, d in zip(begin, shape)]
            strides = [int(rng.integers(1, 4)) for _ in shape]
            options = {"begin": begin, "end": end, "strides": strides}
            expected = qm.strided_slice(x, begin, end, strides)
        else:
            options, expected = {}, x.reshape(int(np.prod(shape[:-1])), shape[-1])
        tensors = [_tensor("x", shape, 0.05, -3), _tensor("y", expected.shape, 0.05, -3)]
        model = write_model(tensors, [Operator(kind, ["x"], ["y"], options)], ["x"], ["y"])
        assert np.array_equal(run_tflite(model, {"x": x})["y"], expected)


# --------------------------------------------------------------------------
# A whole model: one LSTM-cell step
# --------------------------------------------------------------------------

CELL_Q = (1.0 / 32.0, 0)
GATE_Q = (0.05, 0)


def _lstm_cell(rng, depth: int = 40, hidden: int = 16):
    """x, c -> FC -> SPLIT(i, f, g, o) -> LOGISTIC/TANH -> MUL/ADD -> (h, c')."""
    tensors, (w, b, x_scale, x_zp, w_scales, _, _) = _fc_tensors(rng, depth, 4 * hidden, name="gates")
    tensors[-1] = _tensor("z", (1, 4 * hidden), *GATE_Q)
    q = {"c": CELL_Q, "zi": GATE_Q, "zf": GATE_Q, "zg": GATE_Q, "zo": GATE_Q, "i": SIGMOID_Q, "f": SIGMOID_Q,
         "g": TANH_Q, "o": SIGMOID_Q, "ig": CELL_Q, "fc": CELL_Q, "c_out": CELL_Q, "tc": TANH_Q, "h": TANH_Q}
    tensors += [_tensor(name, (1, hidden), *quant) for name, quant in q.items()]
    operators = [
        Operator("FULLY_CONNECTED", ["x", "gates.w", "gates.b"], ["z"]),
        Operator("SPLIT", ["z"], ["zi", "zf", "zg", "zo"], {"axis": 1, "num_splits": 4}),
        Operator("LOGISTIC", ["zi"], ["i"]), Operator("LOGISTIC", ["zf"], ["f"]),
        Operator("TANH", ["zg"], ["g"]), Operator("LOGISTIC", ["zo"], ["o"]),
        Operator("MUL", ["i", "g"], ["ig"]), Operator("MUL", ["f", "c"], ["fc"]),
        Operator("ADD", ["fc", "ig"], ["c_out"]), Operator("TANH", ["c_out"], ["tc"]),
        Operator("MUL", ["o", "tc"], ["h"]),
    ]
    model = write_model(tensors, operators, ["x", "c"], ["h", "c_out"])

    def reference(x, c, requantize="float"):
        z = qm.fully_connected(x, w, b, x_scale, x_zp, w_scales, *GATE_Q, requantize=requantize)
        zi, zf, zg, zo = qm.split(z, 4, axis=1)
        i, f, o = (qm.logistic(v, *GATE_Q) for v in (zi, zf, zo))
        g = qm.tanh(zg, *GATE_Q)
        c_out = qm.add(qm.mul(f, c, *SIGMOID_Q, *CELL_Q, *CELL_Q), qm.mul(i, g, *SIGMOID_Q, *TANH_Q, *CELL_Q),
                       *CELL_Q, *CELL_Q, *CELL_Q)
        h = qm.mul(o, qm.tanh(c_out, *CELL_Q), *SIGMOID_Q, *TANH_Q, *TANH_Q)
        return {"h": h, "c_out": c_out}

    return model, reference, (depth, hidden)


def test_lstm_cell_chain_matches_numpy_over_a_rollout():
    rng = np.random.default_rng(9)
    model, reference, (depth, hidden) = _lstm_cell(rng)
    c = np.zeros((1, hidden), np.int8)
    for _ in range(40):
        x = _int8(rng, (1, depth))
        got, expected = run_tflite(model, {"x": x, "c": c}), reference(x, c)
        assert all(np.array_equal(got[name], expected[name]) for name in expected)
        c = got["c_out"]


# --------------------------------------------------------------------------
# Vela: nothing may stay on the CPU
# --------------------------------------------------------------------------

VELA_OPTIONS = ["--accelerator-config", "ethos-u55-128", "--system-config", "Ethos_U55_High_End_Embedded",
                "--memory-mode", "Shared_Sram"]


def _vela(model: bytes, tmp_path: Path, name: str) -> tuple[bytes, list[dict]]:
    """Compiles with the Vela CLI; returns the optimised model and the summary CSV rows."""
    executable = Path(sys.executable).with_name("vela")
    command = [str(executable) if executable.exists() else which("vela") or "vela"]
    config = resources.files("ethosu") / "config_files" / "Arm" / "vela.ini"
    source = tmp_path / f"{name}.tflite"
    source.write_bytes(model)
    result = subprocess.run([*command, str(source), "--config", str(config), *VELA_OPTIONS,
                             "--output-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CPU operators = 0 " in result.stdout, result.stdout
    with open(tmp_path / f"{name}_summary_Ethos_U55_High_End_Embedded.csv") as summary:
        rows = list(csv.DictReader(summary))
    return (tmp_path / f"{name}_vela.tflite").read_bytes(), rows


def _assert_all_on_npu(optimised: bytes) -> None:
    ops = _ops(optimised)
    assert ops, "Vela produced no operators"
    for builtin, custom, *_ in ops:
        assert (builtin, custom) == (tflite.BuiltinOperator.CUSTOM, b"ethos-u"), f"op {builtin} stayed on the CPU"


@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
def test_vela_runs_fully_connected_on_the_npu(per_channel, tmp_path):
    """Vela 5.2 keeps per-channel (and per-tensor) int8 FULLY_CONNECTED on the Ethos-U55."""
    optimised, rows = _vela(_fc_model(np.random.default_rng(10), 64, 32, per_channel), tmp_path, "fc")
    _assert_all_on_npu(optimised)
    assert int(rows[0]["nn_macs"]) == 64 * 32 and int(rows[0]["cycles_npu"]) > 0


def test_vela_runs_the_lstm_cell_chain_on_the_npu(tmp_path):
    model, _, _ = _lstm_cell(np.random.default_rng(11), depth=64, hidden=32)
    optimised, _ = _vela(model, tmp_path, "cell")
    _assert_all_on_npu(optimised)


def test_vela_runs_data_movement_on_the_npu(tmp_path):
    quant = (0.05, 2)
    names = {"x": (1, 64), "a": (1, 32), "b": (1, 32), "cat": (1, 64), "sl": (1, 20), "ss": (1, 20), "r": (64,)}
    tensors = [_tensor(n, s, *quant) for n, s in names.items()]
    model = write_model(tensors, [
        Operator("SPLIT", ["x"], ["a", "b"], {"axis": 1, "num_splits": 2}),
        Operator("CONCATENATION", ["b", "a"], ["cat"], {"axis": 1}),
        Operator("SLICE", ["cat"], ["sl"], {"begin": [0, 8], "size": [1, 20]}),
        Operator("STRIDED_SLICE", ["cat"], ["ss"], {"begin": [0, 30], "end": [1, 50]}),
        Operator("RESHAPE", ["cat"], ["r"]),
    ], ["x"], ["sl", "ss", "r"])
    optimised, _ = _vela(model, tmp_path, "moves")
    _assert_all_on_npu(optimised)
