"""``python -m tvmse.compile model.onnx --target ethos-u55``: a deployable NPU build and its report.

Pipeline: model file → tvmse.frontend (TVM Relax, integer form) → host reference (TVM, LLVM) →
targets/ethosu (int8 TFLite, checked bit-exact in the TFLite interpreter) → Vela → output folder:

    <name>_vela.tflite   Vela-optimised model (ethos-u custom op: command stream + encoded weights)
    <name>_vela.h        the same bytes as a 16-byte-aligned C array, for firmware
    <name>_int8.tflite   the int8 model handed to Vela (runs in any TFLite interpreter)
    src/                 C glue without TFLite Micro: tvmse_step() runs the NPU subgraphs through one
                         call, tvmse_npu_invoke() (src/tvmse_npu.h, on Arm's ethos-u core driver), and
                         any op Vela left on the CPU as Cortex-M55 kernels (tvmse.targets.cortex_m.npu_glue)
    integer_graph.json   the compiled integer form, run on the host by ``tvmse enhance --compiled``
    report.json          every figure, machine-readable;  report.md  the same for people, with
                         plots (report_cycles.png, report_memory.png)

Options and the output folder are checked before any work; the folder is staged beside its final
place and published atomically with a ``.tvmse-output`` marker, under a lock (tvmse.output_folder).
An existing folder is replaced only on success, and only if tvmse wrote it (or with ``--force``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tvmse.errors import ConfigError, cli_entry
from tvmse.output_folder import check_output_dir, staged_output

if TYPE_CHECKING:  # TVM loads only once the inputs have been checked
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
        if self.report["target"] == CORTEX_M_TARGET:
            from tvmse.targets.cortex_m.compile_cpu import summary_line as cpu_summary_line
            return cpu_summary_line(self.report)
        from tvmse.report import summary_line
        return summary_line(self.report)


def resolve_vela_config(target: str, accelerator_config: str | None, system_config: str | None,
                        memory_mode: str | None, arena_cache_size: int | None = None):
    from tvmse.targets.ethosu.vela_driver import VelaConfig, family
    if target not in TARGETS:
        raise ConfigError(f"unknown target '{target}'; valid: {', '.join(TARGETS)}")
    accelerator = accelerator_config or TARGETS[target]
    config = VelaConfig(accelerator, system_config, memory_mode, arena_cache_size).resolved()
    if family(config.accelerator) != target:
        raise ConfigError(f"accelerator config '{accelerator}' does not belong to target '{target}'; "
                          f"use --target {family(config.accelerator)} or an {target}-* accelerator config")
    return config


# ---- option checks and output names (run before any work) ---------------------------------------
#: Options that apply to one kind of target only: (option, argparse dest, targets it applies to, why).
TARGET_OPTIONS = (
    ("--accelerator-config", "accelerator_config", tuple(TARGETS), "the Cortex-M55 build has no NPU"),
    ("--system-config", "system_config", tuple(TARGETS), "the Cortex-M55 build has no NPU"),
    ("--memory-mode", "memory_mode", tuple(TARGETS), "the Cortex-M55 build has no NPU"),
    ("--arena-cache-size", "arena_cache_size", tuple(TARGETS), "the Cortex-M55 build has no NPU"),
    ("--verify-trials", "verify_trials", tuple(TARGETS),
     "the Cortex-M55 build is checked on QEMU with --run qemu --frames N"),
    ("--run", "run", (CORTEX_M_TARGET,), "no emulator models the Ethos-U NPU; the Ethos-U build is checked "
     "bit-exact in the TFLite interpreter (--verify-trials)"),
    ("--ram-budget", "ram_budget", (CORTEX_M_TARGET,), "Vela plans the NPU's memory"),
    ("--frames", "frames", (CORTEX_M_TARGET,), "it sets the frames of --run"),
    ("--audio", "audio", (CORTEX_M_TARGET,), "it streams a recording through tvmse_process on QEMU, which has no NPU"),
    ("--sram-budget", "sram_budget", tuple(TARGETS), "it places Ethos-U weights; the CPU build has --ram-budget"),
)


def check_target_options(args: argparse.Namespace) -> None:
    """Every given option that does not apply to ``args.target`` is an error, all named at once."""
    problems = [f"{option} does not apply to --target {args.target} ({why})"
                for option, dest, targets, why in TARGET_OPTIONS
                if getattr(args, dest, None) is not None and args.target not in targets]
    if args.target == CORTEX_M_TARGET and args.frames is not None and args.run is None:
        problems.append("--frames applies only with --run qemu")
    if args.target == CORTEX_M_TARGET and getattr(args, "audio", None) is not None and args.run != "qemu":
        problems.append("--audio applies only with --run qemu")
    if problems:
        raise ConfigError("; ".join(problems) + "; drop them")


def check_positive(**values: int | None) -> None:
    """Counts and sizes given as options must be ≥ 1 (None: not given)."""
    bad = [f"--{name.replace('_', '-')} {value}" for name, value in values.items()
           if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1)]
    if bad:
        raise ConfigError(f"{', '.join(bad)}: must be a whole number ≥ 1")


def default_output_dir(model_path: Path, target_words: tuple[str, ...], disabled_passes=()) -> Path:
    """``out/<model>-<target words>[-no-<pass>…]`` (target words: accelerator and memory mode, or the
    CPU): builds that differ get different folders."""
    words = [Path(model_path).stem, *target_words] + [f"no-{p}" for p in sorted(set(disabled_passes))]
    return Path("out") / "-".join(words)


def load_model(path: Path, state: dict[str, str] | None = None, calibration: str | os.PathLike | None = None,
               percentile: float | None = None, features: str | None = None):
    """The imported model (``tvmse.frontend.Imported``): integer graph, state pairs, importer notes;
    the file is checked completely first (``tvmse.frontend.validate``)."""
    from tvmse.frontend.validate import validate_model_file
    validate_model_file(path)
    from tvmse import frontend
    return frontend.import_model(path, state, calibration, percentile, features)


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


def _write_report(folder: Path, report: dict, render_markdown) -> None:
    """``report.json``, ``report.md`` (``render_markdown(report)``) and the PNG plots it links, named and
    formatted the same for every target."""
    from tvmse.plots import report_plots, write_report_plots
    report["artifacts"].update({file: f"plot: {title}" for file, title in report_plots(report)})
    write_report_plots(folder, report)
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (folder / "report.md").write_text(render_markdown(report))


def compile_model(model_path: str | os.PathLike, target: str = "ethos-u55", accelerator_config: str | None = None,
                  system_config: str | None = None, memory_mode: str | None = None,
                  output_dir: str | os.PathLike | None = None, verify_trials: int = 8,
                  disabled_passes: tuple[str, ...] = (), state: dict[str, str] | None = None,
                  calibration: str | os.PathLike | None = None, percentile: float | None = None,
                  example_inputs: dict | None = None, output_names: list[str] | None = None,
                  force: bool = False, features: str | None = None, run: str | None = None,
                  ram_budget: int | None = None, frames: int = 50, sram_budget: int | None = None,
                  tuning: str | os.PathLike | None = None, audio: str | os.PathLike | None = None,
                  arena_cache_size: int | None = None) -> CompileResult:
    """Compile a model (a file, or a torch module with ``example_inputs``) for an Ethos-U NPU or, with
    ``target="cortex-m55"``, as C for the CPU; see the module docstring for what is written.

    The parameters are the command line's options: ``force`` allows replacing an existing folder tvmse
    did not write; ``run``, ``ram_budget``, ``frames`` and ``audio`` (a recording streamed through
    ``tvmse_process`` on QEMU, with ``run="qemu"``) apply to cortex-m55. ``sram_budget`` (bytes):
    place layers' weights in SRAM greedily within it (``targets.ethosu.placement``); ``tuning``: replay a
    tuning file of ``python -m tvmse.autotune`` (checked against the model, target and tool versions). Both
    build in placement segments (``_compile_placed``).
    ``arena_cache_size`` (bytes): Vela's arena cache in Dedicated_Sram (Ethos-U65/U85).
    """
    if not isinstance(model_path, (str, os.PathLike)):   # a torch.nn.Module: export it, compile the file
        from tvmse.frontend.torch_export import export_module
        with tempfile.TemporaryDirectory(prefix="tvmse-export-") as work:
            exported = export_module(model_path, example_inputs, output_names,
                                     Path(work) / f"{type(model_path).__name__.lower()}.onnx")
            return compile_model(exported, target, accelerator_config, system_config, memory_mode,
                                 output_dir, verify_trials,
                                 disabled_passes, state, calibration, percentile, force=force, features=features,
                                 run=run, ram_budget=ram_budget, frames=frames, sram_budget=sram_budget,
                                 tuning=tuning, audio=audio, arena_cache_size=arena_cache_size)
    if target == CORTEX_M_TARGET:
        return _compile_cortex_m(Path(model_path), output_dir, run, ram_budget, frames, tuple(disabled_passes),
                                 state, calibration, percentile, force, features, audio, tuning)
    from tvmse.passes.pipeline import check_disabled, run_pipeline
    from tvmse.report import build_report, render_markdown
    from tvmse.targets import ethosu
    from tvmse.targets.ethosu.c_header import c_header
    from tvmse.targets.host import HostReference

    model_path = Path(model_path)
    config = resolve_vela_config(target, accelerator_config, system_config, memory_mode, arena_cache_size)
    check_disabled(tuple(disabled_passes))
    check_positive(verify_trials=verify_trials)
    name = model_path.stem
    output_dir = Path(output_dir) if output_dir else default_output_dir(
        model_path, (config.accelerator, config.memory_mode), disabled_passes)
    check_output_dir(output_dir, model_path, force)
    if sram_budget is not None or tuning is not None:
        return _compile_placed(model_path, config, output_dir, verify_trials, tuple(disabled_passes), sram_budget,
                               tuning, (state, calibration, percentile, features), force)
    logger.info("importing %s into the integer form", model_path)
    imported = load_model(model_path, state, calibration, percentile, features)
    with staged_output(output_dir, model_path, force) as staging:
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
            artifacts["src/"] = ("C glue: NPU calls via tvmse_npu_invoke() (tvmse_npu.h), CPU ops as M55 kernels"
                                 + _audio_hop_note(staging / "src"))
        save_integer_graph(graph, staging, artifacts)
        report = build_report(model_path, graph, build, target, artifacts, rewrites, disabled_passes)
        report["import"] = import_section(imported)
        _write_report(staging, report, render_markdown)
    return CompileResult(output_dir, report, graph)


def _compile_cortex_m(model_path: Path, output_dir, run, ram_budget, frames, disabled_passes, state, calibration,
                      percentile, force, features, audio, tuning=None) -> CompileResult:
    """``target="cortex-m55"``: see ``tvmse.targets.cortex_m.compile_cpu``."""
    from tvmse.targets.cortex_m.compile_cpu import compile_cortex_m_graph
    output_dir = Path(output_dir) if output_dir else default_output_dir(model_path, (CORTEX_M_TARGET,),
                                                                       disabled_passes)
    report, graph = compile_cortex_m_graph(model_path, output_dir, run, ram_budget, frames, disabled_passes, state,
                                           calibration, percentile, features=features, force=force, audio=audio,
                                           tuning=tuning)
    return CompileResult(output_dir, report, graph)


INTEGER_GRAPH_FILE = "integer_graph.json"


def save_integer_graph(graph: IntegerGraph, folder: Path, artifacts: dict) -> None:
    """The compiled integer form (TVM IRModule JSON) beside the build: what ``tvmse enhance --compiled``
    and ``tvmse evaluate OUTDIR`` run on the host (targets/host), bit-exact with the device."""
    import tvm
    (folder / INTEGER_GRAPH_FILE).write_text(tvm.ir.save_json(graph.to_module()))
    artifacts[INTEGER_GRAPH_FILE] = "the compiled integer form (TVM IRModule JSON), run by `tvmse enhance --compiled`"


def _compile_placed(model_path: Path, config, output_dir: Path, verify_trials: int, disabled: tuple[str, ...],
                    sram_budget: int | None, tuning_path, import_options: tuple, force: bool) -> CompileResult:
    """``--sram-budget`` (greedy placement) or ``--tuning`` (replay): a build in placement segments.

    Writes ``<name>_seg<k>_vela.tflite`` / ``<name>_seg<k>_int8.tflite`` per segment, the whole
    ``<name>_int8.tflite``, the segmented C glue and the report with its placement section."""
    from tvmse import tuning
    from tvmse.errors import BudgetError
    from tvmse.passes.pipeline import run_pipeline
    from tvmse.report import build_report, render_markdown
    from tvmse.targets.ethosu import build_segmented, lower_to_tflite, segment_report
    from tvmse.targets.ethosu.placement import greedy_placement
    from tvmse.targets.host import HostReference

    check_positive(sram_budget=sram_budget)
    plan = None
    if tuning_path is not None:
        if disabled:
            raise ConfigError("--tuning replays the tuned pass decisions; drop --disable-pass")
        plan = tuning.load(tuning_path)
        tuning.check_matches(plan, tuning_path, model_path, config)
        sram_budget = plan.sram_budget if sram_budget is None else sram_budget
    name = model_path.stem
    logger.info("importing %s into the integer form", model_path)
    imported = load_model(model_path, *import_options)
    source = imported.graph
    with staged_output(output_dir, model_path, force) as staging:
        default_graph, default_rewrites = run_pipeline(source, disabled, config)
        default = build_segmented(default_graph, config, ())
        if plan is None:
            chosen = greedy_placement(default_graph, config, sram_budget)
            graph, rewrites, placement, how = (default_graph, default_rewrites, chosen.build.placement,
                                               f"greedy placement per layer under --sram-budget ({chosen.builds} "
                                               "segmented Vela builds)")
        else:
            graph, rewrites = tuning.apply(source, plan.decisions, config.accelerator, config)
            placement, how = plan.decisions.placement, f"replayed from tuning file {tuning_path}"
        reference = HostReference(graph)
        build = build_segmented(graph, config, placement, reference, verify_trials, name)
        if build.sram_bytes > sram_budget:
            raise BudgetError(f"the placement needs {build.sram_bytes:,} B of SRAM, more than the budget "
                              f"{sram_budget:,} B; tune again with this budget")
        artifacts = {f"{name}_int8.tflite": "int8 TFLite model of the whole network (runs in a TFLite interpreter)"}
        (staging / f"{name}_int8.tflite").write_bytes(lower_to_tflite(graph, description=f"tvmse: {name}"))
        for seg in build.segments:
            k = seg.segment.index
            (staging / f"{name}_seg{k}_vela.tflite").write_bytes(seg.vela.optimized_model)
            (staging / f"{name}_seg{k}_int8.tflite").write_bytes(seg.tflite)
            artifacts[f"{name}_seg{k}_vela.tflite"] = f"segment {k}, Vela-optimised ({seg.memory_mode})"
            artifacts[f"{name}_seg{k}_int8.tflite"] = f"segment {k}, int8 TFLite before Vela"
        if _write_segmented_glue(graph, build, staging / "src"):
            artifacts["src/"] = ("C glue: segments in order via tvmse_npu_invoke(), placed weights copied at tvmse_init"
                                 + _audio_hop_note(staging / "src"))
        artifacts.update({"report.json": "all figures, machine-readable", "report.md": "this report"})
        placement_section = segment_report.placement_section(
            build, sram_budget, default.total_cycles, how, plan.tuned_cycles if plan is not None else None)
        save_integer_graph(graph, staging, artifacts)
        report = build_report(model_path, graph, build, config.accelerator.rsplit("-", 1)[0], artifacts, rewrites,
                              disabled, npu=segment_report.npu_section(build), placement=placement_section)
        report["import"] = import_section(imported)
        _write_report(staging, report, render_markdown)
        if plan is not None:
            logger.info("tuned build: predicted %d cycles/frame, achieved %d", plan.tuned_cycles, build.total_cycles)
    return CompileResult(output_dir, report, graph)


def _write_segmented_glue(graph: IntegerGraph, build, directory: Path) -> bool:
    """The firmware glue of a segmented build; False (with a warning saying why) when it cannot."""
    from tvmse.targets.cortex_m import npu_glue
    return _write_glue(lambda: npu_glue.generate_segmented(graph, build), directory, graph)


def _write_npu_glue(graph: IntegerGraph, optimized_model: bytes, directory: Path) -> bool:
    """Write the firmware glue around Vela's output; False (with a warning saying why) when it cannot.

    The glue is an addition: the optimised .tflite still runs under TFLite Micro, so a network the
    glue does not cover (no frame → mask streaming interface, an unsupported memory layout) keeps
    its other outputs.
    """
    from tvmse.targets.cortex_m import npu_glue
    return _write_glue(lambda: npu_glue.generate(graph, optimized_model), directory, graph)


def _audio_hop_note(directory: Path) -> str:
    from tvmse.targets.cortex_m import audio_hop
    return ("; the whole audio hop: tvmse_process(in[256], out[256], state) in tvmse_audio.h"
            if (directory / audio_hop.SOURCE).is_file() else "")


def _write_glue(generate, directory: Path, graph: IntegerGraph) -> bool:
    """The glue ``generate()`` makes and, for a feature-frame → mask model, the audio hop around it
    (``tvmse_process``, targets.cortex_m.audio_hop)."""
    from tvmse.targets.cortex_m import audio_hop
    from tvmse.targets.cortex_m.errors import LoweringError
    from tvmse.targets.ethosu.vela_model import VelaModelError

    try:
        generated = generate()
    except (LoweringError, VelaModelError) as exc:
        logger.warning("no C glue written (src/): %s", exc)
        return False
    directory.mkdir(parents=True, exist_ok=True)
    hop_files, hop_unavailable = audio_hop.files_for(graph)
    if hop_unavailable:
        logger.info("no audio hop in src/: %s", hop_unavailable)
    for file_name, text in {**generated.files, **hop_files}.items():
        (directory / file_name).write_text(text)
    return True


def build_parser() -> argparse.ArgumentParser:
    from tvmse.cli import command_parser
    p = command_parser("compile", __doc__)
    p.add_argument("model", help="model of one streaming step: int8 .tflite, int8 QDQ .onnx, or float .onnx with "
                                 "--calibration")
    p.add_argument("--target", default="ethos-u55", help=f"one of: {', '.join([*TARGETS, CORTEX_M_TARGET])}")
    p.add_argument("--accelerator-config", help="Vela accelerator, e.g. ethos-u55-128 (default per target)")
    p.add_argument("--system-config", help="Vela system config (default Ethos_U55_High_End_Embedded for U55)")
    p.add_argument("--memory-mode", help="Vela memory mode (default Shared_Sram)")
    p.add_argument("--arena-cache-size", type=int, metavar="BYTES",
                   help="Dedicated_Sram (Ethos-U65/U85): SRAM that caches the arena held in DRAM (default: Vela's, "
                        "the system's whole SRAM)")
    p.add_argument("--output-dir", help="output folder (default out/<model>-<accelerator>-<memory mode>"
                   "[-no-<pass>…]; cortex-m55: out/<model>-cortex-m55[-no-<pass>…])")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --output-dir even if tvmse did not write it (it has no .tvmse-output)")
    p.add_argument("--verify-trials", type=int,
                   help="random input sets on which the TFLite model must equal the host reference (default 8)")
    p.add_argument("--disable-pass", action="append", default=[], metavar="NAME",
                   help="skip one pass of the default pipeline (repeatable)")
    p.add_argument("--state", action="append", default=[], metavar="IN=OUT",
                   help="pair a state input with the output that feeds it next step (repeatable; "
                        "default: found by name or size)")
    from tvmse.quantize import add_calibration_arguments
    add_calibration_arguments(p)
    p.add_argument("--sram-budget", type=int, metavar="BYTES",
                   help="NPU: keep the weights of the layers that gain most in SRAM within this many bytes "
                        "(arena included); the rest stream from flash (greedy per layer)")
    p.add_argument("--tuning", metavar="TUNING.json",
                   help="NPU: replay the decisions of python -m tvmse.autotune (model, target and tools checked)")
    p.add_argument("-q", "--quiet", action="store_true", help="only the summary line")
    # cortex-m55: the whole network as C for the CPU (tvmse.targets.cortex_m.compile_cpu)
    p.add_argument("--run", choices=("qemu", "fvp"),
                   help="cortex-m55: also run on an emulator, check bit-exactness, profile (instructions, not cycles)")
    p.add_argument("--ram-budget", type=int, metavar="BYTES",
                   help="cortex-m55: fail if the arena plus the streaming state need more RAM than this")
    p.add_argument("--frames", type=int, help="cortex-m55 --run: frames to run with state carried (default 50)")
    p.add_argument("--audio", metavar="FILE.wav",
                   help="cortex-m55 --run qemu: also stream this recording through tvmse_process (the whole audio "
                        "hop), check it bit-exact, count instructions per hop, write enhanced.wav")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tvmse.progress import log_stages
    log_stages(args.quiet)
    check_target_options(args)
    check_positive(verify_trials=args.verify_trials, frames=args.frames, ram_budget=args.ram_budget,
                   sram_budget=args.sram_budget)
    if args.target == CORTEX_M_TARGET:
        return _main_cortex_m(args)
    verify_trials = 8 if args.verify_trials is None else args.verify_trials
    result = compile_model(args.model, args.target, args.accelerator_config, args.system_config,
                           args.memory_mode, args.output_dir, verify_trials, tuple(args.disable_pass),
                           parse_state_pairs(args.state), args.calibration, args.percentile, force=args.force,
                           features=args.features, sram_budget=args.sram_budget, tuning=args.tuning,
                           arena_cache_size=args.arena_cache_size)
    print(result.summary)
    stem = Path(args.model).stem
    built = f"{stem}_seg*_vela.tflite" if "placement" in result.report else f"{stem}_vela.tflite, {stem}_vela.h"
    print(f"output: {result.output_dir}/ (report.md with plots, report.json, {built})")
    return 0


def _main_cortex_m(args: argparse.Namespace) -> int:
    """``--target cortex-m55``: see ``tvmse.targets.cortex_m.compile_cpu``."""
    from tvmse.targets.cortex_m.compile_cpu import compile_cortex_m, summary_line
    model = Path(args.model)
    output_dir = Path(args.output_dir) if args.output_dir else default_output_dir(
        model, (CORTEX_M_TARGET,), args.disable_pass)
    report = compile_cortex_m(model, output_dir, args.run, args.ram_budget,
                              50 if args.frames is None else args.frames, tuple(args.disable_pass),
                              parse_state_pairs(args.state), args.calibration, args.percentile, force=args.force,
                              features=args.features, audio=args.audio, tuning=args.tuning)
    print(summary_line(report))
    print(f"output: {output_dir}/ (report.md with plots, report.json, src/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
