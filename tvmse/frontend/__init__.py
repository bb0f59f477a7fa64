"""Frontend: a model file → tvmse's integer form (tvmse.ir).

``import_model(path)`` picks the importer by the file's kind:

- int8 TFLite (``tflite_import``): the flatbuffer read op by op into integer ops, bit-exact with the
  TFLite interpreter on the source file;
- int8 QDQ ONNX: checked (all problems reported at once, with node names), imported with TVM's ONNX
  frontend (constants bound) and the fake-quant graph canonicalized into the integer form.

Streaming state inputs and outputs are paired (``state``); the result carries the pairs, how each
was found and every requantization the importer inserted, for the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import onnx

from tvmse.frontend.onnx_checks import load_onnx
from tvmse.frontend.onnx_fold import fold_constants, gather_to_slice
from tvmse.frontend.qdq_to_integer import dequantized_weights, qdq_to_integer
from tvmse.frontend.state import Port, pair_states
from tvmse.ir import IntegerGraph


def import_onnx(model: onnx.ModelProto):
    """ONNX → Relax with weights bound as constants (TVM's importer).

    Returns the module and the ONNX tensor name of every bound Relax variable that computes one,
    so integer ops keep the source model's names (the importer emits values in the order they are
    used, not in the file's node order, so names cannot be matched by position).
    """
    from tvm.relax.frontend.onnx.onnx_frontend import ONNXGraphImporter

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    importer = ONNXGraphImporter({}, {}, keep_params_in_input=False, sanitize=True)
    mod = importer.from_onnx(model.graph, opset)
    by_expr = {}
    for name, expr in importer._nodes.items():   # the importer's ONNX name → Relax expression table
        by_expr.setdefault(expr, name)
    names = {}
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            name = by_expr.get(binding.value) or by_expr.get(binding.var)
            if name is not None:
                names[binding.var] = name
    return mod, names


@dataclass
class Imported:
    graph: IntegerGraph
    format: str                                        # "tflite" | "onnx"
    state_found: dict[str, str] = field(default_factory=dict)   # state input → how its pair was found
    inserted: list[str] = field(default_factory=list)  # requantizations the importer added
    quantized: object | None = None                    # tvmse.quantize.QuantizeResult of a float source


def model_format(path: Path) -> str:
    """'tflite' or 'onnx' (``validate.detect_format``); a file it refuses goes by its extension, so the
    importer of that format says what is wrong with it."""
    from tvmse.errors import ModelFileError
    from tvmse.frontend.validate import detect_format
    try:
        return detect_format(path)
    except ModelFileError:
        return "tflite" if path.suffix.lower() == ".tflite" else "onnx"


def import_model(path: str | Path, state: dict[str, str] | None = None, calibration: str | Path | None = None,
                 percentile: float | None = None, features: str | None = None) -> Imported:
    """The integer form of a model file; with ``calibration``, a float (or QDQ) ONNX model is first
    quantized by ``tvmse.quantize`` (see there)."""
    path = Path(path)
    if calibration is not None:
        return _import_quantized(path, state, calibration, percentile, features)
    if path.is_file() and model_format(path) == "tflite":
        from tvmse.frontend.tflite_import import load_tflite
        graph, states, inserted = load_tflite(path, state)
        return Imported(graph, "tflite", dict(states.how), inserted)
    model = gather_to_slice(fold_constants(load_onnx(path)))
    mod, names = import_onnx(model)
    graph = qdq_to_integer(mod, names, dequantized_weights(model))
    tensors = graph.tensors()
    found = pair_states([Port(t.name, t.shape, quant=t.quant()) for t in graph.inputs],
                        [Port(n, tensors[n].shape, quant=tensors[n].quant()) for n in graph.outputs], state)
    graph.state_pairs = dict(found.pairs)
    return Imported(graph, "onnx", dict(found.how))


def _import_quantized(path: Path, state, calibration, percentile, features) -> Imported:
    import tempfile

    from tvmse.errors import ConfigError, TvmseError
    from tvmse.frontend.onnx_checks import read_onnx
    from tvmse.quantize import quantize_model
    if path.is_file() and model_format(path) == "tflite":
        raise ConfigError(f"{path} is a TFLite file: --calibration quantizes float ONNX models; a .tflite must "
                          "already be full int8")
    result = quantize_model(read_onnx(path), calibration, state, percentile, features)
    with tempfile.TemporaryDirectory(prefix="tvmse-quantized-") as work:
        quantized = Path(work) / path.name
        onnx.save(result.model, str(quantized))
        try:
            imported = import_model(quantized, state or result.state_pairs)
        except TvmseError as e:   # name the user's file, not the temporary quantized one
            raise type(e)(str(e).replace(str(quantized), f"{path} (as quantized by tvmse.quantize)")) from None
    imported.quantized = result
    return imported


def load(path: str | Path, state: dict[str, str] | None = None) -> IntegerGraph:
    """The integer graph of a model file (see ``import_model`` for the notes that come with it)."""
    return import_model(path, state).graph
