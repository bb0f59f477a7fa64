"""PNG plots: the compile report's (cycles per layer, memory) and the spectrograms of ``tvmse enhance``.

Every use of matplotlib is here (headless: the Agg backend). The report's plot files are named by
:func:`report_plots`, which the Markdown renderers call to link them and :func:`write_report_plots`
calls to draw them, so report.md and its PNGs cannot disagree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CYCLES_PNG, MEMORY_PNG = "report_cycles.png", "report_memory.png"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def report_plots(report: dict) -> list[tuple[str, str]]:
    """(file name, title) of the plots that go with ``report``."""
    if report["target"] == "cortex-m55":
        plots = [(MEMORY_PNG, "Cortex-M55 memory")]
        if report["cpu"].get("qemu"):
            plots.insert(0, (CYCLES_PNG, "instructions per frame, per source layer (QEMU)"))
        return plots
    return [(CYCLES_PNG, "cycles per frame, per source layer: NPU compute vs memory wait"),
            (MEMORY_PNG, "flash and SRAM")]


def write_report_plots(folder: Path, report: dict) -> None:
    plt = _pyplot()
    for file, title in report_plots(report):
        draw = _CPU_PLOTS[file] if report["target"] == "cortex-m55" else _NPU_PLOTS[file]
        fig = draw(plt, report)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(folder / file, dpi=100)
        plt.close(fig)


def _barh(plt, labels, stacks: list[tuple[str, list[float]]], xlabel: str):
    """Horizontal stacked bars, first label at the top."""
    fig, ax = plt.subplots(figsize=(8, 0.25 * len(labels) + 1.4))
    left = np.zeros(len(labels))
    for name, values in stacks:
        ax.barh(labels, values, left=left, label=name)
        left += np.asarray(values, float)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", labelsize=7)
    if len(stacks) > 1:
        ax.legend(fontsize=8, loc="lower right")
    return fig


def _npu_cycles(plt, report):
    from tvmse.report import layer_groups
    groups = layer_groups(report["npu"]["layers"])
    return _barh(plt, [g["layer"] for g in groups],
                 [("NPU compute", [g["npu_cycles"] for g in groups]),
                  ("memory wait (weights from memory)", [g["cycles"] - g["npu_cycles"] for g in groups])],
                 "cycles per frame (Vela estimate)")


def _npu_memory(plt, report):
    mem = report["npu"]["memory"]
    other = mem["flash_bytes"] - mem["encoded_weight_bytes"]
    fig, (flash, sram) = plt.subplots(1, 2, figsize=(8, 2.2), gridspec_kw={"width_ratios": [3, 1]})
    flash.barh(["flash"], [mem["encoded_weight_bytes"]], label="encoded weights")
    flash.barh(["flash"], [other], left=[mem["encoded_weight_bytes"]], label="command stream, scales, metadata")
    flash.set_xlabel("bytes")
    flash.legend(fontsize=7, loc="lower right")
    sram.bar(["SRAM arena"], [mem["sram_bytes"]], color="tab:green")
    sram.set_ylabel("bytes")
    return fig


def _cpu_instructions(plt, report):
    from tvmse.targets.cortex_m.compile_cpu import kernel_groups
    groups = kernel_groups(report["cpu"]["qemu"]["kernels"])
    return _barh(plt, [g["op"] for g in groups], [("instructions", [g["instructions_per_frame"] for g in groups])],
                 "executed instructions per frame (QEMU)")


def _cpu_memory(plt, report):
    cpu = report["cpu"]
    sizes = (cpu.get("qemu") or {}).get("sizes")
    fig, ax = plt.subplots(figsize=(8, 2.2))
    names = ["arena", "state"] + (["code (text)", "weights, tables (rodata)", "stack"] if sizes else [])
    values = [cpu["arena_bytes"], cpu["state_bytes"]] + (
        [sizes["text"], sizes["rodata"], sizes["stack_high_water"]] if sizes else [])
    ax.barh(names, values)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("bytes (log scale)")
    return fig


_NPU_PLOTS = {CYCLES_PNG: _npu_cycles, MEMORY_PNG: _npu_memory}
_CPU_PLOTS = {CYCLES_PNG: _cpu_instructions, MEMORY_PNG: _cpu_memory}


def spectrogram_plot(path: Path, noisy_spectrum: np.ndarray, enhanced_spectrum: np.ndarray, mask: np.ndarray,
                     sample_rate: int, hop: int, title: str) -> None:
    """Noisy and enhanced log-power spectrograms and the mask, frames × bins arrays, one PNG."""
    plt = _pyplot()
    seconds = len(mask) * hop / sample_rate
    extent = [0, seconds, 0, sample_rate / 2000]
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    for ax, data, name, kw in [
            (axes[0], _db(noisy_spectrum), "noisy (dB)", {"vmin": -80, "vmax": 30}),
            (axes[1], _db(enhanced_spectrum), "enhanced (dB)", {"vmin": -80, "vmax": 30}),
            (axes[2], mask, "mask", {"vmin": 0, "vmax": 1})]:
        image = ax.imshow(np.asarray(data).T, origin="lower", aspect="auto", extent=extent, **kw)
        ax.set_ylabel("kHz")
        ax.set_title(name, fontsize=9)
        fig.colorbar(image, ax=ax, pad=0.01)
    axes[-1].set_xlabel("seconds")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _db(spectrum: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.abs(spectrum) ** 2 + 1e-12)
