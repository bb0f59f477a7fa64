"""One trial of a study, phase by phase, resumable: train → export → compile per memory mode → evaluate.

A trial's folder ``DIR/trials/<id>/`` holds ``spec.json`` (what it is), ``train/`` (the tvmse train run,
which checkpoints and resumes itself), ``model_int8.onnx``, ``compile/<memory mode>/`` (tvmse compile output
folders) and ``phases.json``: the figures of every finished phase, rewritten atomically after each one.
A rerun skips every phase ``phases.json`` already holds, so a killed study loses at most the phase it was in
(and within training, at most ``checkpoint_every`` steps). ``measurements.json`` marks a finished trial.

The dense reference run is a trial too (structure ``none``); it also scores its fp32 float checkpoint, the
reference every drop is measured against.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

from tvmse.study.config import ACCELERATOR, DenseSpec, StudyConfig, TrialSpec

log = logging.getLogger("tvmse.study")

PHASES_FILE, DONE_FILE, SPEC_FILE = "phases.json", "measurements.json", "spec.json"
BUDGET_PHASE = "compile:sram_budget"  # Shared_Sram with weights placed in SRAM within [study] sram_budget
CHECKPOINT_EVERY = 50  # training steps between checkpoints inside a trial


def atomic_write_json(path: Path, obj) -> None:
    """JSON to a temporary file beside ``path``, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None if it is missing or unreadable (a trial then redoes that part)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def study_settings(study: StudyConfig) -> dict:
    """The study-wide settings a trial's measurements depend on besides its own spec."""
    return {"evaluation": study.evaluation(), "memory_modes": list(study.memory_modes),
            "sram_budget": getattr(study, "sram_budget", 0)}


def finished(folder: Path, study: StudyConfig | None = None) -> dict | None:
    """A trial's measurements if it is finished (with ``study``'s settings, when given), else None."""
    measurements = read_json(folder / DONE_FILE)
    if measurements is None or (study is not None and measurements.get("settings") != study_settings(study)):
        return None
    return measurements


class Trial:
    """The phases of one trial in ``folder``; ``report(phase)`` is told each phase as it starts."""

    def __init__(self, spec: TrialSpec | DenseSpec, study: StudyConfig, folder: Path, init: str | None = None,
                 report: Callable[[str], None] = lambda phase: None):
        self.spec, self.study, self.folder, self.init, self.report = spec, study, Path(folder), init, report
        self.phases: dict = read_json(self.folder / PHASES_FILE) or {}
        self.is_dense = isinstance(spec, DenseSpec)

    def _done(self, phase: str, figures: dict) -> None:
        self.phases[phase] = figures
        atomic_write_json(self.folder / PHASES_FILE, self.phases)

    def run(self) -> dict:
        """Every phase not done yet; returns the trial's measurements (also written to measurements.json)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.folder / SPEC_FILE, {"id": self.spec.id, "name": self.spec.name,
                                                    **dataclasses.asdict(self.spec)})
        started = time.monotonic()
        if "train" not in self.phases:
            self.report("train")
            self._done("train", self._train())
        for mode in self.study.memory_modes:
            if f"compile:{mode}" not in self.phases:
                self.report(f"compile {mode}")
                self._done(f"compile:{mode}", self._compile(mode))
        budget = getattr(self.study, "sram_budget", 0)
        if budget and self.phases.get(BUDGET_PHASE, {}).get("sram_budget") != budget:
            self.report(f"compile Shared_Sram, weights in SRAM within {budget:,} B")
            self._done(BUDGET_PHASE, self._compile("Shared_Sram", budget))
        if not self._evaluated("evaluate"):
            self.report("evaluate")
            self._done("evaluate", self._evaluate(self.folder / "model_int8.onnx"))
        if self.is_dense and not self._evaluated("evaluate_fp32"):
            self.report("evaluate fp32")
            self._done("evaluate_fp32", self._evaluate(Path(self.phases["train"]["float_checkpoint"])))
        measurements = {"id": self.spec.id, "name": self.spec.name, "dense": self.is_dense,
                        "structure": "dense" if self.is_dense else self.spec.structure,
                        "sparsity": 0.0 if self.is_dense else self.spec.sparsity,
                        "unit_sparsity": 0.0 if self.is_dense else self.spec.unit_sparsity,
                        "seconds": round(time.monotonic() - started, 1), "settings": study_settings(self.study),
                        **self.phases}
        atomic_write_json(self.folder / DONE_FILE, measurements)
        self.report("done")
        return measurements

    def _evaluated(self, phase: str) -> bool:
        """Whether ``phase`` was scored on the mixture set and metrics the study asks for now."""
        done = self.phases.get(phase)
        return done is not None and done.get("evaluation") == self.study.evaluation()

    # -- phases
    def _train(self) -> dict:
        from tvmse.models.export import export_qdq_onnx
        from tvmse.models.sparsity import sparsity_report
        from tvmse.train import Trainer, to_device

        config = (self.spec.train_config(self.study.data) if self.is_dense
                  else self.spec.train_config(self.study.data, self.init))
        started = time.monotonic()
        trainer = Trainer(config, self.folder / "train", resume=True, quiet=True)
        trainer.checkpoint_every = CHECKPOINT_EVERY
        model = to_device(trainer.run(), "cpu")
        seconds = time.monotonic() - started
        onnx_path = self.folder / "model_int8.onnx"
        fd, tmp = tempfile.mkstemp(prefix=".model_int8.", suffix=".onnx", dir=self.folder)
        os.close(fd)
        try:
            export_qdq_onnx(model, tmp)
            os.replace(tmp, onnx_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        report = sparsity_report(model)
        float_checkpoint = (self.folder / "train" / "float.pt") if config.float_steps > 0 else Path(config.init)
        return {"steps": config.total_steps, "float_steps": config.float_steps, "wqat_steps": config.wqat_steps,
                "qat_steps": config.qat_steps, "train_seconds": round(seconds, 1),
                "params": report.params, "weights": report.weights, "nonzero_params": report.nonzero_params,
                "nonzero_weights": report.nonzero_weights, "weight_sparsity": report.weight_sparsity,
                "units_alive": list(report.units_alive), "hidden": config.hidden,
                "float_checkpoint": str(float_checkpoint)}

    def _compile(self, mode: str, sram_budget: int | None = None) -> dict:
        from tvmse.compile import compile_model

        folder = self.folder / "compile" / (f"{mode}-sram{sram_budget}" if sram_budget else mode)
        result = compile_model(self.folder / "model_int8.onnx", "ethos-u55", accelerator_config=ACCELERATOR,
                               memory_mode=mode, output_dir=folder, sram_budget=sram_budget)
        npu, memory = result.report["npu"], result.report["npu"]["memory"]
        return {"total_cycles": npu["total_cycles_per_frame"], "npu_cycles": npu["npu_cycles_per_frame"],
                "ms_per_frame": npu["ms_per_frame"], "flash_bytes": memory["flash_bytes"],
                "sram_bytes": memory["sram_bytes"], "encoded_weight_bytes": memory["encoded_weight_bytes"],
                "macs": result.report["model"]["macs_per_frame"], "cpu_fallback_ops": len(npu["cpu_fallback_ops"]),
                "summary": result.summary, **({"sram_budget": sram_budget} if sram_budget else {})}

    def _evaluate(self, model: Path) -> dict:
        from tvmse import evaluate as ev

        ev_config = self.study.evaluation()
        mixtures = ev.mixture_set(ev_config["data"], ev_config["split"], ev_config["n"], ev_config["seed"])
        metrics = ev_config["metrics"]
        return {**ev.summarize(ev.score_noisy(mixtures, metrics),
                               ev.score_enhanced(ev.load_mask_function(str(model)), mixtures, metrics, quiet=True)),
                "model": str(model), "evaluation": ev_config}
