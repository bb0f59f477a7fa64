"""Tuning decisions and the tuning file: what ``tvmse.autotune`` chooses and ``compile --tuning`` replays.

A candidate build is fully described by its ``Decisions``:

    fold_dead_units   run the unit fold (True) or not
    tiling            layer → tiling id, e.g. ``"grouped/16@Sram_Only"``: candidate ``grouped/16`` of
                      ``passes.tile_block_sparse.candidates`` computed for that memory mode's cost;
                      a layer not listed is left untouched
    placement         layers whose weights live in SRAM (the rest in flash)
    fold_align        with the fold on: keep each folded state a multiple of this many slots (dead units
                      kept back, ``FoldDeadUnits(align=…)``), so gate rows stay on the output grid; 0: plain
    fc_rows           (cortex-m55) FC weight shape "NxK" → output rows its kernel computes per pass over
                      the input (``targets.cortex_m.fc_kernel``); a shape not listed gets the default
    reorder           recurrent layers (their first gate FC) whose units ``passes.reorder_units`` permutes
                      so tiles line up (after the fold, before tiling; the state keeps its layout)
    fc_schedule       (cortex-m55) FC workload "NxK" (or "NxK/int64") → a MetaSchedule trace that replaces
                      the hand-scheduled kernel (``targets.cortex_m.metaschedule``)

``apply`` turns the imported integer graph and the decisions into the graph to compile; the same
decisions always give the same graph, so a tuning file replays exactly.

The tuning file (JSON) holds the decisions, the model's SHA-256, the target (accelerator, system
config, memory mode), the SRAM budget, the versions of tvmse, Vela and TVM, and the cycles the
tuner measured. ``load`` checks every field and says what is wrong with a hostile or stale file;
``check_matches`` refuses a file made for another model, target or toolchain.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tvmse.errors import ConfigError, TvmseError
from tvmse.ir import IntegerGraph

TUNING_FORMAT = "tvmse-tuning/1"
MAX_FC_ROWS = 16   # rows per input pass of a Cortex-M55 FC kernel: more would spill Helium's registers
MAX_FOLD_ALIGN = 256
Fold = tuple[bool, int]   # (fold on, alignment; 0 = plain): the fold decision as one value


class TuningError(TvmseError):
    """A tuning file or tuning database is unreadable, malformed or made for something else."""


@dataclass(frozen=True)
class Decisions:
    fold_dead_units: bool = True
    tiling: tuple[tuple[str, str], ...] = ()     # sorted (layer, tiling id) pairs
    placement: tuple[str, ...] = ()              # sorted layer names
    fc_rows: tuple[tuple[str, int], ...] = ()    # sorted ("NxK", rows) pairs (cortex-m55)
    fold_align: int = 0                          # with the fold on: state widths kept a multiple of this
    reorder: tuple[str, ...] = ()                # sorted gate FC names of the layers whose units are reordered
    fc_schedule: tuple[tuple[str, str], ...] = ()   # sorted (FC workload, trace as JSON text) (cortex-m55)

    @classmethod
    def make(cls, fold: bool | Fold = True, tiling: dict[str, str] | None = None, placement=(),
             fc_rows: dict[str, int] | None = None, reorder=()) -> "Decisions":
        """``fold``: on or off, or a ``Fold`` (on, alignment)."""
        on, align = fold if isinstance(fold, tuple) else (bool(fold), 0)
        return cls(bool(on), tuple(sorted((tiling or {}).items())), tuple(sorted(set(placement))),
                   tuple(sorted((fc_rows or {}).items())), int(align) if on else 0, tuple(sorted(set(reorder))))

    @property
    def fold(self) -> Fold:
        return (self.fold_dead_units, self.fold_align)

    def with_placement(self, placement) -> "Decisions":
        return dataclasses.replace(self, placement=tuple(sorted(set(placement))))

    def with_reorder(self, reorder) -> "Decisions":
        return dataclasses.replace(self, reorder=tuple(sorted(set(reorder))))

    def with_fc_rows(self, fc_rows: dict[str, int]) -> "Decisions":
        return dataclasses.replace(self, fc_rows=tuple(sorted(fc_rows.items())))

    def with_fc_schedule(self, schedules: dict[str, object]) -> "Decisions":
        """``schedules``: FC workload key → MetaSchedule trace (JSON-compatible)."""
        return dataclasses.replace(self, fc_schedule=tuple(sorted(
            (k, json.dumps(v, separators=(",", ":"))) for k, v in schedules.items())))

    def fc_schedule_by_key(self) -> dict[str, object]:
        return {k: json.loads(v) for k, v in self.fc_schedule}

    def fc_rows_by_shape(self) -> dict[tuple[int, int], int]:
        """``fc_rows`` as ``targets.cortex_m.lower`` takes it: (N, K) → rows."""
        return {tuple(int(d) for d in shape.split("x")): rows for shape, rows in self.fc_rows}

    def to_json(self) -> dict:
        data = {"fold_dead_units": self.fold_dead_units, "tiling": dict(self.tiling),
                "placement": list(self.placement)}
        if self.fc_rows:   # absent when empty: Ethos-U decisions keep their keys in existing databases
            data["fc_rows"] = dict(self.fc_rows)
        if self.fold_align:   # absent for the plain fold, likewise
            data["fold_align"] = self.fold_align
        if self.reorder:   # absent when no layer is reordered, likewise
            data["reorder"] = list(self.reorder)
        if self.fc_schedule:
            data["fc_schedule"] = self.fc_schedule_by_key()
        return data

    @classmethod
    def from_json(cls, data, where: str) -> "Decisions":
        keys = {"fold_dead_units", "tiling", "placement"}
        if not isinstance(data, dict) or not keys <= set(data) <= keys | {"fc_rows", "fold_align", "reorder",
                                                                          "fc_schedule"}:
            raise TuningError(f"{where}: 'decisions' must be an object with fold_dead_units, tiling and placement "
                              "(and optionally fold_align, reorder; for cortex-m55 fc_rows)")
        reorder = data.get("reorder", [])
        if not isinstance(reorder, list) or not all(isinstance(r, str) for r in reorder):
            raise TuningError(f"{where}: decisions.reorder must be a list of layer names (gate FCs)")
        align = data.get("fold_align", 0)
        if isinstance(align, bool) or not isinstance(align, int) or not 0 <= align <= MAX_FOLD_ALIGN:
            raise TuningError(f"{where}: decisions.fold_align must be a whole number of state slots 0…{MAX_FOLD_ALIGN}")
        fc_rows = data.get("fc_rows", {})
        if not isinstance(fc_rows, dict) or not all(
                isinstance(k, str) and re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", k) and isinstance(v, int)
                and not isinstance(v, bool) and 1 <= v <= MAX_FC_ROWS for k, v in fc_rows.items()):
            raise TuningError(f"{where}: decisions.fc_rows must map FC shapes \"NxK\" to rows per pass "
                              f"(integers 1…{MAX_FC_ROWS})")
        schedules = data.get("fc_schedule", {})
        if not isinstance(schedules, dict) or not all(
                isinstance(k, str) and re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*(/int64)?", k) and isinstance(v, list)
                for k, v in schedules.items()):
            raise TuningError(f"{where}: decisions.fc_schedule must map FC workloads \"NxK\" to MetaSchedule traces")
        fold, tiling, placement = data["fold_dead_units"], data["tiling"], data["placement"]
        if not isinstance(fold, bool):
            raise TuningError(f"{where}: decisions.fold_dead_units must be true or false, not {fold!r}")
        if not isinstance(tiling, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in tiling.items()):
            raise TuningError(f"{where}: decisions.tiling must map layer names to tiling ids (strings)")
        if not isinstance(placement, list) or not all(isinstance(p, str) for p in placement):
            raise TuningError(f"{where}: decisions.placement must be a list of layer names")
        return cls.make((fold, align), tiling, placement, fc_rows, reorder).with_fc_schedule(schedules)

    def key(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    def describe(self) -> str:
        tiles = ", ".join(f"{l}={t}" for l, t in self.tiling) or "none"
        rows = f"; FC rows {', '.join(f'{s}={r}' for s, r in self.fc_rows)}" if self.fc_rows else ""
        if self.fc_schedule:
            rows += f"; MetaSchedule FC kernels {', '.join(s for s, _ in self.fc_schedule)}"
        fold = f"aligned to {self.fold_align}" if self.fold_align else "on" if self.fold_dead_units else "off"
        reorder = f"; units reordered in {', '.join(self.reorder)}" if self.reorder else ""
        return (f"fold {fold}{reorder}; tiling {tiles}; "
                f"SRAM {', '.join(self.placement) or 'none'}{rows}")


def fold_variants(source: IntegerGraph, align: int) -> list[Fold]:
    """The fold decisions a search tries: on, off, and, where it keeps something the plain fold drops, on
    with the state widths kept a multiple of ``align`` (the output grid's rows: 16 on Ethos-U55)."""
    from tvmse.passes.fold_dead_units import aligned_channels, kept_channels
    plain = kept_channels(source)
    aligned = aligned_channels(source, {k: v.copy() for k, v in plain.items()}, align)
    differs = any(int(aligned[name].sum()) != int(keep.sum()) for name, keep in plain.items())
    return [(True, 0), (False, 0)] + ([(True, align)] if differs else [])


def reorder_options(source: IntegerGraph, fold: Fold, accelerator: str) -> list[str]:
    """Recurrent layers (gate FC names) whose units ``passes.reorder_units`` would move after ``fold``: the
    reorder decisions worth trying (the others leave the graph as it is)."""
    import numpy as np

    from tvmse.passes.reorder_units import ReorderUnits
    graph, _ = apply(source, Decisions.make(fold), accelerator)
    return [name for name, perm in ReorderUnits(accelerator=accelerator).permutations(graph).items()
            if not np.array_equal(perm, np.arange(len(perm)))]


# ---- applying decisions ----------------------------------------------------------------------------
def tiling_id(name: str, memory_mode: str) -> str:
    return f"{name}@{memory_mode}"


def _tiling_by_id(op, tid: str, accelerator: str):
    from tvmse.passes import tile_block_sparse
    from tvmse.passes.arch import arch_for
    name, _, mode = tid.partition("@")
    if not mode:
        raise TuningError(f"tiling '{tid}' of layer '{op.name}' lacks its memory mode (expected NAME@MODE)")
    found = [t for t in tile_block_sparse.candidates(arch_for(accelerator), mode, op.consts["weight"], unique=False)
             if t.name == name]
    if not found:
        names = sorted({t.name for t in tile_block_sparse.candidates(arch_for(accelerator), mode,
                                                                    op.consts["weight"], unique=False)})
        raise TuningError(f"layer '{op.name}' has no tiling '{name}' (known: {', '.join(names)})")
    return found[0]


def apply(source: IntegerGraph, decisions: Decisions, accelerator: str, config=None
          ) -> tuple[IntegerGraph, list[dict]]:
    """The graph ``decisions`` describe, and report records of the rewrites made.

    ``config`` (a VelaConfig) only adds Vela's before/after cycles to the fold's records."""
    from tvmse.passes import tile_block_sparse
    from tvmse.passes.fold_dead_units import FoldDeadUnits

    graph, records = source, []
    if decisions.fold_dead_units:
        graph, done = FoldDeadUnits(align=decisions.fold_align or None).run(graph, config=config)
        records += [{"pass": "fold_dead_units", **r} for r in done]
    if decisions.reorder:
        from tvmse.passes.reorder_units import ReorderUnits, unit_layers
        unknown = sorted(set(decisions.reorder) - set(unit_layers(graph)))
        if unknown:
            raise TuningError(f"reorder names layers that are not recurrent layers of this model: {', '.join(unknown)} "
                              f"(layers: {', '.join(unit_layers(graph)) or 'none'})")
        graph, done = ReorderUnits(layers=decisions.reorder, accelerator=accelerator).run(graph)
        records += [{"pass": "reorder_units", **r} for r in done]
    tiling = dict(decisions.tiling)
    fcs = {op.name: op for op in graph.ops if op.kind == "fully_connected"}
    unknown = sorted(set(tiling) - set(fcs))
    if unknown:
        raise TuningError(f"tiling names layers that are not FCs of this model: {', '.join(unknown)}")
    tensors = graph.tensors()
    replaced = {}
    for layer, tid in tiling.items():
        op = fcs[layer]
        chosen = _tiling_by_id(op, tid, accelerator)
        if chosen.name == "untouched":
            continue
        replaced[layer] = tile_block_sparse.rewrite(op, tensors[op.inputs[0]], chosen)
        parts = [o for o in replaced[layer] if o.kind == "fully_connected"]
        records.append({"pass": "tile_block_sparse", "layer": layer, "before": list(op.consts["weight"].shape),
                        "macs_before": int(op.consts["weight"].size), "decision": tid,
                        "rewrite": "tile block-sparse FC (tuning)",
                        "after": [list(o.consts["weight"].shape) for o in parts],
                        "macs_after": int(sum(o.consts["weight"].size for o in parts))})
    if replaced:
        ops = [new for op in graph.ops for new in replaced.get(op.name, [op])]
        graph = dataclasses.replace(graph, ops=ops)  # inputs, outputs, state slots and pairs unchanged
    from tvmse.targets.ethosu.segments import weighted_layers
    unplaceable = sorted(set(decisions.placement) - set(weighted_layers(graph)))
    if unplaceable:
        raise TuningError(f"placement names layers without weights in this model: {', '.join(unplaceable)} "
                          f"(layers: {', '.join(weighted_layers(graph))})")
    return graph, records


def default_decisions(records: list[dict], memory_mode: str) -> Decisions:
    """The decisions the default pipeline made, read from its report records."""
    # a decision without Vela's referee reads "grouped/16 (cost model only)"
    tiling = {r["layer"]: tiling_id(r["decision"].split(" (")[0], memory_mode) for r in records
              if r.get("pass") == "tile_block_sparse" and "rewrite" in r}
    folded = True  # the default pipeline always runs the fold
    return Decisions.make(folded, tiling, ())


# ---- identity: model, target, tools ----------------------------------------------------------------
def model_hash(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tool_versions() -> dict[str, str]:
    import importlib.metadata as metadata

    import tvmse
    return {"tvmse": tvmse.__version__, "vela": metadata.version("ethos-u-vela"),
            "tvm": metadata.version("apache-tvm")}


def target_of(config) -> dict[str, str]:
    if getattr(config, "cpu", None):   # autotune_cpu.CpuTarget
        return {"cpu": config.cpu}
    return {"accelerator": config.accelerator, "system_config": config.system_config,
            "memory_mode": config.memory_mode}


# ---- the tuning file -------------------------------------------------------------------------------
@dataclass
class TuningFile:
    model_sha256: str
    target: dict[str, str]
    tools: dict[str, str]
    sram_budget: int
    decisions: Decisions
    tuned_cycles: int
    default_cycles: int
    sram_bytes: int
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"format": TUNING_FORMAT, "model_sha256": self.model_sha256, "target": self.target,
                "tools": self.tools, "sram_budget": self.sram_budget, "decisions": self.decisions.to_json(),
                "tuned_cycles": self.tuned_cycles, "default_cycles": self.default_cycles,
                "sram_bytes": self.sram_bytes, **self.extra}

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temporary file in the same folder, then rename)."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_json(), f, indent=2)
                f.write("\n")
            os.replace(tmp, path)
        except OSError as e:
            raise ConfigError(f"cannot write tuning file {path}: {e.strerror or e}; choose a writable --output") \
                from None


def _field(data: dict, name: str, kind, where: str):
    if name not in data:
        raise TuningError(f"{where}: missing field '{name}'; regenerate it with python -m tvmse.autotune")
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise TuningError(f"{where}: field '{name}' has the wrong type ({type(value).__name__})")
    return value


def load(path: str | os.PathLike) -> TuningFile:
    """Read and check a tuning file; TuningError says what is wrong and where."""
    path = Path(path)
    where = f"tuning file {path}"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise TuningError(f"{where} does not exist; make one with python -m tvmse.autotune") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TuningError(f"{where} cannot be read: {getattr(e, 'strerror', None) or e}") from None
    except json.JSONDecodeError as e:
        raise TuningError(f"{where} is not JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(data, dict) or data.get("format") != TUNING_FORMAT:
        raise TuningError(f"{where} is not a tvmse tuning file (expected \"format\": \"{TUNING_FORMAT}\")")
    target = _field(data, "target", dict, where)
    tools = _field(data, "tools", dict, where)
    for name, value in [*target.items(), *tools.items()]:
        if not isinstance(value, str):
            raise TuningError(f"{where}: '{name}' must be a string")
    return TuningFile(
        model_sha256=_field(data, "model_sha256", str, where), target=target, tools=tools,
        sram_budget=_field(data, "sram_budget", int, where),
        decisions=Decisions.from_json(_field(data, "decisions", dict, where), where),
        tuned_cycles=_field(data, "tuned_cycles", int, where),
        default_cycles=_field(data, "default_cycles", int, where),
        sram_bytes=_field(data, "sram_bytes", int, where))


def check_matches(tuning: TuningFile, path: str | os.PathLike, model_path: str | os.PathLike, config) -> None:
    """Refuse a tuning file made for another model, target or toolchain (one line each: what differs)."""
    where = f"tuning file {path}"
    if tuning.model_sha256 != model_hash(model_path):
        raise TuningError(f"{where} was made for another model (SHA-256 {tuning.model_sha256[:12]}…, "
                          f"{model_path} is {model_hash(model_path)[:12]}…); tune this model with "
                          "python -m tvmse.autotune")
    if tuning.target != target_of(config):
        raise TuningError(f"{where} was made for {tuning.target}, not {target_of(config)}; pass the same "
                          "--accelerator-config/--system-config/--memory-mode or tune again")
    if tuning.tools != tool_versions():
        differ = ", ".join(f"{k} {tuning.tools.get(k)} → {v}" for k, v in tool_versions().items()
                           if tuning.tools.get(k) != v)
        raise TuningError(f"{where} was made with other tool versions ({differ}); tune again with this toolchain")
