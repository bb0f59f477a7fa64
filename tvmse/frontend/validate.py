"""Up-front checks on a model file, before any folder is made and before TVM imports the model.

Owns what a model file must be for any importer to be worth running:

- its kind, by content and name: ``detect_format(path)`` → ``"onnx"`` or ``"tflite"`` (a TFLite
  flatbuffer has ``TFL3`` at byte 4; ONNX is a protobuf with no magic);
- ONNX: IR and ai.onnx opset versions in the range the importers target, external data inside the
  model's folder, present and of the declared length, onnx.checker-level structure (every input made
  by something, topological order, no cycles, unique and produced outputs), initializers whose data
  match their dims, static positive bounded input shapes, and QuantizeLinear/DequantizeLinear
  parameters (constant, finite, positive, normal float32 scales; int8 zero points, int32 for int32
  biases; shapes that match);
- TFLite: a readable flatbuffer with a subgraph (the importer checks the rest).

``validate_model_file`` reports every problem found in one error, one line each naming the tensor or
node and the fix. Problems are found root cause first: structure before versions of ops, and a tensor
nothing makes is reported once, not again at each node that reads it. Which ops are supported is not
decided here (``onnx_checks.unsupported_op_problems`` does that).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, numpy_helper

from tvmse.errors import ModelFileError
from tvmse.frontend.onnx_checks import unsupported_op_problems

#: The ai.onnx opsets the importers target.
SUPPORTED_OPSETS = (11, 21)
#: IR versions: from the one opset 11 came with to the newest the installed onnx package reads.
SUPPORTED_IR_VERSIONS = (6, onnx.IR_VERSION)
#: Bounds on a static size: larger is not a microcontroller model (and overflows 32-bit indexing).
MAX_DIM = 1 << 20
MAX_INPUT_ELEMENTS = 1 << 24
MAX_PROBLEMS_SHOWN = 40

TFLITE_IDENTIFIER = b"TFL3"
_FOREIGN_MAGIC = {
    b"PK\x03\x04": "a zip archive (a PyTorch checkpoint?); export it first (python -m tvmse.train --export)",
    b"\x89HDF": "an HDF5 file (a Keras model?); convert it to int8 TFLite or QDQ ONNX first",
    b"\x80\x02": "a Python pickle; export the model to ONNX first",
}
_QDQ = ("QuantizeLinear", "DequantizeLinear")
_WEIGHTED = ("MatMul", "Gemm", "Conv")   # ops whose second operand is a weight tensor


class ModelProblems(ModelFileError):
    """A model file with one or more problems; the message lists each on its own line."""

    def __init__(self, path: str | os.PathLike, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        lines = "\n".join(f"  - {p}" for p in shown) + (f"\n  … and {more} more" if more > 0 else "")
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{path}: {len(problems)} {noun} in the model:\n{lines}")


# ---- file kind -------------------------------------------------------------------------------------
def detect_format(path: str | os.PathLike) -> str:
    """``"onnx"`` or ``"tflite"`` by the file's content (and name when the content says nothing);
    ModelFileError for a missing, empty, unreadable or foreign file."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFileError(f"model path is not a file: {path}; give the .onnx or .tflite file itself")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ModelFileError(f"cannot read model file {path}: {e.strerror or e}") from None
    if not head:
        raise ModelFileError(f"model file {path} is empty; re-export the model")
    if head[4:8] == TFLITE_IDENTIFIER:
        return "tflite"
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        raise ModelFileError(f"{path} is not a TFLite flatbuffer (no '{TFLITE_IDENTIFIER.decode()}' identifier "
                             "at byte 4); re-convert the model")
    for magic, what in _FOREIGN_MAGIC.items():
        if head.startswith(magic):
            raise ModelFileError(f"{path} is {what}")
    return "onnx"


def validate_model_file(path: str | os.PathLike) -> str:
    """Check ``path`` completely (see the module docstring); returns its kind. Raises ModelFileError,
    for several problems ``ModelProblems`` listing them all."""
    kind = detect_format(path)
    if kind == "tflite":
        _check_tflite(Path(path))
    else:
        problems = onnx_file_problems(Path(path))
        if problems:
            raise ModelProblems(path, problems)
    return kind


def _check_tflite(path: Path) -> None:
    """The flatbuffer's tables are readable and its first subgraph has inputs, outputs and operators whose
    tensor, opcode and buffer indices point inside the file's tables (what the importer then reads)."""
    import tflite
    data = path.read_bytes()
    try:
        problems = _tflite_problems(tflite.Model.GetRootAsModel(data, 0))
    except Exception:  # noqa: BLE001 - a damaged flatbuffer raises whatever its offsets lead to
        problems = ["its tables cannot be read (the file is damaged or truncated); re-convert the model"]
    if problems:
        raise ModelProblems(path, problems)


def _tflite_problems(model) -> list[str]:
    if model.SubgraphsLength() < 1:
        return ["it has no subgraph; re-convert the model"]
    graph = model.Subgraphs(0)
    tensors, buffers, opcodes = graph.TensorsLength(), model.BuffersLength(), model.OperatorCodesLength()
    problems = []
    for what, count in (("inputs", graph.InputsLength()), ("outputs", graph.OutputsLength()),
                        ("operators", graph.OperatorsLength()), ("tensors", tensors)):
        if count < 1:
            problems.append(f"its subgraph has no {what}; convert the whole model step (inputs to outputs)")
    if problems:
        return problems
    bad_io = [int(graph.Inputs(i)) for i in range(graph.InputsLength()) if not 0 <= graph.Inputs(i) < tensors]
    bad_io += [int(graph.Outputs(i)) for i in range(graph.OutputsLength()) if not 0 <= graph.Outputs(i) < tensors]
    if bad_io:
        problems.append(f"subgraph inputs/outputs name tensors {bad_io[:5]} of {tensors}; the file is damaged")
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if not 0 <= op.OpcodeIndex() < opcodes:
            problems.append(f"operator #{i} has opcode index {op.OpcodeIndex()} of {opcodes}; the file is damaged")
            break
        refs = [int(op.Inputs(j)) for j in range(op.InputsLength())] + [int(op.Outputs(j))
                                                                         for j in range(op.OutputsLength())]
        if any(not -1 <= r < tensors for r in refs):
            problems.append(f"operator #{i} names tensors outside the {tensors} of its subgraph; the file is damaged")
            break
    for i in range(tensors):
        if not 0 <= graph.Tensors(i).Buffer() < max(buffers, 1):
            problems.append(f"tensor #{i} names buffer {graph.Tensors(i).Buffer()} of {buffers}; the file is damaged")
            break
    return problems


# ---- ONNX ------------------------------------------------------------------------------------------
def onnx_file_problems(path: Path) -> list[str]:
    """Every problem of the ONNX file at ``path``, root causes first (empty: fine)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError, TypeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{path} is neither an ONNX nor a TFLite model (cannot parse it as ONNX: {reason}); "
                             "give a model saved by onnx.save or a .tflite flatbuffer") from None
    problems = external_data_problems(model, path.parent)
    if problems:
        return problems
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except OSError as e:
        return [f"cannot read external data: {e.strerror or e}"]
    return onnx_model_problems(model)


def onnx_model_problems(model: onnx.ModelProto) -> list[str]:
    """Versions, structure, initializers, input shapes and quantization parameters of ``model``."""
    problems = version_problems(model)
    structure = structure_problems(model.graph)
    problems += structure
    problems += initializer_problems(model.graph)
    problems += input_shape_problems(model.graph)
    problems += quantization_problems(model.graph)
    if not problems and not unsupported_op_problems(model):  # an unsupported op is the root cause there
        problems += onnx_checker_problems(model)
    return problems


def version_problems(model: onnx.ModelProto) -> list[str]:
    problems = []
    lo, hi = SUPPORTED_IR_VERSIONS
    if not lo <= model.ir_version <= hi:
        problems.append(f"IR version {model.ir_version} is outside the supported range {lo}–{hi}; "
                        "re-export with a current exporter (e.g. torch.onnx.export, opset 13–21)")
    opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    lo, hi = SUPPORTED_OPSETS
    if not opsets:
        problems.append(f"the model imports no ai.onnx opset; re-export it with an opset in {lo}–{hi}")
    elif not lo <= opsets[0] <= hi:
        problems.append(f"ai.onnx opset {opsets[0]} is outside the supported range {lo}–{hi}; re-export with an "
                        f"opset in that range (or convert it: onnx.version_converter.convert_version(model, {hi}))")
    return problems


def _tensors_with_data(graph: onnx.GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t


def _element_count(dims) -> int:
    count = 1
    for d in dims:
        count *= int(d)
    return count


def _itemsize(data_type: int) -> int | None:
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return None


def external_data_problems(model: onnx.ModelProto, folder: Path) -> list[str]:
    """External data of every tensor: a location inside ``folder``, a file that exists, the declared
    length. Tensors sharing one bad file are one problem."""
    found: dict[str, list[str]] = {}
    root = folder.resolve()
    for tensor in _tensors_with_data(model.graph):
        if tensor.data_location == TensorProto.EXTERNAL:
            text = _external_problem(tensor, folder, root)
            if text:
                found.setdefault(text, []).append(tensor.name)
    return [f"tensor '{names[0]}'{f' and {len(names) - 1} more' if len(names) > 1 else ''}: {text}"
            for text, names in found.items()]


def _external_problem(tensor: onnx.TensorProto, folder: Path, root: Path) -> str | None:
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    if not location:
        return "external data without a location; re-save the model with onnx.save"
    file = folder / location
    if os.path.isabs(location) or not file.resolve().is_relative_to(root):
        return (f"external data '{location}' is outside the model's folder {folder}; keep external data "
                "files beside the model (onnx.save(..., location='name.bin'))")
    if not file.is_file():
        return f"external data file '{location}' is missing from {folder}; copy it beside the model"
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        return "external data offset/length are not integers; re-save the model"
    itemsize = _itemsize(tensor.data_type)
    expected = _element_count(tensor.dims) * itemsize if itemsize else None
    if length is not None and expected is not None and length != expected:
        return (f"external data length {length} B does not match its dims {list(tensor.dims)} ({expected} B); "
                "re-save the model")
    size = file.stat().st_size
    if offset < 0 or offset + (length if length is not None else expected or 0) > size:
        return (f"external data file '{location}' ({size:,} B) ends before this tensor's data; the file is "
                "truncated: copy it again")
    return None


def structure_problems(graph: onnx.GraphProto) -> list[str]:
    """Every tensor made once and before it is read; outputs that exist. One line per root cause."""
    problems = []
    defined_at = {}  # tensor → index of the node that makes it (-1: graph input or initializer)
    for value in list(graph.input) + list(graph.initializer):
        defined_at.setdefault(value.name, -1)
    makers: dict[str, list[str]] = {}
    for index, node in enumerate(graph.node):
        for out in node.output:
            if out:
                makers.setdefault(out, []).append(_node_name(node, index))
                defined_at.setdefault(out, index)
    for tensor, nodes in makers.items():
        if len(nodes) > 1:
            problems.append(f"tensor '{tensor}' is written by {len(nodes)} nodes ({', '.join(nodes)}); "
                            "give each node output a unique name")
        elif defined_at.get(tensor, 0) == -1 and tensor in makers:
            problems.append(f"tensor '{tensor}' is both a graph input/initializer and the output of node "
                            f"{nodes[0]}; rename one of them")
    missing: dict[str, list[str]] = {}
    late: list[tuple[str, str, str]] = []
    for index, node in enumerate(graph.node):
        for name in node.input:
            if not name:
                continue  # an omitted optional input
            if name not in defined_at:
                missing.setdefault(name, []).append(_node_name(node, index))
            elif defined_at[name] >= index:
                late.append((_node_name(node, index), name, makers[name][0]))
    for name, readers in missing.items():
        problems.append(f"tensor '{name}' (read by node {', '.join(readers[:3])}{'…' if len(readers) > 3 else ''}) "
                        "is made by no node, input or initializer; add the missing initializer or node")
    if late:
        cycle = _find_cycle(graph)
        if cycle:
            problems.append(f"the graph has a cycle through nodes {' → '.join(cycle)}; a model step must be "
                            "acyclic (carry recurrent state as explicit inputs and outputs)")
        else:
            reader, name, maker = late[0]
            problems.append(f"nodes are not in topological order: node {reader} reads '{name}' before node {maker} "
                            f"makes it ({len(late)} such reads); save the nodes sorted (e.g. with onnx's "
                            "onnx.helper / onnxsim), producers first")
    seen_outputs = set()
    for out in graph.output:
        if out.name in seen_outputs:
            problems.append(f"graph output '{out.name}' is listed twice; list each output once")
        seen_outputs.add(out.name)
        if out.name not in defined_at and out.name not in missing:
            problems.append(f"graph output '{out.name}' is made by no node; connect it or remove it from the outputs")
    if not graph.output:
        problems.append("the graph has no outputs; list the model's outputs")
    return problems


def _node_name(node: onnx.NodeProto, index: int) -> str:
    return f"'{node.name}'" if node.name else f"#{index} ({node.op_type})"


def _find_cycle(graph: onnx.GraphProto) -> list[str] | None:
    """Node names along one cycle of the graph, or None."""
    maker = {}
    for index, node in enumerate(graph.node):
        for out in node.output:
            maker.setdefault(out, index)
    succ = {i: [maker[x] for x in node.input if x in maker] for i, node in enumerate(graph.node)}
    state = {}
    for start in range(len(graph.node)):
        if state.get(start):
            continue
        stack, path = [(start, iter(succ[start]))], [start]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                return [_node_name(graph.node[i], i) for i in reversed(cycle)]
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
                path.append(nxt)
    return None


def initializer_problems(graph: onnx.GraphProto) -> list[str]:
    problems = []
    for tensor in graph.initializer:
        dims = list(tensor.dims)
        if any(d < 0 for d in dims) or any(d > MAX_DIM for d in dims):
            problems.append(f"initializer '{tensor.name}' has dims {dims}; each must be 0–{MAX_DIM:,}")
            continue
        try:
            array = numpy_helper.to_array(tensor)
        except Exception as e:  # noqa: BLE001 - onnx raises ValueError/TypeError/KeyError for bad data
            problems.append(f"initializer '{tensor.name}' (dims {dims}, "
                            f"{TensorProto.DataType.Name(tensor.data_type) if tensor.data_type in TensorProto.DataType.values() else tensor.data_type}) "
                            f"does not hold data of that shape ({_short(e)}); re-export the model")
            continue
        if array.size != _element_count(dims):
            problems.append(f"initializer '{tensor.name}' declares dims {dims} but holds {array.size} values; "
                            "re-export the model")
    return problems


def input_shape_problems(graph: onnx.GraphProto) -> list[str]:
    """Graph inputs (not initializers) need a known element type and a static, positive, bounded shape."""
    initializers = {i.name for i in graph.initializer}
    problems = []
    for value in graph.input:
        if value.name in initializers:
            continue
        where = f"input '{value.name}'"
        if not value.type.HasField("tensor_type"):
            problems.append(f"{where} is not a tensor; a model step takes tensors")
            continue
        tt = value.type.tensor_type
        if tt.elem_type == TensorProto.UNDEFINED:
            problems.append(f"{where} has no element type; declare it (int8 for a quantized model)")
        if not tt.HasField("shape"):
            problems.append(f"{where} has no shape; export with static shapes (batch 1, one frame per step)")
            continue
        bad = []
        for axis, dim in enumerate(tt.shape.dim):
            if not dim.HasField("dim_value"):
                bad.append(f"axis {axis} is dynamic ('{dim.dim_param or '?'}')")
            elif dim.dim_value <= 0:
                bad.append(f"axis {axis} has size {dim.dim_value} (sizes are ≥ 1)")
            elif dim.dim_value > MAX_DIM:
                bad.append(f"axis {axis} has size {dim.dim_value:,} (at most {MAX_DIM:,})")
        if bad:
            problems.append(f"{where}: {'; '.join(bad)}; export with static positive shapes "
                            "(batch 1, one frame per step)")
        elif _element_count(d.dim_value for d in tt.shape.dim) > MAX_INPUT_ELEMENTS:
            problems.append(f"{where} has {_element_count(d.dim_value for d in tt.shape.dim):,} elements "
                            f"(at most {MAX_INPUT_ELEMENTS:,}); a model step takes one frame")
    return problems


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray | None]:
    """Every constant tensor by name (None: declared but unreadable, reported elsewhere)."""
    consts = {}
    for tensor in graph.initializer:
        try:
            consts[tensor.name] = numpy_helper.to_array(tensor)
        except Exception:  # noqa: BLE001 - reported by initializer_problems
            consts[tensor.name] = None
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            value = next((a.t for a in node.attribute if a.name == "value" and a.type == onnx.AttributeProto.TENSOR),
                         None)
            try:
                consts[node.output[0]] = numpy_helper.to_array(value) if value is not None else None
            except Exception:  # noqa: BLE001
                consts[node.output[0]] = None
    return consts


def quantization_problems(graph: onnx.GraphProto) -> list[str]:
    """Scales and zero points of every QuantizeLinear / DequantizeLinear node. A bad tensor shared by
    many nodes is one problem (naming the first node and how many more), not one per node."""
    consts = _constants(graph)
    defined = set(consts) | {v.name for v in graph.input} | {o for n in graph.node for o in n.output}
    found: dict[str, list[str]] = {}  # problem text → nodes that show it
    weight_operands = {n.input[1] for n in graph.node if n.op_type in _WEIGHTED and len(n.input) > 1}

    def problem(node_label: str, text: str) -> None:
        found.setdefault(text, []).append(node_label)

    for index, node in enumerate(graph.node):
        if node.op_type not in _QDQ or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
            continue
        label = _node_name(node, index)
        x_name, scale_name = node.input[0], node.input[1]
        zp_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if scale_name not in defined or (zp_name and zp_name not in defined):
            continue  # a tensor nothing makes: structure_problems reported it
        if scale_name not in consts:
            problem(label, f"scale '{scale_name}' is computed, not a constant; fold it into an initializer")
            continue
        scale = consts[scale_name]
        if scale is None:
            continue  # unreadable: initializer_problems reported it
        x = consts.get(x_name)
        for text in _scale_problems(scale_name, scale, node, x_name, x):
            problem(label, text)
        if zp_name is None:
            if node.op_type == "QuantizeLinear":
                problem(label, "QuantizeLinear without a zero point quantizes to uint8; tvmse compiles int8: "
                               "give it an int8 zero point")
            continue
        if zp_name not in consts:
            problem(label, f"zero point '{zp_name}' is computed, not a constant; fold it into an initializer")
            continue
        if consts[zp_name] is None:
            continue
        is_weight = any(out in weight_operands for out in node.output)
        for text in _zero_point_problems(node.op_type, x_name, x, zp_name, consts[zp_name], scale, is_weight):
            problem(label, text)
    lines = []
    for text, nodes in found.items():
        more = f" and {len(nodes) - 1} more" if len(nodes) > 1 else ""
        lines.append(f"node {nodes[0]}{more}: {text}")
    return lines


def _scale_problems(scale_name: str, scale: np.ndarray, node: onnx.NodeProto, x_name: str,
                    x: np.ndarray | None) -> list[str]:
    if scale.dtype != np.float32:
        return [f"scale '{scale_name}' is {scale.dtype}, not float32; store scales as float32"]
    tiny = np.finfo(np.float32).tiny
    problems = []
    bad = _bad_scales(scale, tiny)
    if bad:
        problems.append(f"scale '{scale_name}' has {bad}; scales must be finite, positive and at least "
                        f"{tiny:.3g} (re-calibrate or re-export the model)")
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if scale.size > 1 and x is not None:
        if scale.ndim != 1 or not -x.ndim <= axis < x.ndim or scale.shape[0] != x.shape[axis]:
            problems.append(f"{scale.size} scales in '{scale_name}' do not match axis {axis} of '{x_name}' "
                            f"(shape {list(x.shape)}); give one scale per channel of that axis")
    return problems


def _bad_scales(scale: np.ndarray, tiny: float) -> str:
    flat = scale.reshape(-1).astype(np.float64)
    kinds = [(~np.isfinite(flat), "NaN or infinite"), (np.isfinite(flat) & (flat <= 0), "zero or negative"),
             (np.isfinite(flat) & (flat > 0) & (flat < tiny), "denormal (too small for float32 arithmetic)")]
    parts = []
    for mask, what in kinds:
        if mask.any():
            first = int(np.argmax(mask))
            parts.append(f"{int(mask.sum())} {what} value(s) (first: {flat[first]:g} at index {first})")
    return "; ".join(parts)


def _zero_point_problems(op: str, x_name: str, x: np.ndarray | None, zp_name: str, zp: np.ndarray,
                         scale: np.ndarray, is_weight: bool) -> list[str]:
    problems = []
    if zp.shape != scale.shape and not (zp.size == 1 and scale.size == 1):
        problems.append(f"zero point '{zp_name}' has shape {list(zp.shape)}, its scale {list(scale.shape)}; "
                        "give one zero point per scale")
    if op == "DequantizeLinear" and x is not None:  # a constant: weights (int8) or a bias (int32)
        if x.dtype not in (np.int8, np.int32):
            return problems + [f"constant '{x_name}' is {x.dtype}; tvmse takes int8 weights and int32 biases: "
                               "re-quantize it to int8"]
        if zp.dtype != x.dtype:
            return problems + [f"zero point '{zp_name}' is {zp.dtype} but '{x_name}' is {x.dtype}; "
                               "they must have the same type"]
        if is_weight and np.any(zp != 0):
            problems.append(f"zero point '{zp_name}' of the weights '{x_name}' is not 0; tvmse takes symmetric "
                            "int8 weights (zero point 0): re-quantize them symmetrically")
        return problems  # other constants (biases, operands) may have any zero point: the importer folds it
    if zp.dtype != np.int8:
        problems.append(f"zero point '{zp_name}' is {zp.dtype}; tvmse compiles int8 activations: give an int8 "
                        "zero point (−128…127)")
    return problems


def onnx_checker_problems(model: onnx.ModelProto) -> list[str]:
    """onnx's own checker and strict shape inference, as a backstop for what the checks above do not
    cover (attribute types, operand shapes such as a MatMul whose weight does not fit its input).
    Skipped when an op is unknown to onnx: unsupported ops are reported by the op check, better."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or not onnx.defs.has(node.op_type):
            return []
        if opset is not None and onnx.defs.get_schema(node.op_type, opset).deprecated:
            return []
    try:
        onnx.checker.check_model(model)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        return [_checker_line(str(e))]
    except Exception as e:  # noqa: BLE001 - onnx raises bare RuntimeError/SchemaError too
        return [_checker_line(str(e))]
    return []


def _checker_line(message: str) -> str:
    text = " ".join(message.split())
    for noise in ("[ShapeInferenceError]", "[TypeInferenceError]", "Inference error(s):"):
        text = text.replace(noise, "")
    text = text.strip(" :")
    if len(text) > 300:
        text = text[:299] + "…"
    return f"onnx rejects the model: {text}; fix that node (or re-export the model)"


def _short(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 120 else text[:119] + "…"
