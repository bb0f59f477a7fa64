"""A PyTorch module of one streaming step → ONNX, through ``torch.onnx.export``.

``compile_model(module, example_inputs={"frame": x, "h": h0}, output_names=["mask", "h_out"], ...)``
exports the module with these names (static shapes, opset 17, TorchScript exporter) into a temporary
file and compiles that; a float module needs ``calibration`` like any float ONNX model. Naming the
state outputs ``<input>_out`` lets the state pairs be found by name.
"""

from __future__ import annotations

from pathlib import Path

from tvmse.errors import ConfigError

OPSET = 17


def export_module(module, example_inputs: dict, output_names: list[str] | None, path: Path) -> Path:
    import torch
    if not isinstance(example_inputs, dict) or not example_inputs:
        raise ConfigError("compiling a torch module needs example_inputs={name: tensor, ...} (one streaming step, "
                          "batch 1); the names become the model's input names")
    module = module.eval()
    args = tuple(example_inputs.values())
    with torch.no_grad():
        outputs = module(*args)
    count = len(outputs) if isinstance(outputs, (tuple, list)) else 1
    names = list(output_names or [f"output_{k}" for k in range(count)])
    if len(names) != count:
        raise ConfigError(f"output_names has {len(names)} names but the module returns {count} tensors")
    torch.onnx.export(module, args, str(path), input_names=list(example_inputs), output_names=names,
                      opset_version=OPSET, dynamo=False)
    return path
