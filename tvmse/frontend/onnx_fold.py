"""Fold an ONNX graph's constant subgraphs (shape arithmetic, computed pads) into initializers.

Exporters compute some operands at run time from constants only: ``torch.onnx.export`` writes a
``Pad`` whose pads come from ``ConstantOfShape → Concat → Reshape → Slice → Transpose → Cast``. TVM's
importer and the integer form need them as constants. Every node whose inputs are all constants is
evaluated once (onnx's reference evaluator) and replaced by an initializer; Quantize/DequantizeLinear
stay, since they are how a QDQ model marks its int8 weights.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

KEEP = {"QuantizeLinear", "DequantizeLinear"}


def _evaluate(node: onnx.NodeProto, values: dict[str, np.ndarray], opset: list) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator
    inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(values[name].dtype), None)
              for name in node.input if name]
    outputs = [helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None) for name in node.output]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    model = helper.make_model(graph, opset_imports=opset)
    return ReferenceEvaluator(model).run(None, {name: values[name] for name in node.input if name})


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    foldable = [n for n in model.graph.node if n.op_type not in KEEP
                and (n.op_type == "Constant" or (n.input and all(not i or i in constants for i in n.input)))]
    if not foldable:
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    opset = list(model.opset_import)
    keep, added = [], []
    for node in model.graph.node:
        if node.op_type not in KEEP and (node.op_type == "Constant" or
                                         (node.input and all(not i or i in constants for i in node.input))):
            try:
                results = _evaluate(node, constants, opset)
            except Exception:   # noqa: BLE001 - a node the evaluator cannot run stays as it is
                keep.append(node)
                continue
            for name, value in zip(node.output, results):
                constants[name] = np.asarray(value)
                added.append(numpy_helper.from_array(np.asarray(value), name))
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    model.graph.initializer.extend(added)
    used = {name for n in keep for name in n.input} | {o.name for o in model.graph.output}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return model


def fold_pad_into_conv(model: onnx.ModelProto) -> onnx.ModelProto:
    """``Pad(x, zeros on spatial axes) → Conv`` becomes ``Conv(x, pads += …)`` (exact: a convolution
    pads with the real value 0, in int8 the zero point, as the Pad does)."""
    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    removed = set()
    for pad in model.graph.node:
        if pad.op_type != "Pad" or pad.output[0] in outputs or len(pad.input) < 2 or pad.input[1] not in constants:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in pad.attribute}
        value = constants.get(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else np.zeros(1)
        if attrs.get("mode", b"constant") not in (b"constant", "constant") or value is None or np.any(value != 0) \
                or (len(pad.input) > 3 and pad.input[3]):
            continue
        pads = constants[pad.input[1]].astype(int).reshape(-1)
        rank = len(pads) // 2
        begin, end = pads[:rank], pads[rank:]
        convs = users.get(pad.output[0], [])
        if rank < 3 or np.any(begin[:2]) or np.any(end[:2]) or not convs or \
                any(c.op_type != "Conv" or c.input[0] != pad.output[0] for c in convs):
            continue
        for conv in convs:
            conv_attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
            if conv_attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                break
        else:
            for conv in convs:
                current = {a.name: helper.get_attribute_value(a) for a in conv.attribute}.get("pads", [0] * (2 * (rank - 2)))
                spatial = rank - 2
                merged = [int(current[k]) + int(begin[2 + k]) for k in range(spatial)] + \
                         [int(current[spatial + k]) + int(end[2 + k]) for k in range(spatial)]
                kept = [a for a in conv.attribute if a.name != "pads"]
                del conv.attribute[:]
                conv.attribute.extend(kept + [helper.make_attribute("pads", merged)])
                conv.input[0] = pad.input[0]
            removed.add(id(pad))
    if removed:
        kept_nodes = [n for n in model.graph.node if id(n) not in removed]
        del model.graph.node[:]
        model.graph.node.extend(kept_nodes)
    return model


def gather_to_slice(model: onnx.ModelProto) -> onnx.ModelProto:
    """``Gather(x, constant indices forming one run)`` becomes ``Slice`` (then ``Squeeze`` for a scalar
    index): the same values, as int8 data movement (exporters write ``x[:, k]`` as a Gather)."""
    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    shapes = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
            dims = v.type.tensor_type.shape.dim
            if dims and all(d.HasField("dim_value") for d in dims):
                shapes[v.name] = [d.dim_value for d in dims]
    except Exception:   # noqa: BLE001 - without shapes no Gather is rewritten
        return model
    nodes, added = [], []
    for node in model.graph.node:
        index = constants.get(node.input[1]) if node.op_type == "Gather" and len(node.input) > 1 else None
        data_shape = shapes.get(node.input[0]) if node.op_type == "Gather" else None
        if index is None or data_shape is None:
            nodes.append(node)
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0) % len(data_shape)
        flat = np.asarray(index).reshape(-1) % data_shape[axis]
        if flat.size == 0 or np.any(np.diff(flat) != 1) or index.ndim > 1:
            nodes.append(node)
            continue
        prefix = node.name or node.output[0]
        bounds = {k: f"{prefix}/{k}" for k in ("starts", "ends", "axes")}
        for key, value in zip(bounds, (flat[0], flat[-1] + 1, axis)):
            added.append(numpy_helper.from_array(np.array([value], np.int64), bounds[key]))
        sliced = node.output[0] if index.ndim == 1 else f"{prefix}/run"
        nodes.append(helper.make_node("Slice", [node.input[0], *bounds.values()], [sliced], name=f"{prefix}/slice"))
        if index.ndim == 0:
            added.append(numpy_helper.from_array(np.array([axis], np.int64), f"{prefix}/squeeze_axes"))
            nodes.append(helper.make_node("Squeeze", [sliced, f"{prefix}/squeeze_axes"], [node.output[0]],
                                          name=f"{prefix}/squeeze"))
    if added:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        model.graph.initializer.extend(added)
    return model


def divisions_to_multiplications(model: onnx.ModelProto) -> onnx.ModelProto:
    """``Div(a, Sqrt(v))`` (layer norm) becomes ``Mul(a, Reciprocal(Sqrt(v)))`` and ``Div(a, constant c)``
    becomes ``Mul(a, 1/c)``: int8 has no DIV or SQRT that stays on the NPU, but ``Reciprocal(Sqrt(·))``
    quantized as one tensor is TFLite's int8 RSQRT."""
    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    users: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    nodes, changed = [], False
    for node in model.graph.node:
        divisor = constants.get(node.input[1]) if node.op_type == "Div" and len(node.input) == 2 else None
        if divisor is not None and divisor.dtype.kind == "f" and np.all(divisor != 0):
            inverse = f"{node.input[1]}/reciprocal"
            model.graph.initializer.append(numpy_helper.from_array((1.0 / divisor).astype(divisor.dtype), inverse))
            nodes.append(helper.make_node("Mul", [node.input[0], inverse], list(node.output), name=node.name))
            changed = True
            continue
        sqrt = producers.get(node.input[1]) if node.op_type == "Div" and len(node.input) == 2 else None
        if sqrt is None or sqrt.op_type != "Sqrt" or users.get(sqrt.output[0], 0) != 1:
            nodes.append(node)
            continue
        changed = True
        inverse = f"{sqrt.output[0]}/reciprocal"
        nodes.append(helper.make_node("Reciprocal", [sqrt.output[0]], [inverse], name=f"{node.name}/reciprocal"))
        nodes.append(helper.make_node("Mul", [node.input[0], inverse], list(node.output), name=node.name))
    if changed:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return model


def remove_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop ``Identity`` nodes (an exporter's, or what stripping a QDQ model leaves): their readers read the
    input instead; an Identity that names a graph output renames its input's producer instead, so every
    output keeps its name."""
    graph_inputs = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    rename: dict[str, str] = {}
    dropped = []
    for node in model.graph.node:
        if node.op_type != "Identity" or node.input[0] in graph_inputs or node.input[0] in outputs:
            continue
        if node.output[0] in outputs:
            rename[node.input[0]] = node.output[0]   # the producer writes the output's name
        else:
            rename[node.output[0]] = node.input[0]
        dropped.append(node)
    if not dropped:
        return model
    keep = [n for n in model.graph.node if all(n is not d for d in dropped)]

    def resolve(name: str) -> str:
        while name in rename:
            name = rename[name]
        return name

    for node in keep:
        for k, name in enumerate(node.input):
            node.input[k] = resolve(name)
        for k, name in enumerate(node.output):
            node.output[k] = resolve(name)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model
