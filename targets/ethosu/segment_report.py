"""Report sections of a segmented (weight-placement) build: per-segment cycles, SRAM against the budget.

``npu_section`` has the keys of ``tvmse.report.npu_section`` (so the summary line and the per-layer
table read it alike), with figures summed over the segments; ``placement_section`` adds what only a
segmented build has: the segments, the one-time copy of placed weights, the extra per-frame work of
running several NPU invocations, and SRAM used (arena + boundary buffer + placed weights) against
the budget.
"""

from __future__ import annotations

from tvmse.passes.arch import arch_for
from tvmse.targets.ethosu import SegmentedBuild, vela_model


def npu_section(build: SegmentedBuild) -> dict:
    cfg = build.config
    clock = cfg.core_clock_hz
    summaries = [s.vela.summary for s in build.segments]
    total = lambda key: int(sum(float(s.get(key, 0)) for s in summaries))
    return {
        "accelerator": cfg.accelerator,
        "system_config": cfg.system_config,
        "memory_mode": cfg.memory_mode if not build.placement else f"{cfg.memory_mode} + Sram_Only segments",
        "core_clock_hz": clock,
        "source": "Vela performance model, summed over the placement segments",
        "npu_cycles_per_frame": build.npu_cycles,
        "total_cycles_per_frame": build.total_cycles,
        "ms_per_frame": build.total_cycles / clock * 1e3,
        "macs_per_frame": total("nn_macs"),
        "cpu_fallback_ops": [op for s in build.segments for op in s.vela.cpu_operators],
        "vela_ops": sum(len(s.vela.layers) for s in build.segments),
        "memory": {
            "flash_bytes": build.flash_bytes,
            "flash_note": "sum of the segments' Vela-optimised .tflite sizes: command streams, encoded weights, "
                          "scales, metadata",
            "encoded_weight_bytes": total("total_npu_encoded_weights"),
            "original_weight_bytes": total("total_original_weights"),
            "sram_bytes": build.sram_bytes,
        },
        "layers": [{"name": l.name, "operator": l.operator, "cycles": l.op_cycles, "npu_cycles": l.npu_cycles,
                    "macs": l.macs, "encoded_weight_bytes": l.weight_bytes, "segment": s.segment.index}
                   for s in build.segments for l in s.vela.layers],
    }


def placement_section(build: SegmentedBuild, budget: int | None, default_cycles: int | None,
                      how: str, predicted_cycles: int | None = None) -> dict:
    """The placement, per-segment figures and SRAM accounting of ``build``."""
    arch = arch_for(build.config.accelerator)
    invocations = sum(len(vela_model.read(s.vela.optimized_model).npu_calls) for s in build.segments)
    return {
        "how": how,
        "sram_budget_bytes": budget,
        "layers_in_sram": sorted(build.placement),
        "default_cycles_per_frame": default_cycles,
        "predicted_cycles_per_frame": predicted_cycles,
        "achieved_cycles_per_frame": build.total_cycles,
        "segments": [{"index": s.segment.index, "memory_mode": s.memory_mode, "ops": len(s.segment.graph.ops),
                      "layers": s.segment.layers, "cycles": s.vela.total_cycles, "npu_cycles": s.vela.npu_cycles,
                      "arena_bytes": s.arena_bytes, "sram_weight_bytes": s.sram_weight_bytes,
                      "flash_bytes": len(s.vela.optimized_model)} for s in build.segments],
        "sram": {"arena_bytes": build.arena_bytes, "boundary_bytes": build.boundary_bytes,
                 "placed_weight_bytes": build.sram_weight_bytes, "total_bytes": build.sram_bytes,
                 "budget_bytes": budget},
        "one_time_copy": {"bytes": build.sram_weight_bytes,
                          "cycles_estimate": round(build.sram_weight_bytes / arch.flash_bytes_per_cycle),
                          "note": "placed weights copied flash → SRAM once by tvmse_init, at the flash bandwidth "
                                  "of passes/arch.py"},
        "invocation_overhead": {"npu_invocations_per_frame": invocations,
                                "extra_invocations_per_frame": invocations - 1,
                                "boundary_copy_bytes_per_frame": 2 * build.boundary_bytes,
                                "note": "CPU work not in Vela's estimate: one driver call per segment, and each "
                                        "boundary tensor copied out of the arena and back in"},
    }


def render_markdown(section: dict) -> list[str]:
    """Markdown lines of a placement section."""
    sram = section["sram"]
    budget = f"{sram['budget_bytes']:,} B" if sram["budget_bytes"] is not None else "none given"
    lines = ["## Weight placement", "",
             f"{section['how']}. Layers with weights in SRAM: "
             f"{', '.join(f'`{l}`' for l in section['layers_in_sram']) or 'none'}.", "",
             "| figure | value |", "|---|---|"]
    if section["default_cycles_per_frame"] is not None:
        lines.append(f"| default build (every weight in flash) | {section['default_cycles_per_frame']:,} cycles |")
    if section["predicted_cycles_per_frame"] is not None:
        lines.append(f"| predicted by the tuning file | {section['predicted_cycles_per_frame']:,} cycles |")
    copy, inv = section["one_time_copy"], section["invocation_overhead"]
    lines += [f"| achieved | {section['achieved_cycles_per_frame']:,} cycles |",
              f"| SRAM: arena + boundary + placed weights | {sram['arena_bytes']:,} + {sram['boundary_bytes']:,} + "
              f"{sram['placed_weight_bytes']:,} = {sram['total_bytes']:,} B (budget {budget}) |",
              f"| one-time copy at tvmse_init | {copy['bytes']:,} B, ~{copy['cycles_estimate']:,} cycles |",
              f"| NPU invocations per frame | {inv['npu_invocations_per_frame']} "
              f"({inv['extra_invocations_per_frame']} more than one build) |",
              f"| boundary copies per frame (CPU) | {inv['boundary_copy_bytes_per_frame']:,} B |", "",
              "| segment | memory mode | ops | layers | cycles | NPU cycles | arena B | SRAM weights B | flash B |",
              "|---:|---|---:|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {s['index']} | {s['memory_mode']} | {s['ops']} | {', '.join(s['layers']) or '-'} | {s['cycles']:,} | "
              f"{s['npu_cycles']:,} | {s['arena_bytes']:,} | {s['sram_weight_bytes']:,} | {s['flash_bytes']:,} |"
              for s in section["segments"]]
    return lines + [""]
