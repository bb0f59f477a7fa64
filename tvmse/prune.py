"""Offline baseline: magnitude-prune an already int8 model, without retraining.

Usage::

    python -m tvmse.prune runs/dense/final.pt --structure block --sparsity 0.9 --export pruned.onnx

The study's baseline: take the trained int8 model as it is, rank its dequantized int8 weights
(weight: |w|; block: L2 norm of each tile; unit: L2 norm of everything the unit owns) and zero the
smallest to the target sparsity in one shot. Activation scales are kept as calibrated for the
dense model and nothing is fine-tuned, so the difference to a model trained with the same mask
structure is what learning the sparsity buys. A row's per-channel scale stays the same while its
max |w| survives, and then its surviving int8 weights keep their values; a row whose max is
pruned (possible with tiles) is requantized on its finer new grid (each survivor moves by less
than half an old step).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from tvmse.cli import command_parser
from tvmse.errors import QuantizationError, run_command
from tvmse.models.export import export_qdq_onnx
from tvmse.models.quant import fake_quant_weight
from tvmse.models.sparsity import (DEFAULT_BLOCK, STRUCTURES, apply_masks, check_sparsity, check_structure,
                                   compute_masks, parse_block, sparsity_report)
from tvmse.models.tinylstm import TinyLSTM
from tvmse.train import atomic_save, load_model, model_state

log = logging.getLogger("tvmse.prune")


def prune_int8(model: TinyLSTM, structure: str, sparsity: float,
               block: tuple[int, int] = DEFAULT_BLOCK, unit_sparsity: float = 0.0) -> TinyLSTM:
    """Zero the smallest int8 weights/tiles/units of ``model`` in place (one shot) and return it."""
    check_structure(structure)
    check_sparsity(sparsity)
    if not model.quantized:
        raise QuantizationError("offline pruning needs an int8 (quantized) model, e.g. a run's final.pt; "
                                "this checkpoint is float")
    snap_to_int8(model)
    masks = compute_masks(model, structure, sparsity, block, scores_from="int8", unit_sparsity=unit_sparsity)
    existing_w, existing_b = model.weight_masks, model.bias_masks
    for name, mask in existing_w.items():  # keep any zeros the model already had
        masks[0][name] = masks[0].get(name, 1) * mask
    for name, mask in existing_b.items():
        masks[1][name] = masks[1].get(name, 1) * mask
    apply_masks(model, masks)
    return model


def snap_to_int8(model: TinyLSTM) -> None:
    """Replace the float weights by their dequantized int8 values: the baseline starts from the int8
    model itself, not from the float weights behind it."""
    params = list(model.cell_weights) + [model.out_weight]
    with torch.no_grad():
        for p, (_, w, _) in zip(params, model.effective_weights()):
            p.copy_(fake_quant_weight(w))


def build_parser() -> argparse.ArgumentParser:
    p = command_parser("prune", __doc__)
    p.add_argument("checkpoint", help="int8 training checkpoint (a run's final.pt)")
    p.add_argument("--structure", required=True, choices=STRUCTURES)
    p.add_argument("--sparsity", type=float, required=True,
                   help="fraction of zero weights per FC (unit: fraction of hidden units removed)")
    p.add_argument("--unit-sparsity", type=float, default=0.0,
                   help="unit+weight, unit+block: fraction of hidden units removed")
    p.add_argument("--block", default=f"{DEFAULT_BLOCK[0]}x{DEFAULT_BLOCK[1]}", help="OUTPUTSxINPUTS")
    p.add_argument("--export", help="write the pruned model as QDQ ONNX")
    p.add_argument("--save", help="write the pruned model as a checkpoint (.pt)")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, _prune)


def _prune(args: argparse.Namespace) -> None:
    model = prune_int8(load_model(args.checkpoint), args.structure, args.sparsity, parse_block(args.block),
                       args.unit_sparsity)
    log.info("pruned %s: %s", args.checkpoint, sparsity_report(model).summary())
    if args.save:
        atomic_save(model_state(model), Path(args.save))
    if args.export:
        export_qdq_onnx(model, args.export)
        log.info("exported %s", args.export)


if __name__ == "__main__":
    sys.exit(main())
