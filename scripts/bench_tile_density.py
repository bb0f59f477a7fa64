"""How dense are the tiles of block-sparse FCs, i.e. what could reordering units still gain?

For each FC of a bundled model (after the fold, as compiled) and each tiling candidate of
``passes.tile_block_sparse`` (Ethos-U55-128): MACs the tiles compute, non-zero weights inside them and
their density. A unit reordering can at best raise a tiling's density to 1: the MACs it could remove are
``macs − nonzero``.

    .venv/bin/python scripts/bench_tile_density.py [--models tinylstm_block80,tinylstm_block50]
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

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="tinylstm_block80,tinylstm_block50")
    p.add_argument("--accelerator", default="ethos-u55-128")
    args = p.parse_args()
    arch = arch_for(args.accelerator)
    print(f"# {args.accelerator}; tilings of passes.tile_block_sparse.candidates (both memory modes' DP cut)")
    print("| model | FC | tiling (mode) | MACs | non-zero weights in tiles | density |")
    print("|---|---|---|---:|---:|---:|")
    for model in args.models.split(","):
        graph, _ = FoldDeadUnits().run(load_model(ROOT / "examples" / f"{model}.onnx").graph)
        for op in tile_block_sparse.match(graph):
            weight = tile_block_sparse.matrix(op)
            seen = set()
            for mode in ("Shared_Sram", "Sram_Only"):
                for tiling in tile_block_sparse.candidates(arch, mode, weight):
                    if tiling.groups in seen:
                        continue
                    seen.add(tiling.groups)
                    nonzero = sum(int((weight[g.rows[0]:g.rows[1]][:, g.cols] != 0).sum()) for g in tiling.groups)
                    label = tiling.name if tiling.name.startswith(("untouched", "row-blocks")) else f"{tiling.name} ({mode})"
                    print(f"| {model} | {op.name} {weight.shape[0]}×{weight.shape[1]} | {label} | {tiling.macs():,} | "
                          f"{nonzero:,} | {nonzero / tiling.macs():.3f} |")


if __name__ == "__main__":
    main()
