"""The compile report: one JSON document and its Markdown rendering.

Every speed figure names the accelerator, system config, memory mode and clock it belongs to
(Vela's performance model, not a measurement on silicon); memory figures name their area.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

import tvmse
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
        "state": [{"input": i, "output": o, "size": int(np.prod(tensors[i].shape)),
                   "source_slots": graph.state_slots.get(i, list(range(int(np.prod(tensors[i].shape)))))}
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
                 rewrites: list[dict] = (), npu: dict | None = None, placement: dict | None = None) -> dict:
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
        "artifacts": artifacts,
    }


def summary_line(report: dict) -> str:
    npu, mem = report["npu"], report["npu"]["memory"]
    return (f"{Path(report['source']['path']).name} → {npu['accelerator']} ({npu['system_config']}, {npu['memory_mode']}, "
            f"{npu['core_clock_hz'] / 1e6:.0f} MHz): {npu['total_cycles_per_frame']:,} cycles/frame "
            f"({npu['npu_cycles_per_frame']:,} NPU) = {npu['ms_per_frame']:.3f} ms/frame; "
            f"flash {mem['flash_bytes']:,} B, SRAM {mem['sram_bytes']:,} B; "
            f"{len(npu['cpu_fallback_ops'])} ops left on the CPU")


def render_markdown(report: dict) -> str:
    npu, mem, model = report["npu"], report["npu"]["memory"], report["model"]
    lines = [
        f"# tvmse compile report: {Path(report['source']['path']).name}", "",
        f"Target **{report['target']}**: accelerator {npu['accelerator']}, system config {npu['system_config']}, "
        f"memory mode {npu['memory_mode']}, NPU clock {npu['core_clock_hz'] / 1e6:.0f} MHz. "
        f"Figures are {npu['source']} estimates.", "",
        "## Per frame", "",
        "| figure | value |", "|---|---|",
        f"| total cycles | {npu['total_cycles_per_frame']:,} |",
        f"| NPU cycles | {npu['npu_cycles_per_frame']:,} |",
        f"| time at {npu['core_clock_hz'] / 1e6:.0f} MHz | {npu['ms_per_frame']:.3f} ms |",
        f"| MACs | {npu['macs_per_frame']:,} |",
        f"| NPU ops after Vela's lowering | {npu['vela_ops']} |",
        f"| ops left on the CPU | {len(npu['cpu_fallback_ops'])} |", "",
        "## Memory", "",
        "| figure | bytes |", "|---|---|",
        f"| flash (optimised model) | {mem['flash_bytes']:,} |",
        f"| encoded weights (of which) | {mem['encoded_weight_bytes']:,} |",
        f"| int8 weights before encoding | {mem['original_weight_bytes']:,} |",
        f"| SRAM (arena) | {mem['sram_bytes']:,} |", "",
        "## Model", "",
        f"{model['ops']} integer ops, {model['parameters']:,} parameters, "
        f"{model['nonzero_weights']:,} of {model['weights']:,} weights non-zero.", "",
        "| tensor | shape | scale | zero point |", "|---|---|---|---|",
    ]
    for kind in ("inputs", "outputs"):
        lines += [f"| {kind[:-1]} `{t['name']}` | {t['shape']} | {t['scale']:.6g} | {t['zero_point']} |"
                  for t in model[kind]]
    if model["state"]:
        lines += ["", "Streaming state (feed each output back as the input next frame): " +
                  ", ".join(f"`{s['output']}` → `{s['input']}`" for s in model["state"]) + "."]
    if any(s["source_slots"] != list(range(s["size"])) for s in model["state"]):
        lines += ["", "Compiled state slots → source slots (the passes removed dead units): " + "; ".join(
            f"`{s['input']}` {s['size']} slots ← {s['source_slots']}" for s in model["state"]) + "."]
    if report.get("passes"):
        lines += ["", "## Rewrites", "", "| pass | layer | before | after | MACs before | MACs after | "
                  "cycles before | cycles after | decision |", "|---|---|---|---|---:|---:|---:|---:|---|"]
        lines += [f"| {r['pass']} | {r['layer']} | {r.get('before')} | {r.get('after')} | {r.get('macs_before', '')} | "
                  f"{r.get('macs_after', '')} | {r.get('cycles_before', '')} | {r.get('cycles_after', '')} | "
                  f"{r.get('decision', r.get('rewrite', ''))} |" for r in report["passes"]]
    if report.get("placement"):
        from tvmse.targets.ethosu.segment_report import render_markdown as placement_markdown
        lines += [""] + placement_markdown(report["placement"])
    lines += ["", "## Per layer (Vela)", "",
              "| op | Vela operator | cycles | NPU cycles | MACs | encoded weight bytes |",
              "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {l['name']} | {l['operator']} | {l['cycles']:,} | {l['npu_cycles']:,} | "
              f"{l['macs']:,} | {l['encoded_weight_bytes']:,} |" for l in npu["layers"]]
    if npu["cpu_fallback_ops"]:
        lines += ["", "CPU fallback ops: " + ", ".join(npu["cpu_fallback_ops"])]
    v = report["verification"]
    lines += ["", "## Verification", "",
              f"TFLite model vs host reference: {v['tflite_vs_host_reference']} on {v['random_input_sets']} "
              f"random input sets ({v['interpreter']}).", "",
              "## Files", ""] + [f"- `{name}`: {what}" for name, what in report["artifacts"].items()]
    return "\n".join(lines) + "\n"
