"""Sparsity masks for TinyLSTM: unstructured weights, aligned blocks, or whole hidden units.

Three structures, each a pair of mask dicts (``weight_masks``, ``bias_masks``) keyed by FC name
("lstm0", "lstm1", …, "out") that :class:`~tvmse.models.tinylstm.TinyLSTM` applies in
``effective_weights()``, so the fake-quant step and the QDQ export see exactly the same zeros:

* ``weight``: the smallest-magnitude weights of every FC.
* ``block``: tiles of ``rows × cols`` (outputs × inputs) of every FC, ranked by their L2 norm.
  The default 16 × 32 is the step in which Vela charges an Ethos-U55 FC (16 outputs × 32 inputs,
  input depth in steps of 32): a row-block with *n* surviving tiles is a dense FC of depth 32·n
  over gathered inputs, so no step is paid for zeros and each gathered run is 32 bytes long
  (fewer, longer MemoryCopy runs than 16 × 16 tiles). Rows of 16 never straddle two LSTM gates
  (the hidden size is a multiple of 16), so a tile belongs to one gate.
* ``unit``: a hidden unit is removed everywhere: its four gate rows (i, f, g, o) and their biases
  in its own layer, its recurrent column in its own layer and its column in the consumer (the
  next layer or the output FC). With zero initial state its h and c then stay exactly zero in
  int8 (sigmoid(0)·0 = 0, tanh(0) = 0), so a compiler can delete the unit and its state slots.
* hybrids ``unit+weight`` and ``unit+block``: a share of the hidden units removed as above (the
  compiler shrinks the LSTM: speed), then ``sparsity`` of the weights that survive in every FC
  zeroed singly or in tiles (memory, and with tiles more speed). The fine level counts only the
  surviving weights, so ``unit+weight`` at units 0.5, weights 0.8 keeps a fifth of the weights of
  the half-width network.

Ranking is per FC (every layer reaches the target), on the currently masked weights, so masks
only grow along a rising schedule. Counts are rounded up, so the reached sparsity is never
below the target. The schedule is the cubic ramp of Zhu & Gupta (2017), "To prune, or not to
prune": fast pruning while many redundant weights remain, gentle near the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from tvmse.errors import ConfigError
from tvmse.models.tinylstm import TinyLSTM

HYBRID_STRUCTURES = ("unit+weight", "unit+block")
STRUCTURES = ("weight", "block", "unit") + HYBRID_STRUCTURES
DEFAULT_BLOCK = (16, 32)  # (outputs, inputs): Vela's FC cost step on Ethos-U55

Masks = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]


def parse_block(text: str) -> tuple[int, int]:
    """``"16x32"`` → (16, 32): rows (outputs) × columns (inputs) of a tile."""
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"block shape {text!r} is not ROWSxCOLS (e.g. 16x32)") from None
    if rows < 1 or cols < 1:
        raise ConfigError(f"block shape {text!r} needs positive sides")
    return rows, cols


def check_structure(structure: str) -> str:
    if structure not in STRUCTURES:
        raise ConfigError(f"unknown sparsity structure {structure!r}; choose one of {', '.join(STRUCTURES)}")
    return structure


def check_sparsity(sparsity: float) -> float:
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}")
    return sparsity


# ---- schedule ------------------------------------------------------------------------------------
def cubic_schedule(step: int, start: int, end: int, final: float, initial: float = 0.0) -> float:
    """Target sparsity at ``step``: ``initial`` before ``start``, ``final`` from ``end`` on,
    ``final + (initial - final)·(1 - progress)³`` between."""
    if step < start:
        return initial
    if step >= end or end <= start:
        return final
    progress = (step - start) / (end - start)
    return final + (initial - final) * (1.0 - progress) ** 3


# ---- masks of one matrix -------------------------------------------------------------------------
def _keep_largest(scores: torch.Tensor, weights_per_item: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean keep-mask over items: drop the lowest scores until at least ``sparsity`` of all
    weights (each item counting ``weights_per_item``) are dropped. Ties break by index (stable)."""
    flat, sizes = scores.flatten(), weights_per_item.flatten().to(torch.float64)
    order = torch.argsort(flat, stable=True)
    dropped = torch.cumsum(sizes[order], 0)
    need = sparsity * float(sizes.sum())
    n_drop = int(torch.searchsorted(dropped, torch.tensor(need - 1e-9, dtype=torch.float64))) + 1 if need > 0 else 0
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[order[:n_drop]] = False
    return keep.view_as(scores)


def weight_mask(w: torch.Tensor, sparsity: float, alive: torch.Tensor | None = None) -> torch.Tensor:
    """Unstructured: keep the largest |w|. With ``alive`` (a 0/1 mask already imposed), ``sparsity``
    is the share of the alive weights to zero; the dead ones stay zero and count for nothing."""
    alive = torch.ones_like(w) if alive is None else alive.to(w.dtype)
    scores = torch.where(alive > 0, w.detach().abs(), torch.full_like(w, -1.0))  # dead ones ranked first
    keep = _keep_largest(scores, alive, sparsity)
    return (keep.to(w.dtype) * alive)


def _block_view(x: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """[R, C] → [R/r, C/c, r, c] with zero padding at the bottom/right edges."""
    r, c = block
    rows, cols = x.shape
    pr, pc = -rows % r, -cols % c
    x = torch.nn.functional.pad(x, (0, pc, 0, pr))
    return x.view((rows + pr) // r, r, (cols + pc) // c, c).permute(0, 2, 1, 3)


def block_mask(w: torch.Tensor, sparsity: float, block: tuple[int, int] = DEFAULT_BLOCK,
               alive: torch.Tensor | None = None) -> torch.Tensor:
    """Tiles aligned to (0, 0) of ``block`` size, ranked by L2 norm; edge tiles count their real size.
    With ``alive`` (a 0/1 mask already imposed), a tile counts its alive weights and ``sparsity`` is the
    share of the alive weights to zero; fully dead tiles go first at no cost."""
    alive = torch.ones_like(w) if alive is None else alive.to(w.dtype)
    tiles = _block_view(w.detach() * alive, block)
    sizes = _block_view(alive, block).sum(dim=(2, 3))
    keep = _keep_largest(tiles.square().sum(dim=(2, 3)), sizes, sparsity)
    r, c = block
    full = keep.repeat_interleave(r, 0).repeat_interleave(c, 1)
    return full[:w.shape[0], :w.shape[1]].to(w.dtype) * alive


# ---- units ---------------------------------------------------------------------------------------
def _fc_names(model: TinyLSTM) -> list[str]:
    return [f"lstm{l}" for l in range(model.config.layers)] + ["out"]


def unit_scores(model: TinyLSTM, layer: int) -> torch.Tensor:
    """Squared L2 norm of everything a unit of ``layer`` owns: gate rows and biases, its recurrent
    column and its column in the consumer."""
    H = model.config.hidden
    fcs = {name: (w.detach(), b.detach()) for name, w, b in model.effective_weights()}
    w, b = fcs[f"lstm{layer}"]
    k = w.shape[1] - H
    rows = (w.square().sum(1) + b.square()).view(4, H).sum(0)
    consumer = fcs[_fc_names(model)[layer + 1]][0]
    return rows + w[:, k:].square().sum(0) + consumer[:, :H].square().sum(0)


def unit_keep(model: TinyLSTM, fraction: float) -> list[torch.Tensor]:
    """Per layer, a boolean [H] of kept units: ``ceil(fraction·H)`` lowest-scoring units removed."""
    H = model.config.hidden
    kept = []
    for layer in range(model.config.layers):
        n_drop = math.ceil(fraction * H - 1e-9)
        order = torch.argsort(unit_scores(model, layer), stable=True)
        keep = torch.ones(H, dtype=torch.bool)
        keep[order[:n_drop]] = False
        kept.append(keep)
    return kept


def unit_masks_from_keep(model: TinyLSTM, kept: list[torch.Tensor]) -> Masks:
    """Weight and bias masks that remove every unit not in ``kept`` from every place it appears."""
    H = model.config.hidden
    weight_masks, bias_masks = {}, {}
    for layer, keep in enumerate(kept):
        name = f"lstm{layer}"
        w = model.cell_weights[layer]
        k = w.shape[1] - H
        rows = keep.repeat(4).to(w.dtype)  # gate order i, f, g, o: unit j is rows j, H+j, 2H+j, 3H+j
        cols = torch.cat([torch.ones(k), keep.to(w.dtype)])
        if layer > 0:  # this layer's input is the previous layer's h
            cols[:k] = kept[layer - 1].to(w.dtype)
        weight_masks[name] = rows[:, None] * cols[None, :]
        bias_masks[name] = rows.clone()
    out_cols = kept[-1].to(model.out_weight.dtype)
    weight_masks["out"] = torch.ones_like(model.out_weight) * out_cols[None, :]
    return weight_masks, bias_masks


# ---- whole model ---------------------------------------------------------------------------------
def compute_masks(model: TinyLSTM, structure: str, sparsity: float,
                  block: tuple[int, int] = DEFAULT_BLOCK, scores_from: str = "float",
                  unit_sparsity: float = 0.0) -> Masks:
    """Masks reaching ``sparsity`` (units: fraction of hidden units removed per layer; hybrids:
    ``unit_sparsity`` of the units removed, then ``sparsity`` of the surviving weights of every FC).

    ``scores_from="int8"`` ranks the dequantized int8 weights (the offline baseline prunes the
    quantized model as it is); ``"float"`` ranks the trained float weights.
    """
    check_structure(structure)
    check_sparsity(sparsity)
    check_sparsity(unit_sparsity)
    if structure == "unit":
        if scores_from == "int8":
            with _quantized_weights(model):
                return unit_masks_from_keep(model, unit_keep(model, sparsity))
        return unit_masks_from_keep(model, unit_keep(model, sparsity))
    alive_w, bias_masks = {}, {}
    if structure in HYBRID_STRUCTURES:
        if scores_from == "int8":
            with _quantized_weights(model):
                alive_w, bias_masks = unit_masks_from_keep(model, unit_keep(model, unit_sparsity))
        else:
            alive_w, bias_masks = unit_masks_from_keep(model, unit_keep(model, unit_sparsity))
    fine = structure.split("+")[-1]
    weight_masks = {}
    for name, w, _ in model.effective_weights():
        w = _int8_view(w) if scores_from == "int8" else w
        alive = alive_w.get(name)
        weight_masks[name] = (weight_mask(w, sparsity, alive) if fine == "weight"
                              else block_mask(w, sparsity, block, alive))
    return weight_masks, bias_masks


def _int8_view(w: torch.Tensor) -> torch.Tensor:
    from tvmse.models.quant import fake_quant_weight
    return fake_quant_weight(w.detach())


class _quantized_weights:
    """Temporarily replace the parameters by their dequantized int8 values (for ranking only)."""

    def __init__(self, model: TinyLSTM):
        self.model = model

    def __enter__(self):
        self.saved = [p.detach().clone() for p in self._params()]
        with torch.no_grad():
            for p, (_, w, _) in zip(self._params(), self.model.effective_weights()):
                p.copy_(_int8_view(w))

    def __exit__(self, *exc):
        with torch.no_grad():
            for p, s in zip(self._params(), self.saved):
                p.copy_(s)

    def _params(self):
        return list(self.model.cell_weights) + [self.model.out_weight]


def apply_masks(model: TinyLSTM, masks: Masks) -> None:
    """Install the masks and zero the pruned parameters themselves, so a checkpoint's raw weights
    already hold the zeros (and an optimizer's leftover momentum cannot matter)."""
    weight_masks, bias_masks = masks
    model.weight_masks = {k: v.detach().clone() for k, v in weight_masks.items()}
    model.bias_masks = {k: v.detach().clone() for k, v in bias_masks.items()}
    params = dict(zip(_fc_names(model), list(zip(model.cell_weights, model.cell_biases)) +
                      [(model.out_weight, model.out_bias)]))
    with torch.no_grad():
        for name, (w, b) in params.items():
            if name in model.weight_masks:
                w.mul_(model.weight_masks[name])
            if name in model.bias_masks:
                b.mul_(model.bias_masks[name])


# ---- reporting -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SparsityReport:
    params: int  # weights + biases
    weights: int
    nonzero_params: int
    nonzero_weights: int
    units_alive: tuple[int, ...]

    @property
    def weight_sparsity(self) -> float:
        return 1.0 - self.nonzero_weights / self.weights

    def summary(self) -> str:
        return (f"weight sparsity {self.weight_sparsity:.1%} ({self.nonzero_weights}/{self.weights} non-zero), "
                f"params {self.nonzero_params}/{self.params} non-zero, units alive {list(self.units_alive)}")


def sparsity_report(model: TinyLSTM, quantized: bool | None = None) -> SparsityReport:
    """Counts on the weights as exported (int8 values when ``quantized``: a weight that rounds to
    zero is a zero on the device too)."""
    quantized = model.quantized if quantized is None else quantized
    weights = nonzero_w = params = nonzero_p = 0
    for w, b in model.step_weights() if quantized else [(w, b) for _, w, b in model.effective_weights()]:
        weights += w.numel()
        nonzero_w += int((w != 0).sum())
        params += w.numel() + b.numel()
        nonzero_p += int((w != 0).sum()) + int((b != 0).sum())
    return SparsityReport(params, weights, nonzero_p, nonzero_w, tuple(alive_units(model)))


def alive_units(model: TinyLSTM) -> list[int]:
    """Units per layer with any non-zero gate row or bias."""
    H = model.config.hidden
    alive = []
    for _, w, b in model.effective_weights()[:-1]:
        rows = (w.detach().abs().sum(1) + b.detach().abs()).view(4, H).sum(0)
        alive.append(int((rows != 0).sum()))
    return alive
