"""A corpus of hostile inputs to ``python -m tvmse.compile``, derived from the bundled model.

Each ``Case`` writes its files into an empty folder and returns the command's arguments (run with
that folder as the current one). ``expect`` is ``"ok"`` (exit 0, an output folder) or ``"error"``
(exit 2, one ``tvmse: error:`` line, one line per problem, nothing left behind); ``phrases`` must
appear in the message. ``fast``: the case fails before any model reaches TVM, so a sample of the
corpus can run in CI within seconds.

    python -m tests.fuzz.corpus            # list the cases by category
    python -m tests.fuzz.corpus --run      # run them all (in one process; --alone: each in its own)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "examples" / "tinylstm_int8.onnx"
OPSET = [helper.make_opsetid("", 21)]
FIXTURES = REPO / "tests" / "fixtures" / "imported"
TFLITE = FIXTURES / "keras_gru_step_small.tflite"          # int8 TFLite from the TFLite converter
FLOAT_ONNX = FIXTURES / "torch_gru_step_small.onnx"        # float ONNX from torch.onnx.export
FLOAT_CALIB = FIXTURES / "torch_gru_step_calib.npz"


@dataclass(frozen=True)
class Case:
    name: str
    category: str
    build: Callable[[Path], list[str]]
    expect: str = "error"
    phrases: tuple[str, ...] = ()
    fast: bool = True
    max_problem_lines: int = 3
    tags: tuple[str, ...] = field(default=())


# ---- helpers -----------------------------------------------------------------------------------------
_base_cache: dict[str, bytes] = {}


def base_model() -> onnx.ModelProto:
    if "bundled" not in _base_cache:
        _base_cache["bundled"] = BUNDLED.read_bytes()
    model = onnx.ModelProto()
    model.ParseFromString(_base_cache["bundled"])
    return model


def _save(model: onnx.ModelProto, folder: Path, name: str = "model.onnx") -> list[str]:
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return [name, "-q"]


def _mutated(mutate: Callable[[onnx.ModelProto], None], *extra: str) -> Callable[[Path], list[str]]:
    def build(folder: Path) -> list[str]:
        model = base_model()
        mutate(model)
        return _save(model, folder) + list(extra)
    return build


def _raw(data: bytes, name: str = "model.onnx") -> Callable[[Path], list[str]]:
    def build(folder: Path) -> list[str]:
        (folder / name).write_bytes(data)
        return [name, "-q"]
    return build


def _initializer(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in model.graph.initializer if t.name == name)


def _node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


def _set_array(model: onnx.ModelProto, name: str, array: np.ndarray) -> None:
    tensor = _initializer(model, name)
    tensor.CopyFrom(numpy_helper.from_array(array, name))


def _set_scale(name: str, value: float, index: int | None = None) -> Callable[[onnx.ModelProto], None]:
    def mutate(model):
        array = numpy_helper.to_array(_initializer(model, name)).copy()
        if index is None:
            array[...] = value
        else:
            array.reshape(-1)[index] = value
        _set_array(model, name, array.astype(np.float32))
    return mutate


ACT_SCALE = "scale_0"                        # shared by the input DequantizeLinear nodes and more
OUT_SCALE = "scale_8"                        # the first FC's output
W_SCALE = "lstm0/fc.weight_scale_3"          # per-channel weight scales [1024]
B_SCALE = "lstm0/fc.bias_scale_6"
WEIGHT = "lstm0/fc.weight_2"                 # int8 [513, 1024]
BIAS = "lstm0/fc.bias_5"                     # int32 [1024]
ACT_ZP = "zero_point_1"
W_ZP = "lstm0/fc.weight_zero_point_4"
B_ZP = "lstm0/fc.bias_zero_point_7"


def _opset(version: int | None) -> Callable[[onnx.ModelProto], None]:
    def mutate(model):
        del model.opset_import[:]
        if version is not None:
            model.opset_import.append(helper.make_opsetid("", version))
    return mutate


def _ir(version: int) -> Callable[[onnx.ModelProto], None]:
    def mutate(model):
        model.ir_version = version
    return mutate


def _input_dim(input_name: str, axis: int, value: int | str | None) -> Callable[[onnx.ModelProto], None]:
    def mutate(model):
        value_info = next(v for v in model.graph.input if v.name == input_name)
        dim = value_info.type.tensor_type.shape.dim[axis]
        if isinstance(value, str):
            dim.dim_param = value
        elif value is None:
            dim.Clear()
        else:
            dim.dim_value = value
    return mutate


def _drop_initializer(name: str) -> Callable[[onnx.ModelProto], None]:
    def mutate(model):
        kept = [t for t in model.graph.initializer if t.name != name]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
    return mutate


def _rewire(node_name: str, slot: int, tensor: str) -> Callable[[onnx.ModelProto], None]:
    def mutate(model):
        _node(model, node_name).input[slot] = tensor
    return mutate


def _rename_output(node_name: str, slot: int, tensor: str) -> Callable[[onnx.ModelProto], None]:
    def mutate(model):
        _node(model, node_name).output[slot] = tensor
    return mutate


def _cycle(model):
    # the first Concat reads the output of a node that depends on it
    _node(model, "lstm0/xh").input[1] = "lstm0/fc/dq"


def _reverse_nodes(model):
    nodes = list(model.graph.node)[::-1]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _swap_first_two_dependent(model):
    nodes = list(model.graph.node)
    i = next(k for k, n in enumerate(nodes) if n.name == "lstm0/xh")
    j = next(k for k, n in enumerate(nodes) if n.name == "lstm0/xh/q")
    nodes[i], nodes[j] = nodes[j], nodes[i]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _extra_output(name: str) -> Callable[[onnx.ModelProto], None]:
    def mutate(model):
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.INT8, [1, 257]))
    return mutate


def _duplicate_output(model):
    model.graph.output.append(model.graph.output[0])


def _no_outputs(model):
    del model.graph.output[:]


def _no_nodes(model):
    del model.graph.node[:]


def _set_dims(name: str, dims: list[int]) -> Callable[[onnx.ModelProto], None]:
    def mutate(model):
        tensor = _initializer(model, name)
        del tensor.dims[:]
        tensor.dims.extend(dims)
    return mutate


def _replace_array(name: str, make: Callable[[np.ndarray], np.ndarray]) -> Callable[[onnx.ModelProto], None]:
    def mutate(model):
        _set_array(model, name, make(numpy_helper.to_array(_initializer(model, name))))
    return mutate


def _int4_weights(model):
    w = numpy_helper.to_array(_initializer(model, WEIGHT))
    tensor = helper.make_tensor(WEIGHT, TensorProto.INT4, list(w.shape), np.clip(w, -8, 7).reshape(-1).tolist())
    _initializer(model, WEIGHT).CopyFrom(tensor)
    zp = numpy_helper.to_array(_initializer(model, W_ZP))
    _initializer(model, W_ZP).CopyFrom(helper.make_tensor(W_ZP, TensorProto.INT4, list(zp.shape),
                                                          zp.reshape(-1).tolist()))


def _computed_scale(model):
    model.graph.node.insert(0, helper.make_node("Identity", [ACT_SCALE], ["scale_copy"], name="scale_copy"))
    _node(model, "frame/dq").input[1] = "scale_copy"


def _q_without_zero_point(model):
    del _node(model, "lstm0/xh/q").input[2:]


def _softplus_node(model):
    node = _node(model, "lstm0/fc/bias_add")
    node.op_type = "Softplus"
    del node.input[1:]


def _custom_domain(model):
    _node(model, "lstm0/fc/bias_add").domain = "com.example"
    model.opset_import.append(helper.make_opsetid("com.example", 1))


def _lstm_op(model):
    node = _node(model, "lstm0/fc/matmul")
    node.op_type = "LSTM"


def _unnamed_nodes(model):
    for node in model.graph.node:
        node.name = ""


def _float_model(folder: Path) -> list[str]:
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              [numpy_helper.from_array(np.ones((4, 2), np.float32), "W")])
    return _save(helper.make_model(graph, opset_imports=OPSET), folder)


def _external(location: str | None = None, damage: Callable[[Path], None] | None = None,
              link_to: str | None = None) -> Callable[[Path], list[str]]:
    """The bundled model with its weights in ``weights.bin``; then the location or the file is spoiled."""
    def build(folder: Path) -> list[str]:
        model = base_model()
        onnx.external_data_helper.convert_model_to_external_data(model, all_tensors_to_one_file=True,
                                                                 location="weights.bin", size_threshold=1024)
        onnx.save(model, folder / "model.onnx")
        if location is not None:
            model = onnx.load(folder / "model.onnx", load_external_data=False)
            for tensor in model.graph.initializer:
                for entry in tensor.external_data:
                    if entry.key == "location":
                        entry.value = location
            (folder / "model.onnx").write_bytes(model.SerializeToString())
        if link_to is not None:
            (folder / "weights.bin").unlink()
            os.symlink(link_to, folder / "weights.bin")
        if damage is not None:
            damage(folder / "weights.bin")
        return ["model.onnx", "-q"]
    return build


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _declared_length(folder: Path) -> list[str]:
    build = _external()
    args = build(folder)
    model = onnx.load(folder / "model.onnx", load_external_data=False)
    entry = next(e for e in model.graph.initializer[2].external_data if e.key == "length")
    entry.value = str(int(entry.value) + 4)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    return args


def _tflite_bytes() -> bytes:
    """A minimal well-formed TFLite flatbuffer: version 3, one empty subgraph, one empty buffer."""
    import flatbuffers
    b = flatbuffers.Builder(256)
    b.StartObject(5)                                   # SubGraph: tensors, inputs, outputs, operators, name
    subgraph = b.EndObject()
    b.StartObject(1)                                   # Buffer: data
    buffer = b.EndObject()
    b.StartVector(4, 1, 4)
    b.PrependUOffsetTRelative(subgraph)
    subgraphs = b.EndVector()
    b.StartVector(4, 1, 4)
    b.PrependUOffsetTRelative(buffer)
    buffers = b.EndVector()
    b.StartObject(5)                                   # Model: version, operator_codes, subgraphs, description, buffers
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(4, buffers, 0)
    model = b.EndObject()
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def _with_file(name: str, content: bytes | None = None, folder_named: bool = False):
    def build(folder: Path) -> list[str]:
        target = folder / name
        if folder_named:
            target.mkdir()
        else:
            target.write_bytes(content or b"")
        return []
    return build


def _bundled(*options: str, name: str = "model.onnx", setup: Callable[[Path], None] | None = None):
    def build(folder: Path) -> list[str]:
        (folder / name).write_bytes(BUNDLED.read_bytes())
        if setup is not None:
            setup(folder)
        return [name, "-q", *options]
    return build


def _fixture(source: Path, name: str | None = None, extra: tuple[str, ...] = ()):
    def build(folder: Path) -> list[str]:
        target = name or source.name
        (folder / target).write_bytes(source.read_bytes())
        return [target, "-q", *extra]
    return build


def _foreign_folder(folder: Path) -> None:
    (folder / "results").mkdir()
    (folder / "results" / "notes.txt").write_text("the user's own file")


def _earlier_output(folder: Path) -> None:
    (folder / "results").mkdir()
    (folder / "results" / ".tvmse-output").write_text("{}\n")
    (folder / "results" / "report.json").write_text("{}\n")


def _file_in_the_way(folder: Path) -> None:
    (folder / "results").write_text("a file, not a folder")


def _models_folder(folder: Path) -> None:
    (folder / "models").mkdir()
    (folder / "model.onnx").rename(folder / "models" / "model.onnx")


# ---- the corpus -------------------------------------------------------------------------------------
def cases() -> list[Case]:
    c: list[Case] = []

    def add(name, category, build, expect="error", phrases=(), fast=True, max_lines=3):
        c.append(Case(name, category, build, expect, tuple(phrases), fast, max_lines))

    # file kind
    add("missing file", "file", lambda f: ["nope.onnx"], phrases=["model file not found"])
    add("directory", "file", lambda f: (f / "dir.onnx").mkdir() or ["dir.onnx"], phrases=["is not a file"])
    add("empty file", "file", _raw(b""), phrases=["is empty"])
    add("junk bytes", "file", _raw(b"\x08\x01garbage\xff" * 40), phrases=["cannot parse it as ONNX"])
    add("text file", "file", _raw(b"hello, I am not a model\n" * 10), phrases=["cannot parse it as ONNX"])
    add("truncated to 100 bytes", "file", _raw(BUNDLED.read_bytes()[:100]), phrases=["cannot parse it as ONNX"])
    add("truncated to half", "file", _raw(BUNDLED.read_bytes()[:BUNDLED.stat().st_size // 2]),
        phrases=["cannot parse it as ONNX"])
    add("zip (torch checkpoint)", "file", _raw(b"PK\x03\x04" + b"\0" * 60, "model.pt"), phrases=["zip archive"])
    add("pickle", "file", _raw(b"\x80\x02}q\x00." + b"\0" * 20, "model.pkl"), phrases=["pickle"])
    add("hdf5", "file", _raw(b"\x89HDF\r\n\x1a\n" + b"\0" * 40, "model.h5"), phrases=["HDF5"])
    add("onnx bytes named .tflite", "file", _raw(BUNDLED.read_bytes(), "model.tflite"),
        phrases=["is not a TFLite flatbuffer"])
    add("damaged tflite", "file", _raw(b"\x18\x00\x00\x00TFL3" + b"\xff" * 8, "model.tflite"),
        phrases=["its tables cannot be read"])
    add("tflite with an empty subgraph", "file", _raw(_tflite_bytes(), "model.tflite"),
        phrases=["its subgraph has no inputs"], max_lines=4)
    add("empty-subgraph tflite named .onnx", "file", _raw(_tflite_bytes(), "model.onnx"),
        phrases=["its subgraph has no inputs"], max_lines=4)
    add("tflite truncated to half", "file", _raw(TFLITE.read_bytes()[:TFLITE.stat().st_size // 2], "model.tflite"),
        phrases=["model.tflite"])
    add("tflite truncated to 12 bytes", "file", _raw(TFLITE.read_bytes()[:12], "model.tflite"),
        phrases=["cannot be read"])

    # versions
    for v in (1, 7, 10, 22, 99):
        add(f"opset {v}", "versions", _mutated(_opset(v)), phrases=[f"opset {v} is outside the supported range 11–21"])
    add("no opset import", "versions", _mutated(_opset(None)), phrases=["imports no ai.onnx opset"])
    for v in (1, 3, 5, 99):
        add(f"IR version {v}", "versions", _mutated(_ir(v)), phrases=[f"IR version {v} is outside"])

    # structure
    add("missing scale initializer", "structure", _mutated(_drop_initializer(ACT_SCALE)),
        phrases=["tensor 'scale_0'", "is made by no node, input or initializer"])
    add("missing weight initializer", "structure", _mutated(_drop_initializer(WEIGHT)),
        phrases=[f"tensor '{WEIGHT}'", "made by no node"])
    add("dangling input", "structure", _mutated(_rewire("lstm0/fc/matmul", 0, "ghost")),
        phrases=["tensor 'ghost'", "made by no node"])
    add("cycle", "structure", _mutated(_cycle), phrases=["cycle through nodes"])
    add("self loop", "structure", _mutated(_rewire("lstm0/fc/bias_add", 0, "lstm0/fc/f")), phrases=["cycle"])
    add("duplicate output tensor", "structure", _mutated(_rename_output("lstm0/fc/b", 0, "lstm0/fc/w")),
        phrases=["tensor 'lstm0/fc/w' is written by 2 nodes"])
    add("output no node makes", "structure", _mutated(_extra_output("nowhere")),
        phrases=["graph output 'nowhere' is made by no node"])
    add("output listed twice", "structure", _mutated(_duplicate_output), phrases=["is listed twice"])
    add("no outputs", "structure", _mutated(_no_outputs), phrases=["no outputs"])
    add("no nodes", "structure", _mutated(_no_nodes), phrases=["made by no node"], max_lines=6)
    add("nodes reversed", "structure", _mutated(_reverse_nodes), phrases=["not in topological order"])
    add("two nodes swapped", "structure", _mutated(_swap_first_two_dependent), phrases=["not in topological order"])
    add("node output shadows an input", "structure", _mutated(_rename_output("lstm0/xh", 0, "h0")),
        phrases=["is both a graph input"])

    # quantization parameters
    for label, name in (("activation", ACT_SCALE), ("output", OUT_SCALE)):
        for what, value, phrase in (("0", 0.0, "zero or negative"), ("negative", -0.1, "zero or negative"),
                                    ("NaN", float("nan"), "NaN or infinite"), ("+Inf", float("inf"), "NaN or infinite"),
                                    ("-Inf", float("-inf"), "NaN or infinite"), ("denormal", 1e-40, "denormal")):
            add(f"{label} scale {what}", "quantization", _mutated(_set_scale(name, value)), phrases=[phrase, name])
    for label, name in (("weight", W_SCALE), ("bias", B_SCALE)):
        for what, value, phrase in (("0", 0.0, "zero or negative"), ("negative", -1e-3, "zero or negative"),
                                    ("NaN", float("nan"), "NaN or infinite"), ("+Inf", float("inf"), "NaN or infinite"),
                                    ("denormal", 1e-42, "denormal")):
            add(f"{label} scale {what} (one channel)", "quantization", _mutated(_set_scale(name, value, index=7)),
                phrases=[phrase, name, "at index 7"])
    add("scale float64", "quantization", _mutated(_replace_array(ACT_SCALE, lambda a: a.astype(np.float64))),
        phrases=["is float64, not float32"])
    add("scale float16", "quantization", _mutated(_replace_array(ACT_SCALE, lambda a: a.astype(np.float16))),
        phrases=["is float16, not float32"])
    add("activation zero point int32", "quantization",
        _mutated(_replace_array(ACT_ZP, lambda a: a.astype(np.int32))), phrases=["int32", "int8 zero point"])
    add("activation zero point uint8", "quantization",
        _mutated(_replace_array(ACT_ZP, lambda a: (a.astype(np.int16) + 128).astype(np.uint8))),
        phrases=["uint8", "int8"])
    add("activation zero point int16", "quantization",
        _mutated(_replace_array(ACT_ZP, lambda a: a.astype(np.int16))), phrases=["int16"])
    add("weight zero point int32", "quantization",
        _mutated(_replace_array(W_ZP, lambda a: a.astype(np.int32))), phrases=["must have the same type"])
    add("weight zero point non-zero", "quantization",
        _mutated(_replace_array(W_ZP, lambda a: (a + 3).astype(np.int8))), phrases=["symmetric int8 weights"])
    add("bias zero point non-zero (folded by the importer)", "quantization",
        _mutated(_replace_array(B_ZP, lambda a: (a + 5).astype(np.int32))), expect="ok", fast=False)
    add("weights int16", "quantization", _mutated(_replace_array(WEIGHT, lambda a: a.astype(np.int16))),
        phrases=["is int16", "int8 weights"])
    add("weights int4", "quantization", _mutated(_int4_weights), phrases=["int8 weights"])
    add("weights float", "quantization", _mutated(_replace_array(WEIGHT, lambda a: a.astype(np.float32))),
        phrases=["int8 weights"])
    add("per-channel scale count", "quantization", _mutated(_replace_array(W_SCALE, lambda a: a[:1000])),
        phrases=["1000 scales", "axis"])
    add("zero point shape", "quantization", _mutated(_replace_array(W_ZP, lambda a: a[:10])),
        phrases=["give one zero point per scale"])
    add("computed scale", "quantization", _mutated(_computed_scale), phrases=["is computed, not a constant"])
    add("QuantizeLinear without zero point", "quantization", _mutated(_q_without_zero_point),
        phrases=["quantizes to uint8"])

    # shapes and initializers
    for value, phrase in ((0, "has size 0"), (-3, "has size -3"), (2 ** 31, "has size 2,147,483,648"),
                          ("n", "is dynamic ('n')"), (None, "is dynamic")):
        add(f"input dim {value}", "shapes", _mutated(_input_dim("frame", 1, value)), phrases=[phrase])
    add("batch dim 0", "shapes", _mutated(_input_dim("h0", 0, 0)), phrases=["axis 0 has size 0"])
    add("input without shape", "shapes",
        _mutated(lambda m: m.graph.input[0].type.tensor_type.ClearField("shape")), phrases=["has no shape"])
    add("input without element type", "shapes",
        _mutated(lambda m: setattr(m.graph.input[0].type.tensor_type, "elem_type", 0)), phrases=["no element type"])
    add("wrong static frame size", "shapes", _mutated(_input_dim("frame", 1, 256)), phrases=["onnx rejects"],
        fast=True)
    add("wrong static state size", "shapes", _mutated(_input_dim("h0", 1, 128)), phrases=["onnx rejects"])
    add("initializer dims != data", "shapes", _mutated(_set_dims(WEIGHT, [513, 1000])),
        phrases=[f"initializer '{WEIGHT}'"])
    add("initializer 2^31 dims", "shapes", _mutated(_set_dims(WEIGHT, [2 ** 31, 1024])), phrases=["dims"])
    add("initializer negative dim", "shapes", _mutated(_set_dims(BIAS, [-1024])), phrases=["dims [-1024]"])
    add("weight shape mismatch", "shapes",
        _mutated(_replace_array(WEIGHT, lambda a: np.ascontiguousarray(a[:512]))), phrases=["onnx rejects"])
    add("bias shape mismatch", "shapes", _mutated(_replace_array(BIAS, lambda a: a[:1000])),
        phrases=["1024 scales", "do not match axis"])
    add("weights transposed", "shapes", _mutated(_replace_array(WEIGHT, lambda a: np.ascontiguousarray(a.T))),
        phrases=["1024 scales"])

    # external data
    add("external data escapes (../../etc/passwd)", "external data", _external("../../etc/passwd"),
        phrases=["outside the model's folder"])
    add("external data absolute path", "external data", _external("/etc/passwd"), phrases=["outside the model's folder"])
    add("external data symlink to /etc/passwd", "external data", _external(link_to="/etc/passwd"),
        phrases=["outside the model's folder"])
    add("external data file missing", "external data", _external(damage=lambda p: p.unlink()), phrases=["is missing"])
    add("external data truncated", "external data", _external(damage=_truncate), phrases=["truncated"], max_lines=20)
    add("external data empty location", "external data", _external(""), phrases=["without a location"], max_lines=20)
    add("external data length mismatch", "external data", _declared_length, phrases=["does not match its dims"])

    # ops and quantization of the graph as a whole (checked after the file checks)
    add("float model", "model", _float_model, phrases=["float model", "--calibration"])
    add("float ONNX GRU without --calibration", "model", _fixture(FLOAT_ONNX), phrases=["float model", "--calibration"])
    add("unsupported op Softplus", "model", _mutated(_softplus_node), phrases=["unsupported op Softplus"])
    add("LSTM op in a QDQ graph", "model", _mutated(_lstm_op), phrases=["unsupported op LSTM", "--calibration"])
    add("custom domain op", "model", _mutated(_custom_domain), phrases=["unsupported op com.example.Add"])

    # options
    add("--verify-trials -5", "options", _bundled("--verify-trials", "-5"), phrases=["--verify-trials -5"])
    add("--verify-trials 0", "options", _bundled("--verify-trials", "0"), phrases=["--verify-trials 0"])
    add("--output-dir .", "options", _bundled("--output-dir", "."), phrases=["is the current folder"])
    add("--output-dir ..", "options", _bundled("--output-dir", ".."), phrases=["is the current folder or holds it"])
    add("--output-dir model folder", "options",
        lambda f: _bundled(setup=_models_folder)(f) and ["models/model.onnx", "-q", "--output-dir", "models",
                                                          "--force"], phrases=["holds the input model"])
    add("--output-dir 300 characters", "options", _bundled("--output-dir", "o" * 300), phrases=["too long"])
    add("--output-dir deep long path", "options", _bundled("--output-dir", "/".join(["d" * 200] * 25)),
        phrases=["too long"])
    add("--output-dir file in the way", "options", _bundled("--output-dir", "results", setup=_file_in_the_way),
        phrases=["exists and is not a directory"])
    add("--output-dir under a file", "options", _bundled("--output-dir", "results/x", setup=_file_in_the_way),
        phrases=["is a file"])
    add("--output-dir foreign folder", "options", _bundled("--output-dir", "results", setup=_foreign_folder),
        phrases=["was not written by tvmse", "--force"])
    add("--output-dir empty string", "options", _bundled("--output-dir", " "), phrases=["is empty"])
    add("--run qemu on ethos-u55", "options", _bundled("--run", "qemu"), phrases=["--run does not apply"])
    add("--ram-budget on ethos-u65", "options", _bundled("--target", "ethos-u65", "--ram-budget", "10"),
        phrases=["--ram-budget does not apply"])
    add("--memory-mode on cortex-m55", "options", _bundled("--target", "cortex-m55", "--memory-mode", "Sram_Only"),
        phrases=["--memory-mode does not apply"])
    add("--frames without --run", "options", _bundled("--target", "cortex-m55", "--frames", "3"),
        phrases=["--frames applies only with --run qemu"])
    add("--frames 0", "options", _bundled("--target", "cortex-m55", "--run", "qemu", "--frames", "0"),
        phrases=["--frames 0"])
    add("--ram-budget -1", "options", _bundled("--target", "cortex-m55", "--ram-budget", "-1"),
        phrases=["--ram-budget -1"])
    add("--run fvp", "options", _bundled("--target", "cortex-m55", "--run", "fvp"), phrases=["--run fvp cannot run"])
    add("unknown target", "options", _bundled("--target", "ethos-u99"), phrases=["unknown target 'ethos-u99'"])
    add("unknown accelerator", "options", _bundled("--accelerator-config", "ethos-u55-100"),
        phrases=["unknown accelerator config"])
    add("accelerator of another family", "options", _bundled("--accelerator-config", "ethos-u65-256"),
        phrases=["does not belong to target"])
    add("unknown system config", "options", _bundled("--system-config", "Nope"), phrases=["unknown system config"])
    add("memory mode of another family", "options", _bundled("--memory-mode", "Dedicated_Sram"),
        phrases=["is not valid for ethos-u55-128"])
    add("unknown pass", "options", _bundled("--disable-pass", "no_such_pass"), phrases=["no_such_pass"])
    add("--ram-budget too small", "options", _bundled("--target", "cortex-m55", "--ram-budget", "100"),
        phrases=["--ram-budget 100 B"], fast=False)

    # valid inputs: exit 0 and a published folder
    add("bundled model", "valid", _bundled(), expect="ok", fast=False)
    add("bundled model, Sram_Only", "valid", _bundled("--memory-mode", "Sram_Only"), expect="ok", fast=False)
    add("bundled model, cortex-m55", "valid", _bundled("--target", "cortex-m55"), expect="ok", fast=False)
    add("external data", "valid", _external(), expect="ok", fast=False)
    add("unnamed nodes", "valid", _mutated(_unnamed_nodes), expect="ok", fast=False)
    add("extension .bin", "valid", _bundled(name="model.bin"), expect="ok", fast=False)
    add("replaces its own earlier output", "valid", _bundled("--output-dir", "results", setup=_earlier_output),
        expect="ok", fast=False)
    add("int8 TFLite (Keras GRU step)", "valid", _fixture(TFLITE), expect="ok", fast=False)
    add("int8 TFLite named .onnx", "valid", _fixture(TFLITE, "model.onnx"), expect="ok", fast=False)
    add("float ONNX GRU with --calibration", "valid",
        _fixture(FLOAT_ONNX, extra=("--calibration", str(FLOAT_CALIB))), expect="ok", fast=False)
    add("--force over a foreign folder", "valid",
        _bundled("--output-dir", "results", "--force", setup=_foreign_folder), expect="ok", fast=False)
    return c


def categories(corpus: list[Case]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for case in corpus:
        counts[case.category] = counts.get(case.category, 0) + 1
    return counts


def run_all(alone: bool = False) -> int:
    """Run every case in a fresh temporary folder; print the outcome counts per category."""
    import sys
    import tempfile
    import time

    from tests.fuzz.runner import run_case
    corpus = cases()
    table: dict[str, dict[str, int]] = {}
    failures = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tvmse-corpus-") as root:
        for index, case in enumerate(corpus):
            folder = Path(root) / f"case{index}"
            folder.mkdir()
            outcome = run_case(case, folder, in_process=not alone)
            row = table.setdefault(case.category, {"cases": 0, "exit 0": 0, "exit 2": 0, "other exit": 0,
                                                   "rule broken": 0})
            row["cases"] += 1
            row[f"exit {outcome.code}" if outcome.code in (0, 2) else "other exit"] += 1
            if not outcome.passed:
                row["rule broken"] += 1
                failures.append(f"[{case.category}] {case.name}: {outcome.verdict}")
    columns = ["cases", "exit 0", "exit 2", "other exit", "rule broken"]
    print("| category | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for category, row in table.items():
        print(f"| {category} | " + " | ".join(str(row[c]) for c in columns) + " |")
    totals = {c: sum(row[c] for row in table.values()) for c in columns}
    print("| **all** | " + " | ".join(f"**{totals[c]}**" for c in columns) + " |")
    print(f"\n{len(corpus)} cases in {time.monotonic() - started:.0f} s ({'each alone' if alone else 'one process'}, "
          f"Python {sys.version.split()[0]})")
    for line in failures:
        print("FAILED", line)
    return 1 if failures else 0


if __name__ == "__main__":
    import sys
    if "--run" in sys.argv:
        sys.exit(run_all(alone="--alone" in sys.argv))
    corpus = cases()
    print(f"{len(corpus)} cases: " + ", ".join(f"{k} {v}" for k, v in categories(corpus).items()))
    for case in corpus:
        print(f"  [{case.category}] {case.name}: expect {case.expect}{'' if case.fast else ' (slow)'}")
