"""What a study runs: the presets, ``study.toml`` files, and the trial specifications they become.

A study is one dense reference run and a grid of sparse trials, every one fine-tuned from the dense run's
float checkpoint. A trial is fully described by a :class:`TrialSpec` (structure, levels, training options),
and its folder name carries a hash of that description, so changing a setting makes a new trial instead of
resuming an old one with other options.

``study.toml`` (every section optional; unknown keys are errors)::

    [study]
    data = "../shared/data/manifest.json"   # corpus manifest (default: tvmse's default corpus)
    eval_n = 100                            # dev mixtures scored per model
    eval_seed = 0
    metrics = ["sdr", "si_sdr", "pesq", "stoi"]
    memory_modes = ["Shared_Sram", "Sram_Only"]
    sram_budget = 262144                    # also a Shared_Sram build with weights placed in SRAM within this
                                            # budget (tvmse compile --sram-budget); 0: none

    [dense]                    # TrainConfig fields of the dense run (tvmse train's options)
    hidden = 256
    float_steps = 1600
    checkpoint = "runs/dense/float.pt"      # start from this float checkpoint instead of training one

    [train]                    # TrainConfig fields shared by every sparse trial
    wqat_steps = 1500

    [[trials]]                 # replaces the preset's grid; each may override [train] fields
    structure = "unit"         # weight | block | unit | unit+weight | unit+block
    sparsity = 0.75            # weight/block: fraction of weights zeroed; unit: fraction of units removed
    [[trials]]
    structure = "unit+block"
    unit_sparsity = 0.5        # hybrids: fraction of units removed, then ``sparsity`` of what survives
    sparsity = 0.5
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tvmse.errors import ConfigError
from tvmse.models.sparsity import HYBRID_STRUCTURES, STRUCTURES, check_sparsity, check_structure
from tvmse.train import TrainConfig

PRESETS = ("smoke", "paper", "frontier")
MEMORY_MODES = ("Shared_Sram", "Sram_Only")
ACCELERATOR = "ethos-u55-128"
#: TrainConfig fields a study sets itself (per trial), never taken from [dense] or [train]
_STUDY_OWNED = {"init", "structure", "sparsity", "unit_sparsity", "data"}
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - _STUDY_OWNED


@dataclass(frozen=True)
class TrialSpec:
    """One sparse fine-tune: structure and levels, and the TrainConfig options it trains with."""

    structure: str
    sparsity: float
    unit_sparsity: float = 0.0
    train: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        """``unit50``, ``weight90``, ``unit50+block75``: what a reader sees in tables."""
        if self.structure in HYBRID_STRUCTURES:
            fine = self.structure.split("+")[1]
            return f"unit{_pct(self.unit_sparsity)}+{fine}{_pct(self.sparsity)}"
        return f"{self.structure}{_pct(self.sparsity)}"

    @property
    def id(self) -> str:
        """Folder name: the name and a hash of everything that determines the result."""
        return f"{self.name}-{_digest(dataclasses.asdict(self))}"

    def train_config(self, data: str, init: str) -> TrainConfig:
        return TrainConfig(**dict(self.train), data=data, init=init, float_steps=0, structure=self.structure,
                           sparsity=self.sparsity, unit_sparsity=self.unit_sparsity)


@dataclass(frozen=True)
class DenseSpec:
    """The dense reference run: trained here (``checkpoint`` None) or fine-tuned to int8 from a float checkpoint."""

    train: tuple[tuple[str, Any], ...] = ()
    checkpoint: str | None = None

    @property
    def name(self) -> str:
        return "dense"

    @property
    def id(self) -> str:
        return f"dense-{_digest(dataclasses.asdict(self))}"

    def train_config(self, data: str) -> TrainConfig:
        options = dict(self.train)
        if self.checkpoint:  # the float model exists: only the int8 phases run
            options["float_steps"] = 0
        return TrainConfig(**options, data=data, init=self.checkpoint)


@dataclass(frozen=True)
class StudyConfig:
    preset: str
    dense: DenseSpec
    trials: tuple[TrialSpec, ...]
    data: str = field(default_factory=lambda: TrainConfig().data)
    eval_n: int = 100
    eval_seed: int = 0
    metrics: tuple[str, ...] = ("sdr", "si_sdr", "pesq", "stoi")
    memory_modes: tuple[str, ...] = MEMORY_MODES
    sram_budget: int = 0  # bytes; > 0 adds a Shared_Sram build with weights placed in SRAM within it

    def evaluation(self) -> dict:
        return {"data": self.data, "split": "dev", "n": self.eval_n, "seed": self.eval_seed,
                "metrics": list(self.metrics)}


def _pct(level: float) -> str:
    return f"{level * 100:g}".replace(".", "p")


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


# ---- presets -------------------------------------------------------------------------------------
_SMOKE_TRAIN = dict(hidden=32, batch_size=4, seconds=1.0, qat_batch_size=2, qat_seconds=0.5, calib_batches=1,
                    prune_every=5)
_PAPER_TRAIN = dict(wqat_steps=1500, qat_steps=60)


def preset(name: str) -> dict:
    """The preset as the same dict a ``study.toml`` holds (so a file may override any part of it)."""
    if name == "smoke":  # two tiny trials: seconds of training each, 2 dev mixtures; a CI check of every part
        return {"study": {"eval_n": 2},
                "dense": {**_SMOKE_TRAIN, "float_steps": 40, "wqat_steps": 10, "qat_steps": 4},
                "train": {**_SMOKE_TRAIN, "wqat_steps": 20, "qat_steps": 4},
                "trials": [{"structure": "unit", "sparsity": 0.5}, {"structure": "weight", "sparsity": 0.7}]}
    if name == "paper":  # the study's three structures at its kind of levels, long fine-tunes
        grid = {"weight": (0.7, 0.8, 0.9, 0.95), "block": (0.5, 0.7, 0.8, 0.9), "unit": (0.25, 0.5, 0.75)}
        return {"dense": {"float_steps": 1600, "wqat_steps": 300, "qat_steps": 40}, "train": dict(_PAPER_TRAIN),
                "trials": [{"structure": s, "sparsity": level} for s, levels in grid.items() for level in levels]}
    if name == "frontier":  # hybrids and levels beyond the study's
        trials = [{"structure": "unit", "sparsity": s} for s in (0.8, 0.875, 0.9)]
        trials += [{"structure": "weight", "sparsity": s} for s in (0.95, 0.97, 0.98)]
        trials += [{"structure": "unit+weight", "unit_sparsity": u, "sparsity": s}
                   for u, s in ((0.5, 0.8), (0.5, 0.9), (0.75, 0.5))]
        trials += [{"structure": "unit+block", "unit_sparsity": u, "sparsity": s}
                   for u, s in ((0.5, 0.5), (0.5, 0.75), (0.75, 0.5))]
        return {"study": {"sram_budget": 262144}, "dense": {"float_steps": 1600, "wqat_steps": 300, "qat_steps": 40},
                "train": {**_PAPER_TRAIN, "wqat_steps": 2500}, "trials": trials}
    raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")


# ---- parsing -------------------------------------------------------------------------------------
def read_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--config {path} does not exist; give a study.toml (see python -m tvmse.study --help)") \
            from None
    except IsADirectoryError:
        raise ConfigError(f"--config {path} is a folder, not a study.toml") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"--config {path} is not valid TOML ({err}); fix the file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--config {path} is not a UTF-8 text file; give a study.toml") from None


def load_config(preset_name: str, overrides: dict | None = None, where: str = "the preset") -> StudyConfig:
    """The preset, with the sections of ``overrides`` (a parsed ``study.toml``) laid over it."""
    raw = preset(preset_name)
    overrides = overrides or {}
    unknown = sorted(set(overrides) - {"study", "dense", "train", "trials"})
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}; known: study, dense, train, trials")
    for section in ("study", "dense", "train"):
        if section in overrides:
            raw[section] = {**raw.get(section, {}), **_table(overrides[section], section, where)}
    if "trials" in overrides:
        if not isinstance(overrides["trials"], list) or not overrides["trials"]:
            raise ConfigError(f"{where}: [[trials]] must be a non-empty array of tables")
        raw["trials"] = overrides["trials"]
    return _build(preset_name, raw, where)


def _table(value, section: str, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{section}] must be a table")
    return value


def _train_options(options: dict, section: str, where: str) -> tuple[tuple[str, Any], ...]:
    unknown = sorted(set(options) - _TRAIN_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: [{section}] has unknown option(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(_TRAIN_FIELDS))}")
    return tuple(sorted(options.items()))


def _build(preset_name: str, raw: dict, where: str) -> StudyConfig:
    study = dict(raw.get("study", {}))
    known_study = {"data", "eval_n", "eval_seed", "metrics", "memory_modes", "sram_budget"}
    unknown = sorted(set(study) - known_study)
    if unknown:
        raise ConfigError(f"{where}: [study] has unknown option(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known_study))}")
    if "data" in study:  # absolute: trials run in Ray workers, whose working folder is not ours
        if not isinstance(study["data"], str):
            raise ConfigError(f"{where}: [study] data must be the path of a corpus manifest.json")
        study["data"] = str(Path(study["data"]).expanduser().resolve())
    dense_raw = dict(raw.get("dense", {}))
    checkpoint = dense_raw.pop("checkpoint", None)
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise ConfigError(f"{where}: [dense] checkpoint {checkpoint} is not a file; give a float.pt of tvmse train")
    dense = DenseSpec(_train_options(dense_raw, "dense", where),
                      str(Path(checkpoint).resolve()) if checkpoint else None)
    shared = dict(raw.get("train", {}))
    dense_config = TrainConfig(**dict(dense.train))
    shape = {k: getattr(dense_config, k) for k in ("hidden", "layers", "n_bins")}  # trials fine-tune the dense model
    trials = []
    for i, entry in enumerate(raw.get("trials", [])):
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: trial {i + 1} must be a table")
        entry = dict(entry)
        try:
            structure, sparsity = entry.pop("structure"), float(entry.pop("sparsity"))
        except KeyError as missing:
            raise ConfigError(f"{where}: trial {i + 1} needs {missing}") from None
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: trial {i + 1}: sparsity must be a number") from None
        unit = float(entry.pop("unit_sparsity", 0.0))
        options = {**shared, **entry}
        clash = sorted(k for k, v in shape.items() if options.get(k, v) != v)
        if clash:
            raise ConfigError(f"{where}: trial {i + 1} sets {', '.join(clash)} unlike the dense model it starts from; "
                              "set them in [dense]")
        options.update(shape)
        trial = TrialSpec(structure, sparsity, unit, _train_options(options, f"trials #{i + 1}", where))
        _check_trial(trial, f"{where}: trial {i + 1} ({trial.name})")
        trials.append(trial)
    ids = [t.id for t in trials]
    duplicates = sorted({t.name for t in trials if ids.count(t.id) > 1})
    if duplicates:
        raise ConfigError(f"{where}: trial(s) {', '.join(duplicates)} appear twice with the same settings")
    config = StudyConfig(preset_name, dense, tuple(trials), **{k: tuple(v) if isinstance(v, list) else v
                                                               for k, v in study.items()})
    _check_study(config, where)
    return config


def _check_trial(trial: TrialSpec, where: str) -> None:
    try:
        check_structure(trial.structure)
        check_sparsity(trial.sparsity)
        check_sparsity(trial.unit_sparsity)
        if trial.structure in HYBRID_STRUCTURES and trial.unit_sparsity <= 0:
            raise ConfigError(f"structure {trial.structure} needs unit_sparsity > 0")
        if trial.structure not in HYBRID_STRUCTURES and trial.unit_sparsity:
            raise ConfigError(f"unit_sparsity applies to {', '.join(HYBRID_STRUCTURES)} only")
        if trial.sparsity <= 0:
            raise ConfigError("sparsity must be > 0 (the dense model is the study's reference run)")
        trial.train_config("", "").validate()
    except (ConfigError, TypeError) as err:
        raise ConfigError(f"{where}: {err}") from None


def _check_study(config: StudyConfig, where: str) -> None:
    from tvmse.metrics import METRICS
    if not isinstance(config.eval_n, int) or config.eval_n < 1:
        raise ConfigError(f"{where}: [study] eval_n must be an integer >= 1")
    if not isinstance(config.sram_budget, int) or config.sram_budget < 0:
        raise ConfigError(f"{where}: [study] sram_budget must be a number of bytes >= 0 (0: no placed build)")
    bad = sorted(set(config.metrics) - set(METRICS))
    if bad or "sdr" not in config.metrics:
        raise ConfigError(f"{where}: [study] metrics must include sdr and come from {', '.join(METRICS)}")
    bad = sorted(set(config.memory_modes) - set(MEMORY_MODES))
    if bad or "Shared_Sram" not in config.memory_modes:
        raise ConfigError(f"{where}: [study] memory_modes must include Shared_Sram and come from "
                          f"{', '.join(MEMORY_MODES)}")
    try:
        config.dense.train_config(config.data).validate()
    except (ConfigError, TypeError) as err:
        raise ConfigError(f"{where}: [dense]: {err}") from None
    if not Path(config.data).is_file():
        raise ConfigError(f"{where}: [study] data {config.data} is not a corpus manifest; give one with data = …")
