"""``--target cortex-m55``: the whole network as C for the Cortex-M55, optionally run under QEMU.

Output folder (staged beside its place and published atomically only when complete; tvmse.output_folder):

    src/               tvmse_model.h/.c, tvmse_weights.c, tvmse_kernels*.c, tvmse_tvm_abi.h (see ``glue``)
    report.json        every figure, machine-readable;  report.md  the same for people

With ``run="qemu"`` the sources are also built with a harness and run on QEMU's mps3-an547
(Corstone-300 CPU, no NPU model) for ``frames`` random frames with the state carried; the outputs
must equal the host reference bit for bit, and the report gains executed-instruction counts per
frame and per kernel (QEMU counts instructions, not cycles), code/data sizes and the stack
high-water mark.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tvmse.passes.cost_model import CPU_OBJECTIVE
from tvmse.targets.cortex_m import audio_hop, audio_hop_run, emulate, glue as glue_mod, lower
from tvmse.targets.cortex_m.errors import ArenaBudgetError

log = logging.getLogger(__name__)

RUNNERS = ("qemu", "fvp")
FVP_BINARY = "FVP_Corstone_SSE-300_Ethos-U55"
COUNT_NOTE = "QEMU counts executed instructions, not cycles (no cycle model); compare code, not latency"


def check_budget(glue: glue_mod.Glue, network: lower.LoweredNetwork, ram_budget: int | None) -> None:
    """Fail, with the numbers, if arena + state exceed ``ram_budget`` bytes."""
    need = glue.plan.arena_bytes + glue.state_bytes
    if ram_budget is None or need <= ram_budget:
        return
    plan = glue.plan
    peak_op = network.steps[plan.peak_step].op if network.steps else "-"
    live = ", ".join(f"{n} ({plan.placements[n].size} B)" for n in plan.live_at(plan.peak_step))
    raise ArenaBudgetError(
        f"the model needs {need:,} B of RAM: arena {plan.arena_bytes:,} B + streaming state {glue.state_bytes:,} B, "
        f"over --ram-budget {ram_budget:,} B by {need - ram_budget:,} B. Peak at op '{peak_op}' "
        f"({plan.live_bytes_at_peak:,} B live: {live}). Raise the budget or shrink the model "
        f"(e.g. fewer hidden units).")


def cpu_section(network, glue, run: emulate.EmulatedRun | None, runner_notes: dict) -> dict:
    section = {
        "cpu": "Cortex-M55 (Corstone-300), Helium",
        "kernels": len(network.steps),
        "fully_connected_kernels": len(network.fc_kernels),
        "arena_bytes": glue.plan.arena_bytes,
        "state_bytes": glue.state_bytes,
        "api": ("tvmse_init(tvmse_state_t*); tvmse_run(const int8_t* const inputs[], int8_t* const outputs[], "
                "tvmse_state_t*)" + ("; tvmse_step(const int8_t* frame, int8_t* mask, tvmse_state_t*)"
                                     if glue.interface.streaming else "")),
        "inputs": list(glue.interface.inputs), "outputs": list(glue.interface.outputs),
        "runs": runner_notes,
    }
    if run is not None:
        section["qemu"] = {
            "machine": "qemu-system-arm -M mps3-an547 -icount shift=0",
            "note": COUNT_NOTE,
            "compiler": f"{run.compiler} -O2 (FC kernels: MVE vector width 16)",
            "frames": run.frames,
            "bit_exact_vs_host_reference": run.bit_exact,
            "instructions_per_frame": run.instructions_per_frame,
            "glue_instructions_per_frame": run.glue_instructions_per_frame,
            "sizes": {"text": run.sizes.text, "rodata": run.sizes.rodata, "data": run.sizes.data,
                      "bss": run.sizes.bss, "stack_high_water": run.stack_bytes},
            "kernels": run.kernels,
        }
    return section


def kernel_groups(kernels: list[dict]) -> list[dict]:
    """QEMU's per-kernel instruction counts summed per source layer, in call order."""
    from tvmse.report import source_layer
    groups: dict[str, dict] = {}
    for k in kernels:
        g = groups.setdefault(source_layer(k["op"]), {"op": source_layer(k["op"]), "kinds": {}, "kernels": 0,
                                                      "instructions_per_frame": 0.0, "macs": 0})
        g["kinds"][k["kind"]] = g["kinds"].get(k["kind"], 0) + 1
        g["kernels"] += 1
        g["instructions_per_frame"] += k["instructions_per_frame"]
        g["macs"] += k["macs"] or 0
    return list(groups.values())


def _summary_markdown(report: dict) -> list[str]:
    """The lead paragraph: instructions per frame against the 16 ms hop, RAM, flash, what dominates."""
    from tvmse.report import HOP_MS
    cpu, q = report["cpu"], report["cpu"].get("qemu")
    ram = cpu["arena_bytes"] + cpu["state_bytes"]
    if not q:
        return [f"**RAM {ram:,} B (arena {cpu['arena_bytes']:,} B + state {cpu['state_bytes']:,} B), "
                f"{cpu['kernels']} kernels.** Compile with `--run qemu` for instruction counts and code sizes.", ""]
    per_frame = q["instructions_per_frame"]
    mhz = per_frame / (HOP_MS * 1e3)
    fc = sum(k["instructions_per_frame"] for k in q["kernels"] if k["kind"] == "fully_connected")
    s = q["sizes"]
    return [f"**{per_frame:,.0f} instructions per {HOP_MS:g} ms frame: at one instruction per cycle the "
            f"Cortex-M55 keeps up with live audio from {mhz:,.0f} MHz. Flash {s['text'] + s['rodata']:,} B "
            f"(code {s['text']:,} + weights and tables {s['rodata']:,}), RAM {ram + s['stack_high_water']:,} B "
            f"(arena, state, stack).**", "",
            f"Bound by compute in the FC kernels: {fc / per_frame:.0%} of the instructions (weights are read once "
            f"per frame; QEMU has no memory or cycle model).", ""]


def render_markdown(report: dict) -> str:
    from tvmse.plots import report_plots
    from tvmse.report import import_markdown, model_markdown, passes_markdown
    cpu, model = report["cpu"], report["model"]
    lines = [f"# tvmse compile report: {Path(report['source']['path']).name}", ""]
    lines += _summary_markdown(report)
    lines += [f"Target **cortex-m55**: the whole network as C for the Cortex-M55 ({len(model['outputs'])} outputs, "
              f"{model['macs_per_frame']:,} MACs/frame), {cpu['kernels']} TVM-generated kernels.", ""]
    lines += [f"![{title}]({file})" for file, title in report_plots(report)] + [""]
    lines += ["| RAM figure | bytes |", "|---|---:|",
              f"| arena (all intermediate tensors) | {cpu['arena_bytes']:,} |",
              f"| streaming state (caller's tvmse_state_t) | {cpu['state_bytes']:,} |", ""]
    q = cpu.get("qemu")
    if q:
        s = q["sizes"]
        lines += ["## Emulated run (QEMU)", "", f"**{q['note']}.** {q['machine']}, {q['compiler']}.", "",
                  f"Bit-exact against the host reference over {q['frames']} frames with the state carried.", "",
                  "| figure | value |", "|---|---:|",
                  f"| instructions / frame | {q['instructions_per_frame']:,.0f} |",
                  f"| of which glue (tvmse_run/tvmse_step) | {q['glue_instructions_per_frame']:,.0f} |",
                  f"| text (code) | {s['text']:,} B |", f"| rodata (weights, tables) | {s['rodata']:,} B |",
                  f"| data | {s['data']:,} B |", f"| bss (arena) | {s['bss']:,} B |",
                  f"| stack high-water mark | {s['stack_high_water']:,} B |", "",
                  "Per source layer (kernels of a tiled FC summed into its row):", "",
                  "| source layer | kernels | instructions / frame | MACs | instructions / MAC |",
                  "|---|---|---:|---:|---:|"]
        for g in kernel_groups(q["kernels"]):
            kinds = ", ".join(f"{n} {kind}" if n > 1 else kind for kind, n in g["kinds"].items())
            macs, per_mac = ("", "")
            if g["macs"]:
                macs, per_mac = f"{g['macs']:,}", f"{g['instructions_per_frame'] / g['macs']:.3f}"
            lines.append(f"| {g['op']} | {kinds} | {g['instructions_per_frame']:,.0f} | {macs} | {per_mac} |")
    for runner, note in cpu["runs"].items():
        lines += ["", f"{runner}: {note}"]
    lines += [""] + audio_hop_run.markdown(report.get("audio"))
    lines += [""] + model_markdown(model) + import_markdown(report) + [""] + passes_markdown(report)
    lines += ["", "## Files", ""] + [f"- `{n}`: {w}" for n, w in report["artifacts"].items()]
    return "\n".join(lines) + "\n"


def random_frames(shape, count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=(count, *shape), dtype=np.int8)


def check_runner(run: str | None) -> None:
    """A runner that cannot run is an error before any work, so no output claims a run that did not happen
    (and no earlier results are replaced by a report that only says "skipped")."""
    from tvmse.errors import ConfigError
    if run is None or run == "qemu":
        return
    if run != "fvp":
        raise ConfigError(f"unknown --run '{run}'; valid: {', '.join(RUNNERS)}")
    why = (f"{FVP_BINARY} is not on PATH (Arm's FVP is not obtainable here)" if shutil.which(FVP_BINARY) is None
           else "running on the FVP is not implemented yet")
    raise ConfigError(f"--run fvp cannot run: {why}; use --run qemu (the emulated Corstone-300 CPU)")


def compile_cortex_m(model_path: Path, output_dir: Path, run: str | None = None, ram_budget: int | None = None,
                     frames: int = 50, disabled_passes: tuple[str, ...] = (),
                     state: dict[str, str] | None = None, calibration=None, percentile=None, features=None,
                     force: bool = False, audio=None, tuning=None) -> dict:
    """Compile for the Cortex-M55 into ``output_dir`` (see the module docstring); returns the report.
    ``force`` allows replacing an existing folder tvmse did not write; ``audio`` (a recording, with
    ``run="qemu"``) is streamed through ``tvmse_process`` on QEMU as well; ``tuning``: replay the decisions
    of ``autotune --target cortex-m55`` (``tvmse.autotune_cpu``) instead of the default passes."""
    return compile_cortex_m_graph(model_path, output_dir, run, ram_budget, frames, disabled_passes, state,
                                  calibration, percentile, features, force, audio, tuning)[0]


def compile_cortex_m_graph(model_path: Path, output_dir: Path, run: str | None = None, ram_budget: int | None = None,
                           frames: int = 50, disabled_passes: tuple[str, ...] = (),
                           state: dict[str, str] | None = None, calibration=None, percentile=None, features=None,
                           force: bool = False, audio=None, tuning=None):
    """:func:`compile_cortex_m`, returning (report, the compiled IntegerGraph)."""
    from tvmse import __version__
    from tvmse.compile import _write_report, check_positive, import_section, load_model, save_integer_graph
    from tvmse.output_folder import check_output_dir, staged_output
    from tvmse.passes.pipeline import check_disabled, run_pipeline
    from tvmse.report import _sha256, model_section, pipeline_section
    from tvmse.targets.host import HostReference

    check_runner(run)
    check_positive(frames=frames, ram_budget=ram_budget)
    recording = audio_hop_run.read_recording(audio, run) if audio is not None else None
    check_disabled(tuple(disabled_passes))
    check_output_dir(output_dir, model_path, force)
    plan = _tuning_plan(tuning, model_path, disabled_passes)
    imported = load_model(model_path, state, calibration, percentile, features)
    if plan is None:
        graph, rewrites = run_pipeline(imported.graph, tuple(disabled_passes), objective=CPU_OBJECTIVE)
    else:
        from tvmse import autotune_cpu, tuning as tuning_mod
        graph, rewrites = tuning_mod.apply(imported.graph, plan.decisions, autotune_cpu.TILING_ACCELERATOR)
    network = lower.lower(graph, fc_rows=plan.decisions.fc_rows_by_shape() if plan else None)
    if plan is not None and plan.decisions.fc_schedule:
        from tvmse.targets.cortex_m import metaschedule
        metaschedule.replay(network, plan.decisions, tuning)
    glue = glue_mod.generate(network)
    check_budget(glue, network, ram_budget)
    hop_files, hop_unavailable = audio_hop.files_for(graph)
    if recording is not None and hop_unavailable:
        raise audio_hop_run.AudioOptionError(f"--audio cannot run: {hop_unavailable}")
    with staged_output(output_dir, model_path, force) as staging:
        glue_mod.write(glue, staging / "src")
        for file_name, text in hop_files.items():
            (staging / "src" / file_name).write_text(text)
        notes, emulated, audio_section = {}, None, None
        if run == "qemu":
            reference = HostReference(graph)
            tensors = graph.tensors()
            inputs = {n: random_frames(tensors[n].shape, frames, seed=k) for k, n in enumerate(glue.interface.inputs)}
            with tempfile.TemporaryDirectory(prefix="tvmse-m55-") as work:
                emulated = emulate.run_on_qemu(network, glue, staging / "src", reference, inputs, Path(work))
            notes["qemu"] = (f"{frames} random frames, state carried: bit-exact against the host reference")
        if recording is not None:
            audio_section = audio_hop_run.run_recording(graph, glue, staging, reference, recording)
        artifacts = {f"src/{n}": what for n, what in [
            ("tvmse_model.h", "the C API"), ("tvmse_model.c", "arena plan and kernel call sequence"),
            ("tvmse_weights.c", "constants (flash)"), ("tvmse_kernels.c", "TVM-generated element-wise kernels"),
            ("tvmse_kernels_fc.c", "TVM-generated FC kernels (clang: -mllvm -force-vector-width=16)"),
            ("tvmse_tvm_abi.h", "C types of TVM's packed-FFI kernels")]}
        artifacts.update(audio_hop_run.artifacts(hop_files, hop_unavailable, audio_section))
        save_integer_graph(graph, staging, artifacts)
        artifacts.update({"report.json": "all figures, machine-readable", "report.md": "this report"})
        report = {"tvmse_version": __version__, "source": {"path": str(model_path), "sha256": _sha256(model_path)},
                  "target": "cortex-m55", "model": model_section(graph),
                  "cpu": cpu_section(network, glue, emulated, notes), "passes": list(rewrites),
                  "import": import_section(imported), "pipeline": pipeline_section(rewrites, disabled_passes),
                  "artifacts": artifacts}
        if audio_section is not None:
            report["audio"] = audio_section
        if plan is not None:
            report["tuning"] = {"file": str(tuning), "decisions": plan.decisions.to_json(),
                                "tuned_instructions_per_frame": plan.tuned_cycles,
                                "default_instructions_per_frame": plan.default_cycles}
        _write_report(staging, report, render_markdown)
    return report, graph


def _tuning_plan(tuning, model_path: Path, disabled_passes):
    """The checked tuning file to replay, or None."""
    if tuning is None:
        return None
    from tvmse import autotune_cpu
    from tvmse.errors import ConfigError
    if disabled_passes:
        raise ConfigError("--tuning replays the tuned pass decisions; drop --disable-pass")
    return autotune_cpu.load_for_replay(tuning, model_path)


def summary_line(report: dict) -> str:
    cpu = report["cpu"]
    text = (f"{Path(report['source']['path']).name} → cortex-m55: {cpu['kernels']} kernels, arena "
            f"{cpu['arena_bytes']:,} B + state {cpu['state_bytes']:,} B")
    q = cpu.get("qemu")
    if q:
        s = q["sizes"]
        text += (f"; QEMU: bit-exact over {q['frames']} frames, {q['instructions_per_frame']:,.0f} instructions/frame "
                 f"(instructions, not cycles); text {s['text']:,} B, rodata {s['rodata']:,} B, data {s['data']:,} B, "
                 f"bss {s['bss']:,} B, stack {s['stack_high_water']:,} B")
    audio = report.get("audio")
    if audio:
        per_hop = audio["instructions_per_hop"]
        text += (f"; audio: {audio['hops']} hops through tvmse_process bit-exact, {per_hop['pipeline']:,.0f} pipeline "
                 f"+ {per_hop['network']:,.0f} network instructions/hop")
    return text


__all__ = ["compile_cortex_m", "summary_line", "check_budget"]
