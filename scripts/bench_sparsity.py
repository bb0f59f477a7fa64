"""Sparsity on Ethos-U55: dense vs Vela alone vs tvmse's structural passes vs the floor, one table.

    python scripts/bench_sparsity.py [--out bench_sparsity.json] [--modes Shared_Sram Sram_Only]

Models: TinyLSTM (2 × LSTM(256), 257 bins) with exact synthetic masks until trained sparse models
exist: whole units removed (50/75/90 %), 16×32 blocks removed (50/75/90 %). Per model and memory
mode (ethos-u55-128, Ethos_U55_High_End_Embedded):

  (a) dense    the dense int8 model, Vela alone
  (b) vela     the same sparse int8 model, Vela alone (no structural passes)
  (c) tvmse    the default pass pipeline, then Vela (TFLite checked bit-exact vs the host reference)
  (d) floor    Σ over FC layers of max(non-zero MACs / MACs per cycle, encoded weight bytes of (b)
               / weight bandwidth of the memory mode)
  ref          unit models only: the network built at the smaller width from the start (sliced)
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tvmse import frontend
from tvmse.models import TinyLSTM, TinyLSTMConfig, sparsity
from tvmse.models.export import export_qdq_onnx
from tvmse.passes import cost_model
from tvmse.passes.arch import arch_for
from tvmse.passes.pipeline import run_pipeline
from tvmse.targets.ethosu.lower_to_tflite import check_against_host, lower_to_tflite
from tvmse.targets.ethosu.vela_driver import VelaConfig, compile_tflite
from tvmse.targets.host import HostReference
from tvmse.testing import calibrated_tinylstm

logger = logging.getLogger("bench_sparsity")
ACCELERATOR, SYSTEM = "ethos-u55-128", "Ethos_U55_High_End_Embedded"
STUDY_SPEEDUP = 6.7


def sliced_reference(model: TinyLSTM, kept: list[torch.Tensor]) -> TinyLSTM:
    """The same network at the kept width, built directly (the 'trained small from the start' shape)."""
    cfg = model.config
    width = int(kept[0].sum())
    assert all(int(k.sum()) == width for k in kept)
    small = TinyLSTM(TinyLSTMConfig(cfg.n_bins, width, cfg.layers))
    H = cfg.hidden
    with torch.no_grad():
        for l in range(cfg.layers):
            keep = torch.nonzero(kept[l]).flatten()
            rows = torch.cat([keep + g * H for g in range(4)])
            k_in = cfg.n_bins if l == 0 else H
            cols_in = torch.arange(k_in) if l == 0 else torch.nonzero(kept[l - 1]).flatten()
            cols = torch.cat([cols_in, keep + k_in])
            small.cell_weights[l].copy_(model.cell_weights[l][rows][:, cols])
            small.cell_biases[l].copy_(model.cell_biases[l][rows])
        small.out_weight.copy_(model.out_weight[:, torch.nonzero(kept[-1]).flatten()])
        small.out_bias.copy_(model.out_bias)
        small.act_max.copy_(model.act_max)
    small.quantized = True
    return small


def models(seed: int):
    """(name, kind, torch model, sliced reference or None) for every benchmarked model."""
    base = lambda: calibrated_tinylstm(TinyLSTMConfig(), seed=seed)
    yield "dense", "dense", base(), None
    for s in (0.5, 0.75, 0.9):
        m = base()
        kept = sparsity.unit_keep(m, s)
        sparsity.apply_masks(m, sparsity.unit_masks_from_keep(m, kept))
        yield f"unit {int(s * 100)} %", "unit", m, sliced_reference(m, kept)
    for s in (0.5, 0.75, 0.9):
        m = base()
        sparsity.apply_masks(m, sparsity.compute_masks(m, "block", s))
        yield f"block {int(s * 100)} % (16×32)", "block", m, None


def figures(graph, config, passes: bool, tmp: Path, name: str, verify: int = 3) -> dict:
    records = []
    if passes:
        graph, records = run_pipeline(graph, (), config)
    tflite = lower_to_tflite(graph, description=name)
    if passes and verify:
        check_against_host(graph, tflite, HostReference(graph), n_trials=verify)
    vela = compile_tflite(tflite, config, name="bench")
    return {"npu_cycles": vela.npu_cycles, "total_cycles": vela.total_cycles, "flash_bytes": len(vela.optimized_model),
            "sram_bytes": int(round(float(vela.summary.get("sram_memory_used", 0)) * 1024)), "macs": graph.macs(),
            "layers": {l.name: l.weight_bytes for l in vela.layers}, "passes": records,
            "verified": bool(passes and verify), "state": {t.name: t.shape[1] for t in graph.inputs}}


def floor(graph, vela_b: dict, mode: str) -> int:
    arch = arch_for(ACCELERATOR)
    total = 0.0
    for op in graph.ops:
        if op.kind == "fully_connected":
            total += cost_model.floor_cycles(arch, mode, int(np.count_nonzero(op.consts["weight"])),
                                             vela_b["layers"].get(op.name, 0))
    return int(round(total))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench_sparsity.json")
    ap.add_argument("--modes", nargs="+", default=["Shared_Sram", "Sram_Only"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    rows, start = [], time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, kind, model, ref in models(args.seed):
            graph = frontend.load(export_qdq_onnx(model, tmp / "m.onnx"))
            ref_graph = frontend.load(export_qdq_onnx(ref, tmp / "ref.onnx")) if ref is not None else None
            for mode in args.modes:
                config = VelaConfig(ACCELERATOR, SYSTEM, mode).resolved()
                logger.info("%s, %s", name, mode)
                row = {"model": name, "kind": kind, "mode": mode,
                       "vela": figures(graph, config, False, tmp, name),
                       "tvmse": figures(graph, config, True, tmp, name)}
                row["floor"] = floor(graph, row["vela"], mode)
                if ref_graph is not None:
                    row["ref"] = figures(ref_graph, config, False, tmp, name)
                rows.append(row)
    dense = {r["mode"]: r["vela"] for r in rows if r["kind"] == "dense"}
    header = ("| model | memory mode | build | NPU cycles | total cycles | flash B | SRAM B | MACs | "
              "total vs (b) | NPU vs (b) | speed-up vs (a) |")
    lines = [header, "|" + "---|" * 3 + "---:|" * 8]
    for r in rows:
        b = r["vela"]
        builds = [("(b) Vela alone" if r["kind"] != "dense" else "(a) dense, Vela alone", b),
                  ("(c) tvmse", r["tvmse"])]
        if "ref" in r:
            builds.append(("ref: built at the smaller width", r["ref"]))
        for label, f in builds:
            lines.append(f"| {r['model']} | {r['mode']} | {label} | {f['npu_cycles']:,} | {f['total_cycles']:,} | "
                         f"{f['flash_bytes']:,} | {f['sram_bytes']:,} | {f['macs']:,} | "
                         f"{f['total_cycles'] / b['total_cycles']:.2f}× | {f['npu_cycles'] / b['npu_cycles']:.2f}× | "
                         f"{dense[r['mode']]['total_cycles'] / f['total_cycles']:.2f}× |")
        lines.append(f"| {r['model']} | {r['mode']} | (d) floor | | {r['floor']:,} | | | | "
                     f"{r['floor'] / b['total_cycles']:.2f}× | | {dense[r['mode']]['total_cycles'] / max(r['floor'], 1):.2f}× |")
    print("\n".join(lines))
    print()
    checks = []
    for r in rows:
        b, c = r["vela"], r["tvmse"]
        checks.append((f"{r['model']}, {r['mode']}: tvmse never slower than Vela alone",
                       c["total_cycles"] <= b["total_cycles"], f"{c['total_cycles']:,} vs {b['total_cycles']:,}"))
        if "ref" in r:
            for key in ("total_cycles", "flash_bytes"):
                ratio = c[key] / r["ref"][key]
                checks.append((f"{r['model']}, {r['mode']}: {key} within 5 % of the small-width network",
                               abs(ratio - 1) <= 0.05, f"{ratio:.3f}×"))
            checks.append((f"{r['model']}, {r['mode']}: ≥ 3× fewer NPU cycles than Vela alone",
                           b["npu_cycles"] >= 3 * c["npu_cycles"], f"{b['npu_cycles'] / c['npu_cycles']:.2f}×"))
        if r["kind"] == "block" and r["model"].startswith("block 90") and r["mode"] == "Sram_Only":
            ratio = c["total_cycles"] / b["total_cycles"]
            checks.append((f"{r['model']}, Sram_Only: ≤ 0.55× the total cycles of Vela alone", ratio <= 0.55,
                           f"{ratio:.2f}×"))
        if r["kind"] == "block":
            checks.append((f"{r['model']}, {r['mode']}: tvmse / floor (info)", True,
                           f"{c['total_cycles'] / max(r['floor'], 1):.2f}×; speed-up over dense "
                           f"{dense[r['mode']]['total_cycles'] / c['total_cycles']:.2f}× (study: {STUDY_SPEEDUP}×)"))
    for what, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {what}: {detail}")
    print(f"\n{len(rows)} model × mode rows in {time.time() - start:.0f} s; "
          f"every (c) TFLite checked bit-exact against the host reference")
    Path(args.out).write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
