"""tvmse.quant_math against exact integer oracles and TFLite's reference kernels.

The fixed-point primitives are checked against their mathematical
definitions on Python integers; every kernel is checked against one-op models
run in the TFLite interpreter with ``np.array_equal`` (bit-exact), on
thousands of random scales, zero points and inputs, extremes included.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvmse import quant_math as qm
from tvmse.targets.ethosu.tflite_writer import Operator, Tensor, bias_scale, run_tflite, write_model

INT32 = st.integers(qm.INT32_MIN, qm.INT32_MAX) | st.sampled_from([qm.INT32_MIN, qm.INT32_MAX, -1, 0, 1])
ALL_INT8 = np.arange(-128, 128, dtype=np.int8)
# Every (a, b) pair of int8 values, for exhaustive elementwise checks.
GRID_A, GRID_B = (v.reshape(1, -1).astype(np.int8) for v in np.meshgrid(ALL_INT8, ALL_INT8))


# --------------------------------------------------------------------------
# Oracles on Python integers
# --------------------------------------------------------------------------


def _wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def srdhm_oracle(a: int, b: int) -> int:
    """floor(a*b / 2**31 + 1/2), saturating the one overflow."""
    if a == b == qm.INT32_MIN:
        return qm.INT32_MAX
    return (2 * a * b + 2**31) >> 32


def rdbpot_oracle(x: int, exponent: int) -> int:
    """x / 2**exponent rounded half away from zero."""
    quotient, remainder = divmod(abs(x), 1 << exponent)
    quotient += exponent > 0 and 2 * remainder >= (1 << exponent)
    return quotient if x >= 0 else -quotient


def mbqm_oracle(x: int, multiplier: int, shift: int) -> int:
    return rdbpot_oracle(srdhm_oracle(_wrap32(x << max(shift, 0)), multiplier), max(-shift, 0))


# --------------------------------------------------------------------------
# Multipliers and fixed-point primitives
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "real, expected",
    [
        (0.0, (0, 0)),
        (0.5, (2**30, 0)),
        (1.0, (2**30, 1)),
        (0.75, (3 * 2**29, 0)),
        (1.0 - 2.0**-40, (2**30, 1)),  # significand rounds up to 2**31: halved, exponent bumped
        (2.0**-31, (2**30, -30)),
        (2.0**-32, (2**30, -31)),
        (2.0**-33, (0, 0)),  # exponent below -31 flushes to zero
        (100.0, (1677721600, 7)),
    ],
)
def test_quantize_multiplier_edge_cases(real, expected):
    assert qm.quantize_multiplier(real) == expected


@settings(max_examples=1500, deadline=None)
@given(st.floats(min_value=2.0**-31, max_value=2.0**20, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_is_a_rounded_q31_significand(real):
    multiplier, shift = qm.quantize_multiplier(real)
    assert 2**30 <= multiplier < 2**31
    # |multiplier * 2**(shift-31) - real| is at most half a unit of the last place.
    assert abs(math.ldexp(multiplier, shift - 31) - real) <= math.ldexp(1, shift - 32)


def test_quantize_multipliers_vectorises_the_scalar_form():
    reals = np.exp(np.random.default_rng(0).uniform(-30, 10, 5000))
    multipliers, shifts = qm.quantize_multipliers(reals)
    expected = [qm.quantize_multiplier(r) for r in reals]
    assert list(zip(multipliers.tolist(), shifts.tolist())) == expected


def test_quantize_multiplier_smaller_than_one_exp_rejects_one():
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        qm.quantize_multiplier_smaller_than_one_exp(1.0)


def _random_int32(rng, n: int) -> np.ndarray:
    """Uniform int32 values mixed with small ones and the extremes."""
    values = rng.integers(qm.INT32_MIN, qm.INT32_MAX, n, endpoint=True)
    small = rng.integers(-(2**12), 2**12, n)
    edges = rng.choice([qm.INT32_MIN, qm.INT32_MIN + 1, -1, 0, 1, qm.INT32_MAX], n)
    pick = rng.integers(0, 3, n)
    return np.choose(pick, [values, small, edges])


@settings(max_examples=300, deadline=None)
@given(INT32, INT32)
def test_saturating_rounding_doubling_high_mul(a, b):
    assert int(qm.saturating_rounding_doubling_high_mul(a, b)) == srdhm_oracle(a, b)


def test_saturating_rounding_doubling_high_mul_on_random_pairs():
    rng = np.random.default_rng(11)
    a, b = _random_int32(rng, 50_000), _random_int32(rng, 50_000)
    got = qm.saturating_rounding_doubling_high_mul(a, b)
    assert got.tolist() == [srdhm_oracle(int(u), int(v)) for u, v in zip(a, b)]


@settings(max_examples=300, deadline=None)
@given(INT32, st.integers(0, 31))
def test_rounding_divide_by_pot(x, exponent):
    assert int(qm.rounding_divide_by_pot(x, exponent)) == rdbpot_oracle(x, exponent)


def test_rounding_divide_by_pot_on_random_values():
    rng = np.random.default_rng(12)
    x, exponent = _random_int32(rng, 50_000), rng.integers(0, 32, 50_000)
    got = qm.rounding_divide_by_pot(x, exponent)
    assert got.tolist() == [rdbpot_oracle(int(v), int(e)) for v, e in zip(x, exponent)]


@settings(max_examples=300, deadline=None)
@given(INT32, st.integers(0, qm.INT32_MAX), st.integers(-31, 30))
def test_multiply_by_quantized_multiplier(x, multiplier, shift):
    assert int(qm.multiply_by_quantized_multiplier(x, multiplier, shift)) == mbqm_oracle(x, multiplier, shift)


def test_multiply_by_quantized_multiplier_on_random_values():
    rng = np.random.default_rng(13)
    x, shift = _random_int32(rng, 50_000), rng.integers(-31, 31, 50_000)
    multiplier = np.abs(_random_int32(rng, 50_000)).clip(0, qm.INT32_MAX)
    got = qm.multiply_by_quantized_multiplier(x, multiplier, shift)
    assert got.tolist() == [mbqm_oracle(int(v), int(m), int(s)) for v, m, s in zip(x, multiplier, shift)]


def test_multiply_by_quantized_multiplier_broadcasts_per_channel():
    rng = np.random.default_rng(1)
    x = rng.integers(-(2**24), 2**24, (7, 5))
    multipliers = rng.integers(2**30, 2**31, 5)
    shifts = rng.integers(-20, 4, 5)
    got = qm.multiply_by_quantized_multiplier(x, multipliers, shifts)
    expected = [[mbqm_oracle(int(v), int(m), int(s)) for v, m, s in zip(row, multipliers, shifts)] for row in x]
    assert got.dtype == np.int32 and got.tolist() == expected


def test_multiply_by_quantized_multiplier_refuses_what_tflite_cannot_express():
    with pytest.raises(ValueError, match="int32"):
        qm.multiply_by_quantized_multiplier(np.int64(2**31), 2**30, 0)
    with pytest.raises(ValueError, match="shift 31"):
        qm.multiply_by_quantized_multiplier(1, 2**30, 31)


# --------------------------------------------------------------------------
# One-op models run by the interpreter
# --------------------------------------------------------------------------


def _tensor(name, shape, scale, zero_point, dtype="int8", data=None) -> Tensor:
    return Tensor(name, tuple(shape), dtype, np.atleast_1d(np.asarray(scale, np.float32)),
                  np.atleast_1d(np.asarray(zero_point, np.int64)), 0, data)


def _log_uniform(rng, low, high, size=None) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), size)).astype(np.float32)


def _zero_point(rng) -> int:
    return int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))


def _run_one_op(kind, tensors, op_inputs, graph_inputs, feeds, options=None) -> np.ndarray:
    model = write_model(tensors, [Operator(kind, op_inputs, ["y"], options or {})], graph_inputs, ["y"])
    return run_tflite(model, feeds)["y"]


def _fully_connected_case(rng, extreme: bool):
    """A random FC: per-channel or per-tensor weights, with or without bias."""
    rows, depth, units = (int(rng.integers(1, n)) for n in (16, 300, 80))
    y_range = (1e-7, 1e3) if extreme else (1e-3, 10.0)
    x_scale, y_scale = _log_uniform(rng, 1e-3, 1.0), _log_uniform(rng, *y_range)
    w_scales = _log_uniform(rng, 1e-5, 0.1, units if rng.random() < 0.7 else 1)
    x_zp, y_zp = _zero_point(rng), _zero_point(rng)
    w = rng.integers(-127, 128, (units, depth)).astype(np.int8)
    bias = rng.integers(-(2**20), 2**20, units).astype(np.int32) if rng.random() < 0.8 else None
    x = rng.integers(-128, 128, (rows, depth)).astype(np.int8)
    tensors = [_tensor("x", x.shape, x_scale, x_zp), _tensor("w", w.shape, w_scales, np.zeros(w_scales.size), data=w),
               _tensor("y", (rows, units), y_scale, y_zp)]
    op_inputs = ["x", "w"]
    if bias is not None:
        b_scales = bias_scale(x_scale, w_scales)
        tensors.append(_tensor("b", bias.shape, b_scales, np.zeros(b_scales.size), "int32", bias))
        op_inputs.append("b")
    try:
        got = _run_one_op("FULLY_CONNECTED", tensors, op_inputs, ["x"], {"x": x})
    except ValueError:  # a per-tensor bias scale TFLite's 2 % check would refuse
        return None
    return got, (x, w, bias, x_scale, x_zp, w_scales, y_scale, y_zp)


@pytest.mark.parametrize("extreme", [False, True], ids=["typical", "extreme-scales"])
def test_fully_connected_matches_reference_kernel(extreme):
    """TFLite's reference FC requantises in double: requantize="float" is bit-exact."""
    rng = np.random.default_rng(10 + extreme)
    saturated = checked = 0
    for _ in range(300):
        case = _fully_connected_case(rng, extreme)
        if case is None:
            continue
        got, args = case
        expected = qm.fully_connected(*args, requantize="float")
        assert np.array_equal(got, expected), args[3:]
        # tvmse's integer form (one rounding, halves away from zero) is its integer twin; with
        # extreme scales the requantized value leaves int32, where the interpreter's conversion
        # wraps to INT32_MIN and the integer form saturates, so only typical scales compare
        if not extreme:
            assert np.array_equal(got, qm.fully_connected(*args)), args[3:]
        saturated += int(np.sum(np.abs(expected.astype(int)) >= 127))
        checked += 1
    assert saturated > 0 and checked >= 250


def test_fully_connected_integer_requantization_differs_only_at_rounding_ties():
    """The integer (double-rounding) form moves an output by one code only near a tie.

    Its two roundings and its 31-bit multiplier put the pre-rounding value
    within |v| * 2**-31 + 2**-(r+1) of the exact ``acc * scale`` (r = right
    shift), so any output that differs must have the exact value that close
    to a half-integer.
    """
    rng = np.random.default_rng(3)
    differing = 0
    for _ in range(200):
        depth, units = int(rng.integers(8, 400)), int(rng.integers(8, 200))
        x = rng.integers(-128, 128, (8, depth)).astype(np.int8)
        w = rng.integers(-127, 128, (units, depth)).astype(np.int8)
        x_scale, w_scales = _log_uniform(rng, 1e-3, 1.0), _log_uniform(rng, 1e-4, 0.1, units)
        acc = x.astype(np.int64) @ w.astype(np.int64).T
        y_scale = np.float32(np.std(acc) * x_scale * w_scales.mean() / 40 + 1e-9)
        integer = qm.fully_connected(x, w, None, x_scale, 0, w_scales, y_scale, 0, requantize="integer")
        floating = qm.fully_connected(x, w, None, x_scale, 0, w_scales, y_scale, 0, requantize="float")
        exact = acc * qm.fully_connected_scales(x_scale, w_scales, y_scale)
        right_shift = np.maximum(-qm.fully_connected_multipliers(x_scale, w_scales, y_scale)[1], 0)
        bound = np.abs(exact) * 2.0**-31 + np.where(right_shift > 0, 2.0 ** -(right_shift + 1.0), 0) + 1e-9
        moved = (integer != floating) & (np.abs(exact) < 127)
        assert np.all(np.abs(integer.astype(int) - floating) <= 1)
        assert np.all(np.abs(np.abs(exact - np.trunc(exact)) - 0.5)[moved] <= bound[moved])
        differing += int(moved.sum())
    assert differing > 0  # the two forms really are different


def test_single_rounding_multiplier_matches_its_definition():
    rng = np.random.default_rng(14)
    x, shift = _random_int32(rng, 50_000), rng.integers(-31, 31, 50_000)
    multiplier = rng.integers(0, qm.INT32_MAX, 50_000, endpoint=True)
    got = qm.multiply_by_quantized_multiplier_single_rounding(x, multiplier, shift)
    # floor(x * m / 2**(31 - shift) + 1/2)
    expected = [(2 * int(v) * int(m) + (1 << (31 - int(s)))) >> (32 - int(s)) for v, m, s in zip(x, multiplier, shift)]
    assert got.tolist() == expected


@pytest.mark.parametrize("power_of_two", [False, True], ids=["random-scales", "power-of-two-scales"])
def test_fully_connected_single_rounding_differs_only_on_exact_ties(power_of_two):
    """Single rounding equals the reference kernel's double-precision rounding off ties.

    A differing output needs the exact value within |v| * 2**-31 of a
    half-integer (the 31-bit multiplier's error); power-of-two scales make
    exact negative ties, where "single" rounds up and TFLite away from zero.
    """
    rng = np.random.default_rng(4 + power_of_two)
    differing = 0
    for _ in range(150):
        depth, units = int(rng.integers(8, 400)), int(rng.integers(8, 100))
        x = rng.integers(-128, 128, (8, depth)).astype(np.int8)
        w = rng.integers(-127, 128, (units, depth)).astype(np.int8)
        if power_of_two:
            x_scale, w_scales = np.float32(2.0 ** -rng.integers(5, 9)), (2.0 ** -rng.integers(6, 12, units))
        else:
            x_scale, w_scales = _log_uniform(rng, 1e-3, 1.0), _log_uniform(rng, 1e-4, 0.1, units)
        acc = x.astype(np.int64) @ w.astype(np.int64).T
        y_scale = np.float32(2.0 ** np.round(np.log2(np.std(acc) * x_scale * np.mean(w_scales) / 40)))
        single = qm.fully_connected(x, w, None, x_scale, 0, w_scales, y_scale, 0, requantize="single")
        floating = qm.fully_connected(x, w, None, x_scale, 0, w_scales, y_scale, 0, requantize="float")
        exact = acc * qm.fully_connected_scales(x_scale, w_scales, y_scale)
        moved = single != floating
        distance = np.abs(np.abs(exact - np.trunc(exact)) - 0.5)
        assert np.all(distance[moved] <= np.abs(exact[moved]) * 2.0**-31 + 1e-12)
        assert np.all(np.abs(single.astype(int) - floating) <= 1)
        differing += int(moved.sum())
        away = qm.fully_connected(x, w, None, x_scale, 0, w_scales, y_scale, 0)   # tvmse's form
        assert np.array_equal(away, floating)
    assert (differing > 0) == power_of_two


def _elementwise_case(rng, extreme: bool):
    low, high = (1e-8, 1e2) if extreme else (1e-4, 1.0)
    (a_scale, b_scale), y_scale = _log_uniform(rng, low, high, 2), _log_uniform(rng, low * 10, high * 2)
    a_zp, b_zp, y_zp = (_zero_point(rng) for _ in range(3))
    tensors = [_tensor("a", GRID_A.shape, a_scale, a_zp), _tensor("b", GRID_B.shape, b_scale, b_zp),
               _tensor("y", GRID_A.shape, y_scale, y_zp)]
    return tensors, (GRID_A, GRID_B, a_scale, a_zp, b_scale, b_zp, y_scale, y_zp)


@pytest.mark.parametrize("kind", ["ADD", "MUL"])
@pytest.mark.parametrize("extreme", [False, True], ids=["typical", "extreme-scales"])
def test_elementwise_matches_reference_kernel_on_every_input_pair(kind, extreme):
    rng = np.random.default_rng(20 + extreme + 2 * (kind == "MUL"))
    kernel = qm.add if kind == "ADD" else qm.mul
    checked = 0
    for _ in range(120):
        tensors, args = _elementwise_case(rng, extreme)
        try:
            expected = kernel(*args)
        except ValueError:  # scales TFLite aborts on (ADD) or cannot express (MUL)
            continue
        got = _run_one_op(kind, tensors, ["a", "b"], ["a", "b"], {"a": GRID_A, "b": GRID_B})
        assert np.array_equal(got, expected), args[2:]
        checked += 1
    assert checked >= 80


@pytest.mark.parametrize(
    "scales",
    [(0.17617759108543396, 0.07539937645196915, 0.18767434358596802),
     (0.08167067170143127, 0.05153887718915939, 0.01821226440370083)],
)
def test_mul_multiplier_is_computed_in_float32(scales):
    """TFLite forms s1*s2/s_out in float32; promoting to double first changes these outputs."""
    in_double = qm.quantize_multiplier(np.prod(np.float64(scales[:2])) / np.float64(scales[2]))
    assert qm.mul_multiplier(*scales) != in_double
    product = GRID_A.astype(np.int64) * GRID_B
    with_double = np.clip(qm.multiply_by_quantized_multiplier(product, *in_double), -128, 127)
    tensors = [_tensor("a", GRID_A.shape, scales[0], 0), _tensor("b", GRID_B.shape, scales[1], 0),
               _tensor("y", GRID_A.shape, scales[2], 0)]
    got = _run_one_op("MUL", tensors, ["a", "b"], ["a", "b"], {"a": GRID_A, "b": GRID_B})
    assert np.array_equal(got, qm.mul(GRID_A, GRID_B, scales[0], 0, scales[1], 0, scales[2], 0))
    assert not np.array_equal(got, with_double)


def test_add_params_refuses_what_tflite_aborts_on():
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        qm.add_params(1.0, 0, 1.0, 0, 1e-7)


@pytest.mark.parametrize("kind", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize("extreme", [False, True], ids=["typical", "extreme-scales"])
def test_lookup_tables_match_reference_kernel(kind, extreme):
    rng = np.random.default_rng(30 + extreme + 2 * (kind == "TANH"))
    kernel = qm.logistic if kind == "LOGISTIC" else qm.tanh
    y_quant = ((qm.LOGISTIC_OUTPUT_SCALE, qm.LOGISTIC_OUTPUT_ZERO_POINT) if kind == "LOGISTIC"
               else (qm.TANH_OUTPUT_SCALE, qm.TANH_OUTPUT_ZERO_POINT))
    x = ALL_INT8.reshape(1, -1)
    for _ in range(400):
        x_scale, x_zp = _log_uniform(rng, *((1e-8, 1e4) if extreme else (1e-4, 1.0))), _zero_point(rng)
        tensors = [_tensor("x", x.shape, x_scale, x_zp), _tensor("y", x.shape, *y_quant)]
        got = _run_one_op(kind, tensors, ["x"], ["x"], {"x": x})
        assert np.array_equal(got, kernel(x, x_scale, x_zp)), (x_scale, x_zp)


@pytest.mark.parametrize("x_scale, x_zp", [(0.08850029855966568, 40), (0.007709850557148457, 27)])
def test_tanh_table_uses_the_c_library_tanhf(x_scale, x_zp):
    """Scales where glibc's tanhf and a correctly rounded tanh give different tables."""
    x = ALL_INT8.reshape(1, -1)
    tensors = [_tensor("x", x.shape, x_scale, x_zp), _tensor("y", x.shape, 1 / 128, 0)]
    got = _run_one_op("TANH", tensors, ["x"], ["x"], {"x": x})
    assert np.array_equal(got[0], qm.tanh_lut(x_scale, x_zp))


def test_lookup_tables_are_indexed_by_x_plus_128():
    table = qm.logistic_lut(0.1, 0)
    assert table.shape == (256,) and table.dtype == np.int8
    assert table[128] == 0  # sigmoid(0) = 0.5 -> 128 / 256 - 128
    assert table[0] == -128 + round(256 / (1 + math.exp(12.8)))
    assert qm.tanh_lut(0.1, 0)[128] == 0 and qm.tanh_lut(0.1, 0)[255] == 127  # 128 * tanh(12.7) clamps


# --------------------------------------------------------------------------
# Data movement
# --------------------------------------------------------------------------


def test_concatenation_requires_one_quantization():
    a, b = np.zeros((1, 3), np.int8), np.ones((1, 2), np.int8)
    assert qm.concatenation([a, b], 1, [0.1, 0.1], [2, 2], 0.1, 2).tolist() == [[0, 0, 0, 1, 1]]
    with pytest.raises(ValueError, match="input 1"):
        qm.concatenation([a, b], 1, [0.1, 0.2], [2, 2], 0.1, 2)
    with pytest.raises(ValueError, match="input 0"):
        qm.concatenation([a, b], 1, [0.1, 0.1], [2, 2], 0.1, 3)


def test_split_and_slices_are_pure_data_movement():
    x = np.arange(24, dtype=np.int8).reshape(2, 12)
    parts = qm.split(x, 3, axis=1)
    assert [p.tolist() for p in parts] == [p.tolist() for p in np.split(x, 3, axis=1)]
    assert qm.slice(x, [1, 2], [1, -1]).tolist() == x[1:2, 2:].tolist()
    assert qm.strided_slice(x, [0, 1], [2, 12], [1, 3]).tolist() == x[:, 1:12:3].tolist()
    with pytest.raises(ValueError):
        qm.split(x, 5, axis=1)
    with pytest.raises(ValueError):
        qm.slice(x, [0, 10], [1, 5])


def test_rsqrt_table_equals_the_interpreter_on_every_code():
    """TFLite's int8 RSQRT, every input code at or above the zero point, on random scales."""
    from tvmse.targets.ethosu.tflite_writer import Operator, Tensor, run_tflite, write_model
    rng = np.random.default_rng(11)
    for _ in range(12):
        x_scale, y_scale = float(rng.uniform(1e-3, 0.5)), float(rng.uniform(1e-3, 0.5))
        x_zp, y_zp = int(rng.integers(-128, 0)), int(rng.integers(-128, 128))
        table = qm.rsqrt_lut(x_scale, x_zp, y_scale, y_zp)
        codes = np.arange(x_zp, 128, dtype=np.int8).reshape(1, -1)
        tensors = [Tensor(n, codes.shape, "int8", np.array([s], np.float32), np.array([z], np.int64))
                   for n, s, z in (("x", x_scale, x_zp), ("y", y_scale, y_zp))]
        model = write_model(tensors, [Operator("RSQRT", ["x"], ["y"])], ["x"], ["y"])
        got = run_tflite(model, {"x": codes})["y"]
        np.testing.assert_array_equal(got.reshape(-1), table[codes.reshape(-1).astype(np.int32) + 128])
