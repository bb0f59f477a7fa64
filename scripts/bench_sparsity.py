"""Sparsity on Ethos-U55: dense vs Vela alone vs tvmse's structural passes vs the floor, one table.

    python scripts/bench_sparsity.py [--out bench_sparsity.json] [--modes Shared_Sram Sram_Only]
                                     [--models PATH ...] [--synthetic]

Models: TinyLSTM (2 × LSTM(256), 257 bins).
  trained    the bundled QDQ ONNX files (default: every examples/tinylstm_*.onnx; ``--models`` picks
             files, ``--models`` with no path none). The kind and level come from the file name
             (tinylstm_int8 = dense, tinylstm_unit50 = 50 % of the units removed, tinylstm_block80,
             tinylstm_weight90, …); the measured int8 weight sparsity is printed next to it.
  synthetic  (``--synthetic``) the dense model with exact synthetic masks: whole units removed
             (50/75/90 %), 16×32 blocks removed (50/75/90 %).
Each set takes ~3–3.5 min on 2 loaded cores (both: 382 s, Nov 2026). Per model and memory mode
(ethos-u55-128, Ethos_U55_High_End_Embedded):

  (a) dense    the dense int8 model, Vela alone
  (b) vela     the same sparse int8 model, Vela alone (no structural passes)
  (c) tvmse    the default pass pipeline, then Vela (TFLite checked bit-exact vs the host reference)
  (d) floor    Σ over FC layers of max(non-zero MACs / MACs per cycle, encoded weight bytes of (b)
               / weight bandwidth of the memory mode)
  ref          unit models only: the network built at the smaller width from the start (sliced:
               synthetic from the torch model, trained from the QDQ ONNX file; a unit is removed
               when its gate rows, biases, recurrent column and consumer column are all zero).
               It never goes through the passes, so it is an independent check of fold_dead_units.
Speed-ups vs (a) are against the dense model of the same set (trained: tinylstm_int8.onnx).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

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
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KIND_ORDER = {"dense": 0, "weight": 1, "block": 2, "unit": 3, "other": 4}


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


def synthetic_models(seed: int, tmp: Path):
    """(name, kind, integer graph, sliced reference graph or None, info) for the synthetic set."""
    base = lambda: calibrated_tinylstm(TinyLSTMConfig(), seed=seed)
    load = lambda model, name: frontend.load(export_qdq_onnx(model, tmp / name))
    yield "dense", "dense", load(base(), "m.onnx"), None, {}
    for s in (0.5, 0.75, 0.9):
        m = base()
        kept = sparsity.unit_keep(m, s)
        sparsity.apply_masks(m, sparsity.unit_masks_from_keep(m, kept))
        info = {"units_removed": 1 - min(float(k.float().mean()) for k in kept)}
        yield f"unit {int(s * 100)} %", "unit", load(m, "m.onnx"), load(sliced_reference(m, kept), "ref.onnx"), info
    for s in (0.5, 0.75, 0.9):
        m = base()
        sparsity.apply_masks(m, sparsity.compute_masks(m, "block", s))
        yield f"block {int(s * 100)} % (16×32)", "block", load(m, "m.onnx"), None, {"level": s}


# ---- trained (bundled) models --------------------------------------------------------------------
def classify(path: Path) -> tuple[str, float | None]:
    """Kind and nominal level from a bundled file name: tinylstm_int8 → dense, tinylstm_unit50 → unit 0.5."""
    if path.stem == "tinylstm_int8":
        return "dense", None
    m = re.fullmatch(r"tinylstm_(weight|block|unit)(\d+)", path.stem)
    return (m.group(1), int(m.group(2)) / 100) if m else ("other", None)


def bundled_models() -> list[Path]:
    paths = sorted(EXAMPLES.glob("tinylstm_*.onnx"))
    return sorted(paths, key=lambda p: (KIND_ORDER[classify(p)[0]], classify(p)[1] or 0, p.name))


def _fc_tensors(model: onnx.ModelProto) -> dict[str, dict]:
    """Per FC ('lstm0/fc', …, 'out/fc'): the DequantizeLinear nodes of its weight and bias and their arrays."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    fcs = {}
    for name in [n.name[:-2] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.name.endswith("/fc/w")]:
        w, b = nodes[f"{name}/w"], nodes[f"{name}/b"]
        fcs[name] = {"w_node": w, "b_node": b, "w": [inits[i] for i in w.input], "b": [inits[i] for i in b.input]}
    return fcs


def _dims(model: onnx.ModelProto) -> dict[str, list[int]]:
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(model.graph.input) + list(model.graph.output)}


def removed_units(model: onnx.ModelProto) -> list[np.ndarray]:
    """Per LSTM layer, a bool [H]: the unit owns only zeros (4 gate rows, their biases, its recurrent
    column, its column in the consumer) — the definition of a pruned unit in tvmse.models.sparsity."""
    fcs, dims = _fc_tensors(model), _dims(model)
    layers = sum(1 for n in dims if re.fullmatch(r"h\d+", n))
    H = dims["h0"][1]
    removed = []
    for l in range(layers):
        w, b = fcs[f"lstm{l}/fc"]["w"][0], fcs[f"lstm{l}/fc"]["b"][0]  # w: [K + H, 4H] (MatMul layout)
        consumer = fcs[f"lstm{l + 1}/fc" if l + 1 < layers else "out/fc"]["w"][0]
        k = w.shape[0] - H
        owns = ((w != 0).any(0) | (b != 0)).reshape(4, H).any(0) | (w[k:] != 0).any(1) | (consumer[:H] != 0).any(1)
        removed.append(~owns)
    return removed


def slice_units_onnx(path: Path, out: Path) -> tuple[Path, list[int]]:
    """The QDQ ONNX file rebuilt at the smaller width: every removed unit's gate rows, biases,
    quantization parameters, recurrent and consumer columns and state slots sliced away (the
    kept units in their original order). Returns the new file and the kept width per layer."""
    model = onnx.load(str(path))
    fcs, dims = _fc_tensors(model), _dims(model)
    keep = [~r for r in removed_units(model)]
    layers, H = len(keep), dims["h0"][1]
    inits = {i.name: i for i in model.graph.initializer}
    new_inits = []

    def replace(node: onnx.NodeProto, arrays: list[np.ndarray]) -> None:
        for j, a in enumerate(arrays):   # a fresh initializer per use: the exporter shares equal constants
            name = f"{node.input[j]}@{node.name}"
            new_inits.append(numpy_helper.from_array(np.ascontiguousarray(a), name))
            node.input[j] = name

    for l in range(layers):
        fc = fcs[f"lstm{l}/fc"]
        k = fc["w"][0].shape[0] - H
        units = np.flatnonzero(keep[l])
        rows = np.concatenate([units + g * H for g in range(4)])
        cols = np.concatenate([np.arange(k) if l == 0 else np.flatnonzero(keep[l - 1]), units + k])
        w, ws, wz = fc["w"]
        replace(fc["w_node"], [w[np.ix_(cols, rows)], ws[rows], wz[rows]])
        replace(fc["b_node"], [a[rows] for a in fc["b"]])
    fc = fcs["out/fc"]
    w, ws, wz = fc["w"]
    replace(fc["w_node"], [w[np.flatnonzero(keep[-1])], ws, wz])
    used = {i for n in model.graph.node for i in n.input}
    kept_inits = [i for i in model.graph.initializer if i.name in used] + new_inits
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept_inits)
    for v in list(model.graph.input) + list(model.graph.output):
        m = re.fullmatch(r"[hc](\d+)(_out)?", v.name)
        if m:
            v.type.tensor_type.shape.dim[1].dim_value = int(keep[int(m.group(1))].sum())
    model.doc_string += f" (sliced to {[int(k.sum()) for k in keep]} units)"
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out, [int(k.sum()) for k in keep]


def int8_weight_sparsity(model: onnx.ModelProto) -> float:
    ws = [fc["w"][0] for fc in _fc_tensors(model).values()]
    return 1 - sum(int(np.count_nonzero(w)) for w in ws) / sum(w.size for w in ws)


def trained_models(paths: list[Path], tmp: Path):
    """(name, kind, integer graph, sliced reference graph or None, info) for bundled ONNX files."""
    for path in paths:
        kind, level = classify(path)
        proto = onnx.load(str(path))
        H = _dims(proto)["h0"][1]
        info = {"file": str(path), "level": level, "int8_weight_sparsity": int8_weight_sparsity(proto),
                "units_alive": [int((~r).sum()) for r in removed_units(proto)]}
        name = f"{path.stem.removeprefix('tinylstm_')} ({info['int8_weight_sparsity']:.0%} w=0)"
        ref = None
        if kind == "unit":
            ref_path, widths = slice_units_onnx(path, tmp / "ref.onnx")
            info["units_removed"] = 1 - min(widths) / H
            name = f"{path.stem.removeprefix('tinylstm_')} ({'+'.join(map(str, widths))} of {H}+{H} units)"
            ref = frontend.load(ref_path)
        yield name, kind, frontend.load(path), ref, info


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


def table(rows: list[dict], dense: dict) -> list[str]:
    header = ("| model | memory mode | build | NPU cycles | total cycles | flash B | SRAM B | MACs | "
              "total vs (b) | NPU vs (b) | speed-up vs (a) |")
    lines = [header, "|" + "---|" * 3 + "---:|" * 8]
    for r in rows:
        b, a = r["vela"], dense[r["set"], r["mode"]]
        builds = [("(b) Vela alone" if r["kind"] != "dense" else "(a) dense, Vela alone", b),
                  ("(c) tvmse", r["tvmse"])]
        if "ref" in r:
            builds.append(("ref: built at the smaller width", r["ref"]))
        for label, f in builds:
            lines.append(f"| {r['model']} | {r['mode']} | {label} | {f['npu_cycles']:,} | {f['total_cycles']:,} | "
                         f"{f['flash_bytes']:,} | {f['sram_bytes']:,} | {f['macs']:,} | "
                         f"{f['total_cycles'] / b['total_cycles']:.2f}× | {f['npu_cycles'] / b['npu_cycles']:.2f}× | "
                         f"{a['total_cycles'] / f['total_cycles']:.2f}× |")
        lines.append(f"| {r['model']} | {r['mode']} | (d) floor | | {r['floor']:,} | | | | "
                     f"{r['floor'] / b['total_cycles']:.2f}× | | {a['total_cycles'] / max(r['floor'], 1):.2f}× |")
    return lines


def checks(rows: list[dict], dense: dict) -> list[tuple[str, bool, str]]:
    out = []
    for r in rows:
        b, c, a = r["vela"], r["tvmse"], dense[r["set"], r["mode"]]
        what = f"[{r['set']}] {r['model']}, {r['mode']}"
        out.append((f"{what}: tvmse never slower than Vela alone",
                    c["total_cycles"] <= b["total_cycles"], f"{c['total_cycles']:,} vs {b['total_cycles']:,}"))
        if "ref" in r:
            for key in ("npu_cycles", "total_cycles", "flash_bytes"):
                ratio = c[key] / r["ref"][key]
                out.append((f"{what}: {key} within 5 % of the small-width network",
                            abs(ratio - 1) <= 0.05, f"{ratio:.3f}×"))
            removed = r["info"].get("units_removed", 0)
            ok = b["npu_cycles"] >= 3 * c["npu_cycles"]
            if removed >= 0.5 - 1e-9:
                out.append((f"{what}: ≥ 3× fewer NPU cycles than Vela alone ({removed:.0%} units removed)",
                            ok, f"{b['npu_cycles'] / c['npu_cycles']:.2f}×"))
            else:
                out.append((f"{what}: NPU cycles vs Vela alone (info; {removed:.0%} units removed, 3× bar is "
                            f"for ≥ 50 %)", True, f"{b['npu_cycles'] / c['npu_cycles']:.2f}×"))
        if r["kind"] == "block":
            level = r["info"].get("level")
            ratio = c["total_cycles"] / b["total_cycles"]
            if r["mode"] == "Sram_Only" and level is not None and level >= 0.9 - 1e-9:
                out.append((f"{what}: ≤ 0.55× the total cycles of Vela alone", ratio <= 0.55, f"{ratio:.2f}×"))
            elif r["mode"] == "Sram_Only":
                out.append((f"{what}: total cycles vs Vela alone (info; the ≤ 0.55× bar is set at 90 %)", True,
                            f"{ratio:.2f}×"))
            out.append((f"{what}: tvmse / floor (info)", True,
                        f"{c['total_cycles'] / max(r['floor'], 1):.2f}×; speed-up over dense "
                        f"{a['total_cycles'] / c['total_cycles']:.2f}× (study: {STUDY_SPEEDUP}×)"))
        elif r["kind"] in ("unit", "weight"):
            out.append((f"{what}: speed-up over dense (info)", True,
                        f"{a['total_cycles'] / c['total_cycles']:.2f}× (study: {STUDY_SPEEDUP}×)"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench_sparsity.json")
    ap.add_argument("--modes", nargs="+", default=["Shared_Sram", "Sram_Only"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", nargs="*", type=Path, default=None,
                    help="bundled QDQ ONNX models (default: every examples/tinylstm_*.onnx; no path: none)")
    ap.add_argument("--synthetic", action="store_true",
                    help="also benchmark the dense model with exact synthetic masks (doubles the run time)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    paths = bundled_models() if args.models is None else list(args.models)
    if paths and not any(classify(p)[0] == "dense" for p in paths):
        ap.error("--models needs the dense tinylstm_int8.onnx too (speed-ups are against it)")
    if not paths and not args.synthetic:
        ap.error("nothing to benchmark: give --models PATH … and/or --synthetic")
    logger.info("trained models: %s; synthetic: %s", [p.name for p in paths], args.synthetic)
    rows, start = [], time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = [("trained", trained_models(paths, tmp))] if paths else []
        sets += [("synthetic", synthetic_models(args.seed, tmp))] if args.synthetic else []
        for set_name, generator in sets:
            for name, kind, graph, ref_graph, info in generator:
                for mode in args.modes:
                    config = VelaConfig(ACCELERATOR, SYSTEM, mode).resolved()
                    logger.info("[%s] %s, %s (%.0f s)", set_name, name, mode, time.time() - start)
                    row = {"set": set_name, "model": name, "kind": kind, "mode": mode, "info": info,
                           "vela": figures(graph, config, False, tmp, name),
                           "tvmse": figures(graph, config, True, tmp, name)}
                    row["floor"] = floor(graph, row["vela"], mode)
                    if ref_graph is not None:
                        row["ref"] = figures(ref_graph, config, False, tmp, name)
                    rows.append(row)
    dense = {(r["set"], r["mode"]): r["vela"] for r in rows if r["kind"] == "dense"}
    for set_name in dict.fromkeys(r["set"] for r in rows):
        print(f"{set_name} models:\n")
        print("\n".join(table([r for r in rows if r["set"] == set_name], dense)))
        print()
    for what, ok, detail in checks(rows, dense):
        print(f"{'PASS' if ok else 'FAIL'}  {what}: {detail}")
    print(f"\n{len(rows)} model × mode rows in {time.time() - start:.0f} s; "
          f"every (c) TFLite checked bit-exact against the host reference")
    Path(args.out).write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
