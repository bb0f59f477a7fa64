"""A study's results: one row per trial against the dense reference, the Pareto fronts, and the files.

Rows (:func:`result_row`) compare a trial's measurements with the dense run's: quality deltas against the
**fp32** dense model (the float checkpoint every trial starts from), speed-up against the **dense int8**
build in the same memory mode, and compression as fp32 dense bytes (4 B per parameter) over the trial's Vela
flash bytes (the whole optimised model: command stream, encoded weights, scales) in Shared_Sram.

A point is on a Pareto front when no other point is at least as good on both axes (gain up, SDR drop down)
and better on one. :func:`write_results` writes ``results.json``, ``results.csv``, ``pareto_speed.png``,
``pareto_memory.png`` and ``study.md``.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

from tvmse.study.trial import BUDGET_PHASE, atomic_write_json

#: the study's two headline points: (gain, SDR drop in dB, what)
PAPER_SPEED = (6.7, 0.59, "study: block pruning 6.7× faster, −0.59 dB")
PAPER_MEMORY = (42.0, 0.10, "study: weight pruning 42× smaller, −0.1 dB")
FP32_BYTES_PER_PARAM = 4
MODES = ("Shared_Sram", "Sram_Only")

CSV_COLUMNS = ["id", "name", "structure", "sparsity", "unit_sparsity", "steps", "weight_sparsity", "units_alive",
               "sdr", "si_sdr", "pesq", "stoi", "sdr_drop", "si_sdr_drop", "pesq_drop", "stoi_drop",
               "sdr_drop_vs_int8",
               "flash_bytes", "sram_bytes", "compression", "compression_ideal",
               "cycles_Shared_Sram", "cycles_Sram_Only", "speedup_Shared_Sram", "speedup_Sram_Only",
               "sram_budget", "cycles_budget", "sram_bytes_budget", "speedup_budget"]


def result_row(trial: dict, dense: dict) -> dict:
    """The table row of one trial's measurements (``trial``) against the dense run's (``dense``)."""
    fp32 = dense["evaluate_fp32"]["enhanced"]
    quality = trial["evaluate"]["enhanced"]
    train = trial["train"]
    fp32_bytes = FP32_BYTES_PER_PARAM * dense["train"]["params"]
    ideal_bytes = train["nonzero_weights"] + 4 * (train["params"] - train["weights"])  # int8 weights, int32 biases
    row = {"id": trial["id"], "name": trial["name"], "structure": trial["structure"],
           "sparsity": trial["sparsity"], "unit_sparsity": trial["unit_sparsity"], "steps": train["steps"],
           "weight_sparsity": round(train["weight_sparsity"], 4), "units_alive": train["units_alive"]}
    for metric, value in quality.items():
        row[metric] = value
        row[f"{metric}_drop"] = fp32[metric] - value  # positive: worse than fp32
    # the int8 dense model trained on past the fp32 snapshot and may score above it: its drop is shown too
    row["sdr_drop_vs_int8"] = dense["evaluate"]["enhanced"]["sdr"] - quality["sdr"]
    shared = trial["compile:Shared_Sram"]
    row.update(flash_bytes=shared["flash_bytes"], sram_bytes=shared["sram_bytes"],
               compression=fp32_bytes / shared["flash_bytes"], compression_ideal=fp32_bytes / ideal_bytes)
    for mode in MODES:
        key = f"compile:{mode}"
        if key in trial and key in dense:
            row[f"cycles_{mode}"] = trial[key]["total_cycles"]
            row[f"speedup_{mode}"] = dense[key]["total_cycles"] / trial[key]["total_cycles"]
    if BUDGET_PHASE in trial and BUDGET_PHASE in dense:  # against the dense model placed within the same budget
        placed = trial[BUDGET_PHASE]
        row.update(sram_budget=placed["sram_budget"], cycles_budget=placed["total_cycles"],
                   sram_bytes_budget=placed["sram_bytes"],
                   speedup_budget=dense[BUDGET_PHASE]["total_cycles"] / placed["total_cycles"])
    return row


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (gain, drop) that no other point dominates (gain ≥ and drop ≤, one strictly),
    in order of rising gain."""
    front = []
    for i, (gain, drop) in enumerate(points):
        dominated = any((g >= gain and d <= drop) and (g > gain or d < drop)
                        for j, (g, d) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], points[i][1]))


def fronts(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows on the speed front (speed-up in Shared_Sram) and on the memory front (compression)."""
    out = {}
    for kind, key in (("speed", "speedup_Shared_Sram"), ("memory", "compression")):
        usable = [r for r in rows if key in r and "sdr_drop" in r]
        out[kind] = [usable[i] for i in pareto_front([(r[key], r["sdr_drop"]) for r in usable])]
    return out


def beats(row: dict, point: tuple[float, float, str], key: str) -> bool:
    """Whether ``row`` matches or beats a headline point: at least its gain at most its drop."""
    return row.get(key, 0) >= point[0] and row.get("sdr_drop", float("inf")) <= point[1]


# ---- files ---------------------------------------------------------------------------------------
def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k, "")) for k in CSV_COLUMNS})
    return buffer.getvalue()


def _csv_value(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "/".join(map(str, value))
    return value


def write_results(out: Path, rows: list[dict], dense: dict, header: dict) -> None:
    """results.json, results.csv, the two Pareto plots and study.md in ``out``."""
    front = fronts(rows)
    atomic_write_json(out / "results.json", {**header, "dense": dense, "rows": rows,
                                             "pareto": {k: [r["id"] for r in v] for k, v in front.items()}})
    _atomic_text(out / "results.csv", to_csv(rows))
    plot_front(out / "pareto_speed.png", rows, front["speed"], "speedup_Shared_Sram",
               "speed-up vs dense int8 (ethos-u55-128, Shared_Sram, Vela cycles)", PAPER_SPEED)
    plot_front(out / "pareto_memory.png", rows, front["memory"], "compression",
               "compression vs fp32 dense (Vela flash bytes)", PAPER_MEMORY)
    _atomic_text(out / "study.md", study_markdown(rows, dense, header, front))


def plot_front(path: Path, rows: list[dict], front: list[dict], key: str, xlabel: str,
               paper: tuple[float, float, str]) -> None:
    from tvmse.plots import _pyplot
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for structure in sorted({r["structure"] for r in rows}):
        chosen = [r for r in rows if r["structure"] == structure and key in r]
        ax.scatter([r[key] for r in chosen], [r["sdr_drop"] for r in chosen], label=structure, s=30)
        for r in chosen:
            ax.annotate(r["name"], (r[key], r["sdr_drop"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if front:
        ax.plot([r[key] for r in front], [r["sdr_drop"] for r in front], "k--", lw=1, label="Pareto front")
    ax.scatter([paper[0]], [paper[1]], marker="*", s=160, c="red", label=paper[2], zorder=5)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter
    for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis(FuncFormatter(lambda value, _: f"{value:g}×"))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("SDR drop vs fp32 dense (dB, lower is better)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path_tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(path_tmp, dpi=100)
    plt.close(fig)
    os.replace(path_tmp, path)


def study_markdown(rows: list[dict], dense: dict, header: dict, front: dict[str, list[dict]]) -> str:
    fp32, int8 = dense["evaluate_fp32"]["enhanced"], dense["evaluate"]["enhanced"]
    ev = dense["evaluate"]["evaluation"]
    lines = [f"# Sparsity study: preset `{header['preset']}`", "",
             f"{len(rows)} trials, each fine-tuned from the dense float model, exported as int8 QDQ ONNX, compiled by "
             f"tvmse for ethos-u55-128 (Ethos_U55_High_End_Embedded) in {' and '.join(header['memory_modes'])}, "
             f"and scored on the dev mixture set (n={ev['n']}, seed {ev['seed']}, full utterances; the int8 ONNX "
             "step in onnxruntime). Drops are fp32 dense − trial (positive: worse; the table gives the change, trial − "
             "fp32, and trial − dense int8); speed-ups are dense int8 cycles / "
             "trial cycles (Vela's performance model); compression is fp32 dense bytes (4 B/parameter) / Vela flash "
             "bytes (ideal: int8 non-zero weights + int32 biases).", "",
             f"Reference: fp32 dense SDR {fp32['sdr']:.2f} dB; dense int8 SDR {int8['sdr']:.2f} dB, "
             f"{dense['compile:Shared_Sram']['total_cycles']:,} cycles/frame Shared_Sram, "
             f"flash {dense['compile:Shared_Sram']['flash_bytes']:,} B; "
             f"{dense['train']['params']:,} parameters (hidden {dense['train']['hidden']}).", "",
             f"Command: `{header['command']}`", "",
             "| trial | structure | steps | weights zero | units alive per layer | SDR | ΔSDR vs fp32 | vs int8 | ΔSI-SDR "
             "| ΔPESQ | ΔSTOI "
             "| flash B | SRAM B | compression (ideal) | cycles Shared_Sram | speed-up | cycles Sram_Only | speed-up |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["structure"], r["unit_sparsity"], r["sparsity"])):
        cells = [r["name"], r["structure"], f"{r['steps']:,}", f"{r['weight_sparsity']:.1%}",
                 ", ".join(map(str, r["units_alive"])), f"{r['sdr']:.2f}", f"{-r['sdr_drop']:+.2f}",
                 f"{0.0 - r['sdr_drop_vs_int8']:+.2f}"]
        cells += [f"{-r[m + '_drop']:+.3f}" if m + "_drop" in r else "" for m in ("si_sdr", "pesq", "stoi")]
        cells += [f"{r['flash_bytes']:,}", f"{r['sram_bytes']:,}",
                  f"{r['compression']:.1f}× ({r['compression_ideal']:.1f}×)"]
        for mode in MODES:
            cells += ([f"{r[f'cycles_{mode}']:,}", f"{r[f'speedup_{mode}']:.2f}×"] if f"cycles_{mode}" in r
                      else ["", ""])
        lines.append("| " + " | ".join(cells) + " |")
    placed = [r for r in rows if "cycles_budget" in r]
    if placed:
        lines += ["", f"Shared_Sram with the weights of the layers that gain most placed in SRAM within "
                  f"{placed[0]['sram_budget']:,} B (`tvmse compile --sram-budget`); speed-up against the dense int8 "
                  "model placed within the same budget:", "",
                  "| trial | cycles | SRAM B | speed-up |", "|---|---:|---:|---:|"]
        lines += [f"| {r['name']} | {r['cycles_budget']:,} | {r['sram_bytes_budget']:,} | {r['speedup_budget']:.2f}× |"
                  for r in placed]
    if header.get("unfinished"):
        lines += ["", f"Not finished yet (the same command completes them): {', '.join(header['unfinished'])}."]
    lines += ["", "## Pareto fronts", "",
              "![SDR drop vs speed-up](pareto_speed.png)", "", "![SDR drop vs compression](pareto_memory.png)", ""]
    for kind, key, unit_name in (("speed", "speedup_Shared_Sram", "faster"), ("memory", "compression", "smaller")):
        named = ", ".join(f"{r['name']} ({r[key]:.1f}× {unit_name}, {-r['sdr_drop']:+.2f} dB)" for r in front[kind])
        lines.append(f"- {kind} front: {named or 'none'}")
    lines += ["", "## Against the study's headline", ""]
    for point, key, unit_name in ((PAPER_MEMORY, "compression", "smaller"), (PAPER_SPEED, "speedup_Shared_Sram",
                                                                             "faster")):
        winners = [r for r in rows if beats(r, point, key)]
        best = max((r for r in rows if r["sdr_drop"] <= point[1]), key=lambda r: r.get(key, 0), default=None)
        verdict = (f"matched or beaten by {', '.join(r['name'] for r in winners)}" if winners else "not reached")
        lines.append(f"- {point[2]}: {verdict}"
                     + (f"; best within −{point[1]} dB: {best['name']}, {best[key]:.1f}× {unit_name} "
                        f"({-best['sdr_drop']:+.2f} dB)" if best else f"; no trial within −{point[1]} dB"))
    return "\n".join(lines) + "\n"
