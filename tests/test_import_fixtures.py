"""The imported-model fixtures (tests/fixtures/imported) are what their manifest says they are.

Checks only the fixtures, with the real runtimes: every .tflite runs in the TFLite reference kernels
(BUILTIN_REF) over 30 streaming frames with its states carried, every .onnx runs in onnxruntime the same
way, and each pruned model gives exactly the outputs of its twin built at the smaller width.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "imported"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
FRAMES = 30
MAX_BYTES = 45_000  # fixtures stay small enough to live in git
TFLITE = sorted(name for name, record in MANIFEST.items() if record["format"] == "tflite")
ONNX = sorted(name for name, record in MANIFEST.items() if record["format"] == "onnx")
TWINS = sorted(name for name, record in MANIFEST.items() if "pruned_twin" in record)


def smooth(rng: np.random.Generator, shape: tuple[int, ...], frames: int = FRAMES) -> np.ndarray:
    """Feature-like frames: AR(1), unit variance, correlated from one frame to the next."""
    out = np.empty((frames, *shape), np.float32)
    out[0] = rng.standard_normal(shape)
    for t in range(1, frames):
        out[t] = 0.8 * out[t - 1] + 0.6 * rng.standard_normal(shape)
    return out


# ---------------------------------------------------------------- TFLite

def tflite_interpreter(name: str):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(FIXTURES / name),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    return interpreter


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)


def tflite_rollout(name: str, frames: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Run the streaming step over float frames (quantized to each input's grid), states from zero.

    A state output and its input need not share a quantization (the converter calibrates them apart):
    the carried state is requantized from the output's grid to the input's.
    """
    interpreter = tflite_interpreter(name)
    inputs = {d["name"]: d for d in interpreter.get_input_details()}
    outputs = {d["name"]: d for d in interpreter.get_output_details()}
    pairs = MANIFEST[name]["state_pairs"]
    states = {i: np.full(inputs[i]["shape"], inputs[i]["quantization"][1], np.int8) for i in pairs}
    steps = []
    for t in range(FRAMES):
        for i, d in inputs.items():
            value = states[i] if i in pairs else quantize(frames[i][t], *d["quantization"])
            interpreter.set_tensor(d["index"], value.reshape(d["shape"]))
        interpreter.invoke()
        step = {o: interpreter.get_tensor(d["index"]).copy() for o, d in outputs.items()}
        for i, o in pairs.items():
            scale, zero_point = outputs[o]["quantization"]
            carried = (step[o].astype(np.float32) - zero_point) * scale
            states[i] = quantize(carried, *inputs[i]["quantization"]).reshape(inputs[i]["shape"])
        steps.append(step)
    return steps


def tflite_frames(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    interpreter = tflite_interpreter(name)
    rng = np.random.default_rng(seed)
    return {d["name"]: smooth(rng, tuple(d["shape"])) for d in interpreter.get_input_details()
            if d["name"] not in MANIFEST[name]["state_pairs"]}


@pytest.mark.parametrize("name", TFLITE)
def test_tflite_fixture_is_full_int8_with_paired_states(name):
    interpreter = tflite_interpreter(name)
    inputs = {d["name"]: d for d in interpreter.get_input_details()}
    outputs = {d["name"]: d for d in interpreter.get_output_details()}
    for d in [*inputs.values(), *outputs.values()]:
        assert d["dtype"] == np.int8, f"{name}: {d['name']} is {d['dtype']}, not int8"
        assert d["quantization"][0] > 0, f"{name}: {d['name']} has no quantization"
    for i, o in MANIFEST[name]["state_pairs"].items():
        assert i in inputs and o in outputs, f"{name}: state pair {i} → {o} names no input/output"
        assert np.prod(inputs[i]["shape"]) == np.prod(outputs[o]["shape"]), f"{name}: {i} and {o} differ in size"
    assert (FIXTURES / name).stat().st_size <= MAX_BYTES


@pytest.mark.parametrize("name", TFLITE)
def test_tflite_fixture_streams_30_frames_in_reference_kernels(name):
    steps = tflite_rollout(name, tflite_frames(name))
    for output in steps[0]:
        series = np.stack([s[output] for s in steps])
        assert len(np.unique(series)) > 4, f"{name}: output {output} hardly varies over {FRAMES} frames"
        assert not np.array_equal(series[0], series[-1])
    for i, o in MANIFEST[name]["state_pairs"].items():  # the state really evolves
        assert len({s[o].tobytes() for s in steps}) > FRAMES // 2, f"{name}: state {o} stuck"


def test_variable_state_lstm_is_carried_by_the_interpreter():
    """The fused UNIDIRECTIONAL_SEQUENCE_LSTM keeps h and c in variable tensors: a second call on the same frame
    differs from the first, and a fresh interpreter reproduces the first."""
    name = "keras_lstm_seq.tflite"
    assert MANIFEST[name].get("variable_state")
    interpreter = tflite_interpreter(name)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    frame = quantize(tflite_frames(name)[inp["name"]][0], *inp["quantization"]).reshape(inp["shape"])
    results = []
    for _ in range(2):
        interpreter.set_tensor(inp["index"], frame)
        interpreter.invoke()
        results.append(interpreter.get_tensor(out["index"]).copy())
    assert not np.array_equal(results[0], results[1])
    fresh = tflite_interpreter(name)
    fresh.set_tensor(inp["index"], frame)
    fresh.invoke()
    np.testing.assert_array_equal(fresh.get_tensor(out["index"]), results[0])


# ---------------------------------------------------------------- ONNX

def onnx_session(name: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(str(FIXTURES / name), options, providers=["CPUExecutionProvider"])


def onnx_rollout(name: str, frames: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    session = onnx_session(name)
    pairs = MANIFEST[name]["state_pairs"]
    shapes = {i.name: [d if isinstance(d, int) else 1 for d in i.shape] for i in session.get_inputs()}
    states = {i: np.zeros(shapes[i], np.float32) for i in pairs}
    names = [o.name for o in session.get_outputs()]
    steps = []
    for t in range(len(next(iter(frames.values())))):
        feed = {i: (states[i] if i in pairs else frames[i][t]) for i in shapes}
        step = dict(zip(names, session.run(None, feed)))
        states = {i: step[o] for i, o in pairs.items()}
        steps.append(step)
    return steps


def onnx_calibration(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / MANIFEST[name]["calibration"]) as calib:
        return {k: calib[k][:FRAMES] for k in calib.files}


@pytest.mark.parametrize("name", ONNX)
def test_onnx_fixture_is_valid_and_names_its_states(name):
    import onnx

    model = onnx.load(str(FIXTURES / name))
    onnx.checker.check_model(model, full_check=True)
    inputs = {v.name for v in model.graph.input} - {i.name for i in model.graph.initializer}
    outputs = {v.name for v in model.graph.output}
    pairs = MANIFEST[name]["state_pairs"]
    assert set(pairs) <= inputs and set(pairs.values()) <= outputs
    calib = np.load(FIXTURES / MANIFEST[name]["calibration"])
    assert set(calib.files) == inputs - set(pairs), f"{name}: calibration must hold every non-state input"
    for key in calib.files:
        assert calib[key].dtype == np.float32 and calib[key].shape[0] == 40
    is_qdq = name.endswith("_qdq.onnx")
    assert is_qdq == any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    assert (FIXTURES / name).stat().st_size <= MAX_BYTES


@pytest.mark.parametrize("name", ONNX)
def test_onnx_fixture_streams_in_onnxruntime(name):
    steps = onnx_rollout(name, onnx_calibration(name))
    for output in steps[0]:
        series = np.stack([s[output] for s in steps])
        assert np.isfinite(series).all()
        assert not np.allclose(series[0], series[-1]), f"{name}: output {output} does not change"


@pytest.mark.parametrize("name", sorted(n for n in ONNX if n.endswith("_qdq.onnx")))
def test_qdq_fixture_stays_close_to_its_float_model(name):
    """quantize_static's int8 model follows the float one over the rollout (a loose bound: random weights)."""
    float_name = name.replace("_qdq.onnx", ".onnx")
    frames = onnx_calibration(name)
    quantized, reference = onnx_rollout(name, frames), onnx_rollout(float_name, frames)
    for output in reference[0]:
        q = np.stack([s[output] for s in quantized])
        f = np.stack([s[output] for s in reference])
        relative_rms = np.sqrt(np.mean((q - f) ** 2) / np.mean(f ** 2))
        assert relative_rms < 0.05, f"{name}: {output} off by {relative_rms:.1%} RMS"


# ---------------------------------------------------------------- pruned twins

@pytest.mark.parametrize("name", TWINS)
def test_pruned_model_equals_its_small_twin(name):
    record = MANIFEST[name]
    pruned = record["pruned_twin"]
    if record["format"] == "tflite":
        frames = tflite_frames(name, seed=1)
        small_steps, pruned_steps = tflite_rollout(name, frames), tflite_rollout(pruned, frames)
    else:
        frames = onnx_calibration(name)
        small_steps, pruned_steps = onnx_rollout(name, frames), onnx_rollout(pruned, frames)
    state_outputs = set(record["state_pairs"].values())
    kept = record.get("kept_units")
    for small, big in zip(small_steps, pruned_steps):
        for output, value in small.items():
            if output in state_outputs:  # the pruned state holds the survivors at kept_units, the rest stay zero
                full = big[output]
                np.testing.assert_array_equal(full[..., kept], value)
                zero = np.setdiff1d(np.arange(full.shape[-1]), kept)
                assert len(np.unique(full[..., zero])) == 1
            else:
                np.testing.assert_array_equal(big[output], value)
