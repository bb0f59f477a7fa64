"""``python -m tvmse.compile model.onnx --target ethos-u55``: a deployable NPU build and its report.

Pipeline: model file → tvmse.frontend (TVM Relax, integer form) → host reference (TVM, LLVM) →
targets/ethosu (int8 TFLite, checked bit-exact in the TFLite interpreter) → Vela → output folder:

    <name>_vela.tflite   Vela-optimised model (ethos-u custom op: command stream + encoded weights)
    <name>_vela.h        the same bytes as a 16-byte-aligned C array, for firmware
    <name>_int8.tflite   the int8 model handed to Vela (runs in any TFLite interpreter)
    src/                 C glue without TFLite Micro: tvmse_step() runs the NPU subgraphs through one
                         call, tvmse_npu_invoke() (src/tvmse_npu.h, on Arm's ethos-u core driver), and
                         any op Vela left on the CPU as Cortex-M55 kernels (tvmse.targets.cortex_m.npu_glue)
    report.json          every figure, machine-readable;  report.md  the same for people

The folder is written under a temporary name and renamed into place when complete, so a failed
run never leaves a half-written output directory (an existing one is replaced only on success).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tvmse.errors import ConfigError, OutputError, TvmseError
from tvmse.ir import IntegerGraph

logger = logging.getLogger("tvmse")

TARGETS = {"ethos-u55": "ethos-u55-128", "ethos-u65": "ethos-u65-256", "ethos-u85": "ethos-u85-256"}
CORTEX_M_TARGET = "cortex-m55"  # the whole network on the CPU: tvmse.targets.cortex_m


@dataclass
class CompileResult:
    output_dir: Path
    report: dict
    graph: IntegerGraph

    @property
    def state_slots(self) -> dict[str, list[int]]:
        """State input → the source model's slot (channel) held by each compiled slot, after passes
        that remove or move state channels; a state not listed is unchanged."""
        return dict(self.graph.state_slots)

    @property
    def summary(self) -> str:
        from tvmse.report import summary_line
        return summary_line(self.report)


def resolve_vela_config(target: str, accelerator_config: str | None, system_config: str | None,
                        memory_mode: str | None):
    from tvmse.targets.ethosu.vela_driver import VelaConfig, family
    if target not in TARGETS:
        raise ConfigError(f"unknown target '{target}'; valid: {', '.join(TARGETS)}")
    accelerator = accelerator_config or TARGETS[target]
    config = VelaConfig(accelerator, system_config, memory_mode).resolved()
    if family(config.accelerator) != target:
        raise ConfigError(f"accelerator config '{accelerator}' does not belong to target '{target}'; "
                          f"use --target {family(config.accelerator)} or an {target}-* accelerator config")
    return config


def load_model(path: Path, state: dict[str, str] | None = None, calibration: str | os.PathLike | None = None,
               percentile: float | None = None):
    """The imported model (``tvmse.frontend.Imported``): integer graph, state pairs, importer notes."""
    from tvmse import frontend
    return frontend.import_model(path, state, calibration, percentile)


def import_section(imported) -> dict:
    """What the report says of the import: the source format, the state pairs and how each was found,
    the requantizations the importer inserted."""
    pairs = imported.graph.state_pairs
    section = {"format": imported.format,
               "state_pairs": [{"input": i, "output": o, "found": imported.state_found.get(i, "by name")}
                               for i, o in pairs.items()],
               "requantizations_inserted": list(imported.inserted)}
    if imported.quantized is not None:
        q = imported.quantized
        section["quantization"] = {
            "method": "post-training, tvmse.quantize: int8 weights per channel, activations per tensor",
            "calibration_frames": q.frames,
            "int8_vs_float": q.errors,
            "note": "over the calibration rollout, state carried; the QDQ model run by onnxruntime"}
    return section


def parse_state_pairs(values: list[str]) -> dict[str, str]:
    """``--state IN=OUT`` options as a dict; ConfigError for a malformed one."""
    pairs = {}
    for value in values:
        name_in, sep, name_out = value.partition("=")
        if not sep or not name_in or not name_out:
            raise ConfigError(f"--state {value!r}: expected INPUT=OUTPUT (a state input and the output that "
                              "feeds it at the next step)")
        pairs[name_in] = name_out
    return pairs


def _staging_dir(output_dir: Path) -> Path:
    """A fresh temporary folder beside ``output_dir``; OutputError if the location is not writable."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"output path {output_dir} exists and is not a directory; choose another --output-dir")
    try:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    except OSError as e:
        raise OutputError(f"cannot write output directory {output_dir}: {e.strerror or e}; "
                          "choose a writable --output-dir") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    return staging


def _publish(staging: Path, output_dir: Path) -> None:
    """Move the finished staging folder into place, replacing an older output only now."""
    old = None
    if output_dir.exists():
        old = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
        os.rename(output_dir, old)
    os.rename(staging, output_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _staged_output(output_dir: Path) -> Iterator[Path]:
    """A staging folder to fill instead of ``output_dir``: published when the block completes, deleted
    if it raises, so no target ever leaves a half-written output directory."""
    staging = _staging_dir(output_dir)
    try:
        yield staging
        _publish(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_report(folder: Path, report: dict, markdown: str) -> None:
    """``report.json`` and ``report.md``, named and formatted the same for every target."""
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (folder / "report.md").write_text(markdown)


def compile_model(model_path: str | os.PathLike, target: str = "ethos-u55", accelerator_config: str | None = None,
                  system_config: str | None = None, memory_mode: str | None = None,
                  output_dir: str | os.PathLike | None = None, verify_trials: int = 8,
                  disabled_passes: tuple[str, ...] = (), state: dict[str, str] | None = None,
                  calibration: str | os.PathLike | None = None, percentile: float | None = None,
                  example_inputs: dict | None = None, output_names: list[str] | None = None) -> CompileResult:
    """Compile a model (a file, or a torch module with ``example_inputs``) for an Ethos-U NPU; see the module
    docstring for what is written."""
    if not isinstance(model_path, (str, os.PathLike)):   # a torch.nn.Module: export it, compile the file
        from tvmse.frontend.torch_export import export_module
        with tempfile.TemporaryDirectory(prefix="tvmse-export-") as work:
            exported = export_module(model_path, example_inputs, output_names,
                                     Path(work) / f"{type(model_path).__name__.lower()}.onnx")
            return compile_model(exported, target, accelerator_config, system_config, memory_mode,
                                 output_dir or Path("out") / f"{exported.stem}-{target}", verify_trials,
                                 disabled_passes, state, calibration, percentile)
    from tvmse.passes.pipeline import check_disabled, run_pipeline
    from tvmse.report import build_report, render_markdown
    from tvmse.targets import ethosu
    from tvmse.targets.ethosu.c_header import c_header
    from tvmse.targets.host import HostReference

    model_path = Path(model_path)
    config = resolve_vela_config(target, accelerator_config, system_config, memory_mode)
    check_disabled(tuple(disabled_passes))
    name = model_path.stem
    output_dir = Path(output_dir) if output_dir else Path("out") / f"{name}-{config.accelerator}"
    with _staged_output(output_dir) as staging:
        logger.info("importing %s into the integer form", model_path)
        imported = load_model(model_path, state, calibration, percentile)
        graph, rewrites = run_pipeline(imported.graph, tuple(disabled_passes), config)
        if imported.quantized is not None:
            for line in imported.quantized.error_lines():
                logger.info("int8 vs float, %s", line)
        logger.info("building the host reference (TVM, LLVM): %d integer ops", len(graph.ops))
        reference = HostReference(graph)
        build = ethosu.build(graph, config, reference, verify_trials=verify_trials, name=name)
        artifacts = {
            f"{name}_vela.tflite": "Vela-optimised model for the Ethos-U driver",
            f"{name}_vela.h": "the optimised model as a 16-byte-aligned C array",
            f"{name}_int8.tflite": "int8 TFLite model before Vela (runs in a TFLite interpreter)",
            "report.json": "all figures, machine-readable",
            "report.md": "this report",
        }
        (staging / f"{name}_vela.tflite").write_bytes(build.vela.optimized_model)
        (staging / f"{name}_vela.h").write_text(c_header(build.vela.optimized_model, f"{name}_vela",
                                                         f"{name}: Vela-optimised for {config.describe()}"))
        (staging / f"{name}_int8.tflite").write_bytes(build.tflite)
        if _write_npu_glue(graph, build.vela.optimized_model, staging / "src"):
            artifacts["src/"] = "C glue: NPU calls via tvmse_npu_invoke() (tvmse_npu.h), CPU ops as M55 kernels"
        report = build_report(model_path, graph, build, target, artifacts, rewrites)
        report["import"] = import_section(imported)
        _write_report(staging, report, render_markdown(report))
    return CompileResult(output_dir, report, graph)


def _write_npu_glue(graph: IntegerGraph, optimized_model: bytes, directory: Path) -> bool:
    """Write the firmware glue around Vela's output; False (with a warning saying why) when it cannot.

    The glue is an addition: the optimised .tflite still runs under TFLite Micro, so a network the
    glue does not cover (no frame → mask streaming interface, an unsupported memory layout) keeps
    its other outputs.
    """
    from tvmse.targets.cortex_m import npu_glue
    from tvmse.targets.cortex_m.errors import LoweringError
    from tvmse.targets.ethosu.vela_model import VelaModelError

    try:
        generated = npu_glue.generate(graph, optimized_model)
    except (LoweringError, VelaModelError) as exc:
        logger.warning("no C glue written (src/): %s", exc)
        return False
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, text in generated.files.items():
        (directory / file_name).write_text(text)
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tvmse.compile", description=__doc__.split("\n")[0])
    p.add_argument("model", help="model of one streaming step: int8 .tflite or int8 QDQ .onnx")
    p.add_argument("--target", default="ethos-u55", help=f"one of: {', '.join([*TARGETS, CORTEX_M_TARGET])} (default ethos-u55)")
    p.add_argument("--accelerator-config", help="Vela accelerator, e.g. ethos-u55-128 (default per target)")
    p.add_argument("--system-config", help="Vela system config (default Ethos_U55_High_End_Embedded for U55)")
    p.add_argument("--memory-mode", help="Vela memory mode (default Shared_Sram)")
    p.add_argument("--output-dir", help="output folder (default out/<model>-<accelerator>)")
    p.add_argument("--verify-trials", type=int, default=8,
                   help="random input sets on which the TFLite model must equal the host reference (default 8)")
    p.add_argument("--disable-pass", action="append", default=[], metavar="NAME",
                   help="skip one pass of the default pipeline (repeatable)")
    p.add_argument("--state", action="append", default=[], metavar="IN=OUT",
                   help="pair a state input with the output that feeds it next step (repeatable; "
                        "default: found by name or size)")
    from tvmse.quantize import add_calibration_arguments
    add_calibration_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="only the summary line")
    # cortex-m55: the whole network as C for the CPU (tvmse.targets.cortex_m.compile_cpu)
    p.add_argument("--run", choices=("qemu", "fvp"),
                   help="cortex-m55: also run on an emulator, check bit-exactness, profile (instructions, not cycles)")
    p.add_argument("--ram-budget", type=int, metavar="BYTES",
                   help="cortex-m55: fail if the arena plus the streaming state need more RAM than this")
    p.add_argument("--frames", type=int, default=50, help="cortex-m55 --run: frames to run with state carried (50)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="tvmse: %(message)s",
                        stream=sys.stderr)
    if args.target == CORTEX_M_TARGET:
        return _main_cortex_m(args)
    try:
        result = compile_model(args.model, args.target, args.accelerator_config, args.system_config,
                               args.memory_mode, args.output_dir, args.verify_trials, tuple(args.disable_pass),
                               parse_state_pairs(args.state), args.calibration, args.percentile)
    except TvmseError as e:
        print(f"tvmse: error: {e}", file=sys.stderr)
        return e.exit_code
    print(result.summary)
    print(f"output: {result.output_dir}/ (report.md, report.json, {Path(args.model).stem}_vela.tflite, "
          f"{Path(args.model).stem}_vela.h)")
    return 0


def _main_cortex_m(args: argparse.Namespace) -> int:
    """``--target cortex-m55``: see ``tvmse.targets.cortex_m.compile_cpu``."""
    from tvmse.targets.cortex_m.compile_cpu import compile_cortex_m, summary_line
    model = Path(args.model)
    output_dir = Path(args.output_dir) if args.output_dir else Path("out") / f"{model.stem}-cortex-m55"
    try:
        report = compile_cortex_m(model, output_dir, args.run, args.ram_budget, args.frames,
                                  tuple(args.disable_pass), parse_state_pairs(args.state), args.calibration,
                                  args.percentile)
    except TvmseError as e:
        print(f"tvmse: error: {e}", file=sys.stderr)
        return e.exit_code
    print(summary_line(report))
    print(f"output: {output_dir}/ (report.md, report.json, src/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
