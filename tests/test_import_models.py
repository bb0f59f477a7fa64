"""Models made by real converters (tests/fixtures/imported: TensorFlow Lite converter, torch.onnx.export,
onnxruntime's quantizer) imported, quantized and compiled, checked against independent oracles:
the TFLite interpreter on the source file, onnxruntime on the QDQ model, the float model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort
import pytest

from tvmse.errors import ConfigError, QuantizationError, UnsupportedModelError
from tvmse.frontend import import_model
from tvmse.quantize import quantize_model
from tvmse.targets.ethosu.lower_to_tflite import lower_to_tflite
from tvmse.targets.ethosu.tflite_writer import run_tflite
from tvmse.targets.host import HostReference

FIXTURES = Path(__file__).parent / "fixtures" / "imported"
STREAMING_TFLITE = ["keras_gru_step", "keras_gru_step_per_tensor", "keras_lstm_step"]


def _rollout(step, graph, frames: int = 30, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Run ``step(inputs) → outputs`` frame after frame with the state fed back (random int8 frames)."""
    rng = np.random.default_rng(seed)
    tensors = graph.tensors()
    state = {i: np.full(tensors[i].shape, tensors[i].zero_point, np.int8) for i in graph.state_pairs}
    results = []
    for _ in range(frames):
        feeds = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8) for t in graph.inputs
                 if t.name not in graph.state_pairs}
        out = step({**feeds, **state})
        state = {i: out[o].reshape(tensors[i].shape) for i, o in graph.state_pairs.items()}
        results.append(out)
    return results


@pytest.mark.parametrize("name", STREAMING_TFLITE)
def test_tflite_import_is_bit_exact_with_the_source_over_a_rollout(name):
    """Host reference of the imported graph, and the TFLite file tvmse writes from it, against the
    interpreter on the converter's own file: identical outputs over 30 frames, state carried."""
    source = (FIXTURES / f"{name}.tflite").read_bytes()
    graph = import_model(FIXTURES / f"{name}.tflite").graph
    assert graph.state_pairs, "the state pair must be found"
    reference = HostReference(graph)
    written = lower_to_tflite(graph)
    expected = _rollout(lambda feeds: run_tflite(source, feeds), graph)
    for got in (_rollout(reference.run, graph), _rollout(lambda feeds: run_tflite(written, feeds), graph)):
        for frame, (a, b) in enumerate(zip(expected, got)):
            for output in graph.outputs:
                np.testing.assert_array_equal(b[output], a[output], err_msg=f"{name}, frame {frame}, {output}")


def test_state_pairs_are_found_by_size_and_quantization():
    imported = import_model(FIXTURES / "keras_lstm_step.tflite")
    assert imported.graph.state_pairs == {"serving_default_c:0": "StatefulPartitionedCall_1:2",
                                          "serving_default_h:0": "StatefulPartitionedCall_1:1"}
    assert set(imported.state_found.values()) == {"by size and quantization"}


def test_explicit_state_pairs_override(tmp_path):
    graph = import_model(FIXTURES / "keras_gru_step.tflite",
                         state={"state": "output_1"}).graph   # signature keys work as names
    assert graph.state_pairs == {"serving_default_state:0": "StatefulPartitionedCall_1:1"}
    with pytest.raises(ConfigError, match="no input 'nope'"):
        import_model(FIXTURES / "keras_gru_step.tflite", state={"nope": "output_1"})


def test_compiled_tflite_fixture_equals_source_and_beats_vela_alone(tmp_path):
    from tvmse.compile import compile_model, resolve_vela_config
    from tvmse.targets.ethosu.vela_driver import compile_tflite

    path = FIXTURES / "keras_gru_step.tflite"
    result = compile_model(path, output_dir=tmp_path / "out")
    npu = result.report["npu"]
    assert npu["cpu_fallback_ops"] == []
    alone = compile_tflite(path.read_bytes(), resolve_vela_config("ethos-u55", None, None, None), name="alone")
    assert npu["total_cycles_per_frame"] <= alone.total_cycles
    compiled = (tmp_path / "out" / "keras_gru_step_int8.tflite").read_bytes()
    source = path.read_bytes()
    graph = result.graph
    for a, b in zip(_rollout(lambda f: run_tflite(source, f), graph), _rollout(lambda f: run_tflite(compiled, f), graph)):
        for output in graph.outputs:
            np.testing.assert_array_equal(b[output], a[output])
    assert result.report["import"]["format"] == "tflite"
    assert result.report["import"]["state_pairs"][0]["found"] == "by size and quantization"


# ---- ONNX: float models quantized by tvmse ---------------------------------------------------------
def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(model.SerializeToString(), options)


@pytest.fixture(scope="module", params=["torch_lstm_step", "torch_gru_step"])
def quantized(request, tmp_path_factory):
    name = request.param
    result = quantize_model(FIXTURES / f"{name}.onnx", FIXTURES / f"{name}_calib.npz")
    path = tmp_path_factory.mktemp("q") / f"{name}_int8.onnx"
    onnx.save(result.model, str(path))
    return name, result, path


def test_quantized_float_model_is_close_to_the_float_model(quantized):
    name, result, _ = quantized
    assert set(result.errors) == {o.name for o in onnx.load(FIXTURES / f"{name}.onnx").graph.output}
    for output, error in result.errors.items():
        assert error["rel_rms"] < 0.05, (output, error)   # measured 0.004–0.022


def test_quantized_model_keeps_the_source_interface(quantized):
    name, result, path = quantized
    source = onnx.load(FIXTURES / f"{name}.onnx")
    model = onnx.load(path)
    assert [i.name for i in model.graph.input] == [i.name for i in source.graph.input]
    assert [o.name for o in model.graph.output] == [o.name for o in source.graph.output]
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.INT8 for v in [*model.graph.input, *model.graph.output])


def test_every_integer_op_within_one_lsb_of_onnxruntime(quantized, tmp_path):
    """Each integer op, fed the int8 inputs the host reference saw, against onnxruntime running the same
    op's QDQ subgraph of the quantized file."""
    _, _, path = quantized
    graph = import_model(path).graph
    source_tensors = {v for n in onnx.load(path).graph.node for v in n.output} | {i.name for i in graph.inputs}
    probe = type(graph)(inputs=graph.inputs, outputs=[op.name for op in graph.ops], ops=graph.ops,
                        state_pairs=graph.state_pairs)
    reference = HostReference(probe)
    rng = np.random.default_rng(0)
    traces = []
    for _ in range(5):
        feeds = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8) for t in graph.inputs}
        traces.append({**feeds, **reference.run(feeds)})
    checked = 0
    for op in graph.ops:
        inputs = list(dict.fromkeys(op.inputs))
        if op.kind == "constant" or op.name not in source_tensors or not set(inputs) <= source_tensors:
            continue   # ops the importer added (requantizations, constants) have no QDQ twin
        sub = tmp_path / "sub.onnx"
        onnx.utils.extract_model(str(path), str(sub), inputs, [op.name])
        session = _session(onnx.load(sub))
        for trace in traces:
            got = session.run(None, {n: trace[n] for n in inputs})[0]
            assert np.abs(got.astype(np.int32) - trace[op.name].reshape(got.shape)).max() <= 1, op.name
        checked += 1
    assert checked >= len(graph.ops) // 2


def test_compile_with_calibration_reports_the_quantization_error(tmp_path):
    from tvmse.compile import compile_model
    result = compile_model(FIXTURES / "torch_gru_step.onnx", output_dir=tmp_path / "out",
                           calibration=FIXTURES / "torch_gru_step_calib.npz")
    assert result.report["npu"]["cpu_fallback_ops"] == []
    quantization = result.report["import"]["quantization"]
    assert set(quantization["int8_vs_float"]) == {"mask", "state_out"}
    assert result.graph.state_pairs == {"state_in": "state_out"}


def test_onnxruntime_quantizer_output_is_requantized_from_its_float_weights(tmp_path):
    """quantize_static leaves the LSTM float: the model is made float again and quantized by tvmse."""
    result = quantize_model(FIXTURES / "torch_lstm_step_qdq.onnx", FIXTURES / "torch_lstm_step_calib.npz")
    assert all(e["rel_rms"] < 0.05 for e in result.errors.values()), result.errors


# ---- refusals ----------------------------------------------------------------------------------
def test_float_model_without_calibration_names_the_option():
    with pytest.raises(QuantizationError, match="--calibration"):
        import_model(FIXTURES / "torch_gru_step.onnx")


def test_float_recurrent_node_in_a_qdq_model_names_the_fix():
    with pytest.raises(UnsupportedModelError, match="LSTM at node.*--calibration"):
        import_model(FIXTURES / "torch_lstm_step_qdq.onnx")


def test_calibration_file_without_the_input_is_refused(tmp_path):
    bad = tmp_path / "calib.npz"
    np.savez(bad, wrong=np.zeros((4, 1, 1, 32), np.float32))
    with pytest.raises(ConfigError, match="no array 'frame'"):
        quantize_model(FIXTURES / "torch_gru_step.onnx", bad)


def test_fused_sequence_lstm_is_refused_with_the_reason():
    with pytest.raises(UnsupportedModelError, match="UNIDIRECTIONAL_SEQUENCE_LSTM"):
        import_model(FIXTURES / "keras_lstm_seq.tflite")


def test_float_conv1d_model_compiles_with_every_op_on_the_npu(tmp_path):
    """torch Conv1d stack (computed pads folded into the convolutions, MaxPool, ReduceMean, Gemm)."""
    from tvmse.compile import compile_model
    result = compile_model(FIXTURES / "torch_conv1d.onnx", output_dir=tmp_path / "out",
                           calibration=FIXTURES / "torch_conv1d_calib.npz")
    assert result.report["npu"]["cpu_fallback_ops"] == []
    kinds = {op.kind for op in result.graph.ops}
    assert {"conv_2d", "max_pool", "mean", "fully_connected"} <= kinds
    assert result.report["import"]["quantization"]["int8_vs_float"]["logits"]["rel_rms"] < 0.05


def test_two_stage_enhancer_with_layer_norm_runs_on_the_npu(tmp_path):
    """Two LSTM stages, a layer norm (ReduceMean, Sub, Mul, Sqrt, Div → MEAN, SUB, MUL, RSQRT) and a state
    tensor [1, 2, 12, 2] sliced by Gathers and rebuilt by Concat: all int8, all on the NPU."""
    from tvmse.compile import compile_model
    result = compile_model(FIXTURES / "torch_two_stage_lstm.onnx", output_dir=tmp_path / "out",
                           calibration=FIXTURES / "torch_two_stage_lstm_calib.npz")
    assert result.report["npu"]["cpu_fallback_ops"] == []
    assert {"rsqrt", "mean", "slice"} <= {op.kind for op in result.graph.ops}
    assert result.graph.state_pairs == {"states": "states_out"}
    errors = result.report["import"]["quantization"]["int8_vs_float"]
    assert all(e["rel_rms"] < 0.05 for e in errors.values()), errors   # measured 2.1 % and 2.6 %


def test_torch_module_compiles_through_torch_onnx_export(tmp_path):
    import torch
    from tvmse.compile import compile_model

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.cell = torch.nn.GRUCell(16, 12)
            self.out = torch.nn.Linear(12, 16)

        def forward(self, frame, h):
            h_new = self.cell(frame, h)
            return torch.sigmoid(self.out(h_new)), h_new

    rng = np.random.default_rng(0)
    calib = tmp_path / "calib.npz"
    np.savez(calib, frame=rng.standard_normal((20, 1, 16)).astype(np.float32))
    result = compile_model(Step(), example_inputs={"frame": torch.zeros(1, 16), "h": torch.zeros(1, 12)},
                           output_names=["mask", "h_out"], calibration=calib, output_dir=tmp_path / "out")
    assert result.graph.state_pairs == {"h": "h_out"}
    assert result.report["npu"]["cpu_fallback_ops"] == []


def test_state_tensor_sliced_by_gather_and_restacked(tmp_path):
    """A state [1, 2, C] read with constant-index Gathers and rebuilt by stack, as two-stage enhancers do."""
    import torch
    from tvmse.compile import compile_model

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(1)
            self.mix = torch.nn.Linear(16, 16)

        def forward(self, frame, states):
            y = torch.sigmoid(self.mix(torch.cat([frame, states[:, 1]], dim=1)))
            return y, torch.stack([states[:, 0], y[:, :8]], dim=1)

    rng = np.random.default_rng(0)
    calib = tmp_path / "calib.npz"
    np.savez(calib, frame=rng.standard_normal((20, 1, 8)).astype(np.float32))
    result = compile_model(Step(), example_inputs={"frame": torch.zeros(1, 8), "states": torch.zeros(1, 2, 8)},
                           output_names=["mask", "states_out"], calibration=calib, output_dir=tmp_path / "out")
    assert result.graph.state_pairs == {"states": "states_out"}
    assert "slice" in {op.kind for op in result.graph.ops}


def test_calibration_from_a_folder_of_audio_with_the_project_features(tmp_path):
    import torch

    from tvmse.frontend.torch_export import export_module

    class Mask(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(2)
            self.fc = torch.nn.Linear(257, 257)

        def forward(self, frame):
            return torch.sigmoid(self.fc(frame))

    path = export_module(Mask(), {"frame": torch.zeros(1, 257)}, ["mask"], tmp_path / "mask.onnx")
    audio = Path(__file__).parents[1] / "examples" / "audio" / "speech"
    with pytest.raises(ConfigError, match="--features"):
        quantize_model(path, audio)
    result = quantize_model(path, audio, features="tinylstm")
    assert result.frames > 100 and result.errors["mask"]["rel_rms"] < 0.05
