"""How dense are the tiles of block-sparse FCs, i.e. what could reordering units still gain?

For each FC of a bundled model (after the fold, as compiled) and each tiling candidate of
``passes.tile_block_sparse`` (Ethos-U55-128): MACs the tiles compute, non-zero weights inside them and
their density. A unit reordering can at best raise a tiling's density to 1: the MACs it could remove are
``macs − nonzero``. ``--reordered`` adds the FCs that ``passes.reorder_units`` changes, reordered.

With ``--vela``, what ``passes.reorder_units`` (ragged blocks last) actually gives: Vela's cycles per frame of
the whole network, every weight in flash (Shared_Sram) or in SRAM (Sram_Only), with the default compile's
tiling decisions: the default build, the units reordered with the state gathered back at the boundary (the
tuning decision: public state layout unchanged), the units reordered with the state carried in internal
order (``carry_state``: no boundary gathers, the compiled state layout moves), and the aligned fold.

    .venv/bin/python scripts/bench_tile_density.py [--models tinylstm_block80,tinylstm_block50] [--reordered] [--vela]
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from tvmse.compile import load_model
    from tvmse.passes import tile_block_sparse
    from tvmse.passes.arch import arch_for
    from tvmse.passes.fold_dead_units import FoldDeadUnits
    from tvmse.passes.reorder_units import ReorderUnits

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="tinylstm_block80,tinylstm_block50")
    p.add_argument("--accelerator", default="ethos-u55-128")
    p.add_argument("--reordered", action="store_true", help="also the FCs of layers reorder_units reorders (ragged "
                   "blocks last), where it does")
    p.add_argument("--vela", action="store_true", help="also build each model reordered (Vela, ~1 min per model)")
    args = p.parse_args()
    arch = arch_for(args.accelerator)
    print(f"# {args.accelerator}; tilings of passes.tile_block_sparse.candidates (both memory modes' DP cut)")
    print("| model | FC | tiling (mode) | MACs | non-zero weights in tiles | density |")
    print("|---|---|---|---:|---:|---:|")
    for model in args.models.split(","):
        graph, _ = FoldDeadUnits().run(load_model(ROOT / "examples" / f"{model}.onnx").graph)
        layers = tuple(name for name, perm in ReorderUnits(accelerator=args.accelerator).permutations(graph).items()
                       if args.reordered and list(perm) != sorted(perm))
        reordered, records = ReorderUnits(layers, accelerator=args.accelerator).run(graph)
        touched = {op.name for op in reordered.ops if op.kind == "fully_connected"} if records else set()
        reordered_ops = [(op, " reordered") for op in tile_block_sparse.match(reordered) if op.name in touched]
        for op, suffix in [(op, "") for op in tile_block_sparse.match(graph)] + reordered_ops:
            weight = tile_block_sparse.matrix(op)
            seen = set()
            for mode in ("Shared_Sram", "Sram_Only"):
                for tiling in tile_block_sparse.candidates(arch, mode, weight):
                    if tiling.groups in seen:
                        continue
                    seen.add(tiling.groups)
                    nonzero = sum(int((weight[g.rows[0]:g.rows[1]][:, g.cols] != 0).sum()) for g in tiling.groups)
                    label = tiling.name if tiling.name.startswith(("untouched", "row-blocks")) else f"{tiling.name} ({mode})"
                    print(f"| {model} | {op.name}{suffix} {weight.shape[0]}×{weight.shape[1]} | {label} | "
                          f"{tiling.macs():,} | {nonzero:,} | {nonzero / tiling.macs():.3f} |")

    if args.vela:
        reorder_table(args.models.split(","), args.accelerator)


def reorder_table(models: list[str], accelerator: str) -> None:
    """Vela's cycles of each model's default build against its reordered variants (see the docstring)."""
    from tvmse import tuning
    from tvmse.compile import load_model
    from tvmse.passes.fold_dead_units import FoldDeadUnits
    from tvmse.passes.pipeline import run_pipeline
    from tvmse.passes.reorder_units import ReorderUnits
    from tvmse.targets.ethosu import build_segmented
    from tvmse.targets.ethosu.vela_driver import VelaConfig
    from tvmse.targets.host import HostReference

    print(f"\n# {accelerator}, Ethos_U55_High_End_Embedded; Vela 5.2 cycles per frame, whole network; "
          "tiling as the default compile chooses; every reordered build checked bit-exact (TFLite interpreter)")
    print("| model | memory mode | layers reordered | default | reordered, state gathered | ratio | "
          "reordered, state carried | ratio | aligned fold | ratio |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for model in models:
        source = load_model(ROOT / "examples" / f"{model}.onnx").graph
        for mode in ("Shared_Sram", "Sram_Only"):
            config = VelaConfig(accelerator, memory_mode=mode).resolved()
            default = tuning.default_decisions(run_pipeline(source, (), config)[1], mode)
            layers = tuning.reorder_options(source, default.fold, accelerator)
            folded, _ = FoldDeadUnits().run(source)
            carried, _ = ReorderUnits(tuple(layers), accelerator=accelerator, carry_state=True).run(folded)
            tiling = {layer: t for layer, t in default.tiling}
            graphs = {"default": tuning.apply(source, default, accelerator)[0],
                      "gathered": tuning.apply(source, default.with_reorder(layers), accelerator)[0],
                      "carried": tuning.apply(carried, tuning.Decisions.make(False, tiling), accelerator)[0],
                      "aligned": tuning.apply(source, tuning.Decisions.make(
                          (True, 16), {k: v for k, v in tiling.items()}), accelerator)[0]}
            cycles = {name: build_segmented(g, config, (), HostReference(g) if name != "default" else None,
                                            2 if name != "default" else 0).total_cycles
                      for name, g in graphs.items()}
            ratio = lambda name: f"{cycles[name] / cycles['default']:.3f}"
            print(f"| {model} | {mode} | {', '.join(layers) or 'none'} | {cycles['default']:,} | "
                  f"{cycles['gathered']:,} | {ratio('gathered')} | {cycles['carried']:,} | {ratio('carried')} | "
                  f"{cycles['aligned']:,} | {ratio('aligned')} |")


if __name__ == "__main__":
    main()
