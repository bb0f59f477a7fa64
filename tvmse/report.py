"""The compile report: one JSON document and its Markdown rendering (with plots, ``tvmse.plots``).

report.md leads with a summary (time per frame against the 16 ms hop, flash, SRAM, what bounds the
speed), then per-layer figures summed per source layer, every pass of the pipeline and what it did,
and the labels explained. The Markdown helpers for passes, state maps and the model are shared with
the Cortex-M55 report (``tvmse.targets.cortex_m.compile_cpu``).

Every speed figure names the accelerator, system config, memory mode and clock it belongs to
(Vela's performance model, not a measurement on silicon); memory figures name their area.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


import tvmse
from tvmse.data.framing import HOP, SAMPLE_RATE
from tvmse.ir import IntegerGraph
from tvmse.targets.ethosu import EthosUBuild
from tvmse.targets.host.reference import streaming_state_pairs


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_section(graph: IntegerGraph) -> dict:
    weights = [op.consts["weight"] for op in graph.ops if "weight" in op.consts]
    biases = [op.consts["bias"] for op in graph.ops if "bias" in op.consts]
    tensor = lambda t: {"name": t.name, "shape": list(t.shape), "scale": t.scale, "zero_point": t.zero_point}
    tensors = graph.tensors()
    return {
        "inputs": [tensor(t) for t in graph.inputs],
        "outputs": [tensor(tensors[name]) for name in graph.outputs],
        # slots are channels of the last axis, the axis the passes shrink
        "state": [{"input": i, "output": o, "shape": list(tensors[i].shape), "size": tensors[i].shape[-1],
                   "source_slots": graph.state_slots.get(i, list(range(tensors[i].shape[-1])))}
                  for i, o in streaming_state_pairs(graph).items()],
        "ops": len(graph.ops),
        "parameters": int(sum(w.size for w in weights) + sum(b.size for b in biases)),
        "nonzero_weights": int(sum((w != 0).sum() for w in weights)),
        "weights": int(sum(w.size for w in weights)),
        "int8_weight_bytes": int(sum(w.size for w in weights)),
        "macs_per_frame": graph.macs(),
    }


def npu_section(build: EthosUBuild) -> dict:
    vela = build.vela
    cfg = vela.config
    clock = cfg.core_clock_hz
    s = vela.summary
    return {
        "accelerator": cfg.accelerator,
        "system_config": cfg.system_config,
        "memory_mode": cfg.memory_mode,
        "arena_cache_size": cfg.arena_cache_size,
        "core_clock_hz": clock,
        "source": "Vela performance model",
        "npu_cycles_per_frame": vela.npu_cycles,
        "total_cycles_per_frame": vela.total_cycles,
        "ms_per_frame": vela.total_cycles / clock * 1e3,
        "macs_per_frame": int(s.get("nn_macs", 0)),
        "cpu_fallback_ops": vela.cpu_operators,
        "vela_ops": len(vela.layers),
        "memory": {
            "flash_bytes": len(vela.optimized_model),
            "flash_note": "size of the Vela-optimised .tflite: command stream, encoded weights, scales, metadata",
            "encoded_weight_bytes": int(s.get("total_npu_encoded_weights", 0)),
            "original_weight_bytes": int(s.get("total_original_weights", 0)),
            "sram_bytes": int(round(float(s.get("sram_memory_used", 0)) * 1024)),
            "off_chip_flash_used_bytes": int(round(float(s.get("off_chip_flash_memory_used", 0)) * 1024)),
            "on_chip_flash_used_bytes": int(round(float(s.get("on_chip_flash_memory_used", 0)) * 1024)),
            "dram_used_bytes": int(round(float(s.get("dram_memory_used", 0)) * 1024)),
        },
        "layers": [{"name": l.name, "operator": l.operator, "cycles": l.op_cycles,
                    "npu_cycles": l.npu_cycles, "macs": l.macs, "encoded_weight_bytes": l.weight_bytes}
                   for l in vela.layers],
    }


def build_report(source: Path, graph: IntegerGraph, build: EthosUBuild, target: str, artifacts: dict,
                 rewrites: list[dict] = (), disabled_passes: tuple[str, ...] = (), npu: dict | None = None,
                 placement: dict | None = None) -> dict:
    """``npu``: the NPU section when it is not one Vela build's (a segmented build's, from
    ``targets.ethosu.segment_report``), with its ``placement`` section."""
    extra = {"placement": placement} if placement is not None else {}
    return {
        "tvmse_version": tvmse.__version__,
        "source": {"path": str(source), "sha256": _sha256(source)},
        "target": target,
        "model": model_section(graph),
        "npu": npu if npu is not None else npu_section(build),
        **extra,
        "verification": {
            "tflite_vs_host_reference": "bit-exact" if build.verified_trials > 0 else "not run",
            "random_input_sets": max(build.verified_trials, 0),
            "interpreter": "ai-edge-litert, TFLite reference kernels",
        },
        "passes": list(rewrites),
        "pipeline": pipeline_section(rewrites, disabled_passes),
        "artifacts": artifacts,
    }


def pipeline_section(rewrites: list[dict], disabled_passes: tuple[str, ...] = ()) -> list[dict]:
    """Every pass of the default pipeline, in order: whether it ran and how many rewrites it made."""
    from tvmse.passes.pipeline import pass_names
    return [{"pass": name, "enabled": name not in disabled_passes,
             "rewrites": sum(1 for r in rewrites if r["pass"] == name and "rewrite" in r)}
            for name in pass_names()]


def summary_line(report: dict) -> str:
    npu, mem = report["npu"], report["npu"]["memory"]
    cache = f"arena cache {npu['arena_cache_size']:,} B, " if npu.get("arena_cache_size") is not None else ""
    return (f"{Path(report['source']['path']).name} → {npu['accelerator']} ({npu['system_config']}, {npu['memory_mode']}, {cache}"
            f"{npu['core_clock_hz'] / 1e6:.0f} MHz): {npu['total_cycles_per_frame']:,} cycles/frame "
            f"({npu['npu_cycles_per_frame']:,} NPU) = {npu['ms_per_frame']:.3f} ms/frame; "
            f"flash {mem['flash_bytes']:,} B, SRAM {mem['sram_bytes']:,} B; "
            f"{len(npu['cpu_fallback_ops'])} ops left on the CPU")


HOP_MS = 1e3 * HOP / SAMPLE_RATE  # one model step per hop: 16 ms

LABELS = [
    ("total cycles", "Vela's estimate of one frame: per op, the larger of compute and memory access, summed"),
    ("NPU cycles", "compute alone (MAC and element-wise units busy)"),
    ("memory wait", "total − NPU cycles: time the NPU waits for data, mostly weights streamed from flash"),
    ("real-time factor", f"time per frame ÷ the {HOP_MS:g} ms hop; below 1 keeps up with live audio"),
]
PASS_LABELS = [
    ("cycles (layer alone)", "Vela's total cycles for the layer compiled on its own, before → after the rewrite"),
    ("row-blocks/G", "one dense FC per block of output rows (the FC output step, 16 on Ethos-U55) over the "
                     "input columns that block uses, taken in granules of G columns"),
    ("grouped/G", "neighbouring row blocks merged into fewer, larger FCs where the cost model finds it cheaper"),
    ("untouched", "the layer as it was"),
]


def slot_ranges(slots: list[int]) -> str:
    """``[0, 1, 2, 4]`` → ``0–2, 4``: a state map as runs of consecutive source slots."""
    runs, start = [], None
    for i, s in enumerate(slots):
        if start is None:
            start = s
        if i + 1 == len(slots) or slots[i + 1] != s + 1:
            runs.append(f"{start}" if start == s else f"{start}–{s}")
            start = None
    return ", ".join(runs) or "none"


def shape_text(shape) -> str:
    return "×".join(map(str, shape)) if shape and all(isinstance(d, int) for d in shape) else str(shape)


def _change_text(record: dict) -> str:
    before, after = record.get("before"), record.get("after")
    if isinstance(before, dict):  # state sizes
        return ", ".join(f"{k} {before[k]} → {(after or {}).get(k, '?')}" for k in before)
    if "rewrite" not in record:
        return f"{shape_text(before)} unchanged"
    if isinstance(after, list) and after and isinstance(after[0], list):  # one shape per tile
        runs = f", {record['gather_runs']} gathered column runs" if "gather_runs" in record else ""
        return f"{shape_text(before)} → {len(after)} dense FCs{runs}"
    return f"{shape_text(before)} → {shape_text(after)}"


def _from_to(record: dict, key: str) -> str:
    before, after = record.get(f"{key}_before"), record.get(f"{key}_after")
    if before is None:
        return ""
    return f"{before:,} → {after:,}" if after is not None else f"{before:,}"


def passes_markdown(report: dict) -> list[str]:
    """Every pass of the pipeline, with its rewrites or "changed nothing", and the labels used."""
    records = report.get("passes", [])
    pipeline = report.get("pipeline") or [{"pass": p, "enabled": True, "rewrites": None}
                                          for p in dict.fromkeys(r["pass"] for r in records)]
    lines = ["## Passes", "", "| pass | layer | change | MACs | cycles (layer alone) | result |",
             "|---|---|---|---:|---:|---|"]
    for entry in pipeline:
        mine = [r for r in records if r["pass"] == entry["pass"]]
        if not entry["enabled"]:
            lines.append(f"| {entry['pass']} | | | | | disabled (`--disable-pass {entry['pass']}`) |")
            continue
        if not any("rewrite" in r for r in mine):
            lines.append(f"| {entry['pass']} | all | | | | changed nothing |")
        for r in mine:
            result = r.get("decision") or r.get("rewrite", "")
            lines.append(f"| {entry['pass']} | {r['layer']} | {_change_text(r)} | {_from_to(r, 'macs')} | "
                         f"{_from_to(r, 'cycles')} | {result} |")
    if any(r["pass"] == "tile_block_sparse" for r in records):
        lines += [""] + [f"- *{name}*: {what}" for name, what in PASS_LABELS]
    return lines


def state_markdown(model: dict) -> list[str]:
    """Which state output feeds which input, and the compiled → source slot map as ranges."""
    if not model["state"]:
        return []
    lines = ["", "Streaming state (feed each output back as the input next frame): " +
             ", ".join(f"`{s['output']}` → `{s['input']}`" for s in model["state"]) + "."]
    moved = [s for s in model["state"] if s["source_slots"] != list(range(s["size"]))]
    if not moved:
        return lines + ["", "Every compiled state slot is its source slot (no pass removed a state channel)."]
    lines += ["", "Compiled state slots hold these source slots (the passes removed dead units; other states "
                  "are unchanged):", ""]
    return lines + [f"- `{s['input']}`: {s['size']} slots ← source {slot_ranges(s['source_slots'])}" for s in moved]


def model_markdown(model: dict) -> list[str]:
    lines = ["## Model", "",
             f"{model['ops']} integer ops, {model['parameters']:,} parameters, "
             f"{model['nonzero_weights']:,} of {model['weights']:,} weights non-zero.", "",
             "| tensor | shape | scale | zero point |", "|---|---|---|---|"]
    for kind in ("inputs", "outputs"):
        lines += [f"| {kind[:-1]} `{t['name']}` | {t['shape']} | {t['scale']:.6g} | {t['zero_point']} |"
                  for t in model[kind]]
    return lines + state_markdown(model)


def import_markdown(report: dict) -> list[str]:
    """How the model was imported: format, state pairs and how each was found, inserted requantizations,
    and for a float model the post-training quantization and its error."""
    imported = report.get("import")
    if not imported:
        return []
    lines = ["", f"Imported from {imported['format']}."]
    if imported["state_pairs"]:
        lines[-1] += " State pairs: " + ", ".join(f"`{p['output']}` → `{p['input']}` ({p['found']})"
                                                 for p in imported["state_pairs"]) + "."
    inserted = imported["requantizations_inserted"]
    if inserted:
        shown = ", ".join(f"`{name}`" for name in inserted[:6]) + (f" and {len(inserted) - 6} more"
                                                                   if len(inserted) > 6 else "")
        lines[-1] += f" {len(inserted)} requantizations inserted by the importer: {shown}."
    q = imported.get("quantization")
    if q:
        lines += ["", f"Quantized here ({q['method']}) over {q['calibration_frames']} calibration frames; "
                      f"int8 vs float ({q['note']}):", ""]
        lines += [f"- `{name}`: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in errors.items())
                  for name, errors in q["int8_vs_float"].items()]
    return lines

def source_layer(name: str) -> str:
    """The source layer a lowered op came from: a tiled FC's pieces (``lstm0/fc/tile3/x``) → ``lstm0/fc``."""
    import re
    return re.sub(r"/tile\d+(/.*)?$", "", name)


def layer_groups(layers: list[dict]) -> list[dict]:
    """Vela's per-op rows summed per source layer, in order of first appearance."""
    groups: dict[str, dict] = {}
    for l in layers:
        g = groups.setdefault(source_layer(l["name"]), {"layer": source_layer(l["name"]), "operators": {},
                                                        "cycles": 0, "npu_cycles": 0, "macs": 0, "weight_bytes": 0})
        g["operators"][l["operator"]] = g["operators"].get(l["operator"], 0) + 1
        g["cycles"] += l["cycles"]
        g["npu_cycles"] += l["npu_cycles"]
        g["macs"] += l["macs"]
        g["weight_bytes"] += l["encoded_weight_bytes"]
    return list(groups.values())


def bound_sentence(npu: dict) -> str:
    total, compute = npu["total_cycles_per_frame"], npu["npu_cycles_per_frame"]
    wait = total - compute
    mem = npu["memory"]
    if "off_chip_flash_used_bytes" not in mem:   # a segmented build: some weights in flash, some in SRAM
        where = "flash and SRAM"
    else:
        where = "off-chip flash" if mem["off_chip_flash_used_bytes"] else "DRAM" if mem["dram_used_bytes"] else "SRAM"
    if wait > compute:
        return (f"Bound by weight traffic: the NPU computes for {compute / total:.0%} of the frame and waits for "
                f"weights streamed from {where} for the rest ({total / compute:.1f}× its compute time).")
    return (f"Bound by compute: memory traffic (weights read from {where}) adds {wait / total:.0%} "
            f"to the NPU's compute time.")


def render_markdown(report: dict) -> str:
    from tvmse.plots import report_plots
    npu, mem = report["npu"], report["npu"]["memory"]
    mhz = npu["core_clock_hz"] / 1e6
    rtf = npu["ms_per_frame"] / HOP_MS
    lines = [
        f"# tvmse compile report: {Path(report['source']['path']).name}", "",
        f"**{npu['ms_per_frame']:.3f} ms per {HOP_MS:g} ms frame (real-time factor {rtf:.3f}) on "
        f"{npu['accelerator']} at {mhz:.0f} MHz: {npu['total_cycles_per_frame']:,} cycles, "
        f"{npu['npu_cycles_per_frame']:,} of them NPU compute. Flash {mem['flash_bytes']:,} B, "
        f"SRAM {mem['sram_bytes']:,} B, {len(npu['cpu_fallback_ops'])} ops left on the CPU.**", "",
        bound_sentence(npu), "",
        f"Target {report['target']}: system config {npu['system_config']}, memory mode {npu['memory_mode']}. "
        f"Figures are {npu['source']} estimates, not measurements.", "",
    ]
    lines += [f"![{title}]({file})" for file, title in report_plots(report)] + [""]
    lines += ["## Per frame", "", "| figure | value |", "|---|---:|",
              f"| total cycles | {npu['total_cycles_per_frame']:,} |",
              f"| NPU cycles | {npu['npu_cycles_per_frame']:,} |",
              f"| memory wait | {npu['total_cycles_per_frame'] - npu['npu_cycles_per_frame']:,} |",
              f"| time at {mhz:.0f} MHz | {npu['ms_per_frame']:.3f} ms |",
              f"| real-time factor | {rtf:.3f} |",
              f"| MACs | {npu['macs_per_frame']:,} |",
              f"| NPU ops after Vela's lowering | {npu['vela_ops']} |",
              f"| ops left on the CPU | {len(npu['cpu_fallback_ops'])} |", ""]
    lines += [f"- *{name}*: {what}" for name, what in LABELS] + [""]
    lines += ["## Memory", "", "| figure | bytes |", "|---|---:|",
              f"| flash (optimised model) | {mem['flash_bytes']:,} |",
              f"| of which encoded weights | {mem['encoded_weight_bytes']:,} |",
              f"| int8 weights before encoding | {mem['original_weight_bytes']:,} |",
              f"| SRAM (arena) | {mem['sram_bytes']:,} |", ""]
    lines += model_markdown(report["model"]) + import_markdown(report) + [""]
    lines += passes_markdown(report) + [""]
    if report.get("placement"):
        from tvmse.targets.ethosu.segment_report import render_markdown as placement_markdown
        lines += placement_markdown(report["placement"]) + [""]
    groups = layer_groups(npu["layers"])
    lines += ["## Per layer (Vela, summed per source layer)", "",
              f"{len(npu['layers'])} Vela ops in {len(groups)} source layers; a tiled FC's pieces and the copies "
              "that gather its inputs are summed into its row.", "",
              "| source layer | Vela ops | total cycles | NPU cycles | memory wait | MACs | encoded weight bytes |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for g in groups:
        ops = ", ".join(f"{n} {op}" if n > 1 else op for op, n in g["operators"].items())
        lines.append(f"| {g['layer']} | {ops} | {g['cycles']:,} | {g['npu_cycles']:,} | "
                     f"{g['cycles'] - g['npu_cycles']:,} | {g['macs']:,} | {g['weight_bytes']:,} |")
    if npu["cpu_fallback_ops"]:
        lines += ["", "CPU fallback ops: " + ", ".join(npu["cpu_fallback_ops"])]
    v = report["verification"]
    lines += ["", "## Verification", "",
              f"TFLite model vs host reference: {v['tflite_vs_host_reference']} on {v['random_input_sets']} "
              f"random input sets ({v['interpreter']}).", "",
              "## Files", ""] + [f"- `{name}`: {what}" for name, what in report["artifacts"].items()]
    return "\n".join(lines) + "\n"
