"""Train TinyLSTM: float, then int8-weight QAT with gradual pruning, then full int8 QAT; export QDQ ONNX.

Usage::

    python -m tvmse.train --data ../shared/data/manifest.json --out runs/dense --export examples/m.onnx
    python -m tvmse.train --init runs/dense/float.pt --structure block --sparsity 0.9 --out runs/block90 …

Phases, by global step (``--float-steps``, ``--wqat-steps``, ``--qat-steps``):

1. ``float``: the float model, run through torch's fused LSTM kernel (the same math as the
   streaming step, several times faster than stepping frame by frame in Python).
2. ``wqat``: the same fast path with every weight and bias fake-quantized to its int8 grid (and the
   input to its int8 grid). Sparsity is learned here jointly with the int8 weights: the pruning
   schedule (``--prune-start`` … ``--prune-end``, cubic ramp) runs inside this phase by default,
   so the weights that survive are trained on their quantization grid.
3. calibration (observers on for ``--calib-batches`` float batches), then ``qat``: the exact
   fake-quant streaming step (activations, cell state and LUT outputs on their int8 grids), masks
   fixed. This is what the export holds; it is slow (per-frame Python), so it is short and may use
   shorter segments (``--qat-seconds``). Observers follow the data for the first half of the
   phase and are frozen for the second.

Data: every batch is drawn fresh (:mod:`tvmse.data.mixing`) with the wide training mixture
(:data:`tvmse.data.mixing.TRAINING_MIX`: SNR −10…20 dB, random level, generated and babble noises, speed,
simulated rooms, second noises, modulation and EQ; ``--no-augment`` for the plain validation-style mixture).
The held-out noise types of the generalization protocol never enter training (:mod:`tvmse.data.corpus`).
Mixing runs ahead of the training thread: in one thread, or in ``--workers`` processes; spectra and features
are computed by torch on the training ``--device`` (``cpu`` or ``cuda``: the same code, so a GPU run resumes
on CPU and back; bit-exact resume holds on one device).

Progress, log and curves: see :mod:`tvmse.training_log` (a bar with ETA, ``<out>/train_log.jsonl``,
``<out>/training.png``); every ``--eval-every`` steps ΔSI-SDR on small fixed ``dev`` and ``dev_unseen``
sets (``--eval-mixtures`` mixtures of 4 s, fast path) goes into both.

Loss (see :func:`spectral_loss`): MSE between power-law compressed magnitudes (exponent 0.3) of
the masked noisy spectrum and the clean spectrum; with ``--complex-loss-weight w`` a share ``w`` of it
is the same MSE on compressed complex spectra (noisy phase against clean phase), which also charges
the gain left on bins where noise sets the phase.
With ``--sisdr-loss-weight w`` a share ``w`` of the loss is the negative SI-SDR of the enhanced waveform
(:func:`sisdr_loss`: the masked noisy spectrum through the inverse STFT), the figure models are judged by.

Checkpoints (``<out>/checkpoint.pt``) are written atomically (temporary file + ``os.replace``)
every ``--checkpoint-every`` steps and on Ctrl-C; ``--resume`` continues from it. Batch ``i`` is a
pure function of (seed, i), and model, optimizer, observers, masks and RNG state are restored,
so an interrupted and resumed run ends with the same weights as an uninterrupted one.
``<out>/float.pt`` is the model at the end of the float phase (the fp32 reference and the start
of sparse fine-tuning); ``<out>/final.pt`` the int8 model that is exported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import multiprocessing
import tempfile
import time
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from tvmse.cli import command_parser
from tvmse.data import UNSEEN_SPLIT, Corpus, MixConfig, MixtureSet, TrainingBatches, default_corpus_manifest
from tvmse.data.batches import Batch, batch_from_waveforms, torch_istft
from tvmse.data.mixing import TRAINING_MIX
from tvmse.errors import ConfigError, ModelFileError, run_command
from tvmse.models import TinyLSTM, TinyLSTMConfig
from tvmse.models.export import export_qdq_onnx
from tvmse.models.quant import fake_quant, fake_quant_bias, fake_quant_weight, weight_scales
from tvmse.models.sparsity import (DEFAULT_BLOCK, HYBRID_STRUCTURES, STRUCTURES, apply_masks, check_sparsity, check_structure, compute_masks,
                                   cubic_schedule, parse_block, sparsity_report)
from tvmse.models.tinylstm import FEATURE_SCALE
from tvmse.training_log import TrainingLog

log = logging.getLogger("tvmse.train")

DEFAULT_DATA = str(default_corpus_manifest())
COMPRESSION = 0.3  # magnitude exponent of the loss
EPSILON = 1e-8


@dataclass
class TrainConfig:
    """Everything that determines a run's result (stored in every checkpoint)."""

    data: str = DEFAULT_DATA
    split: str = "train"
    seed: int = 0
    hidden: int = 256
    layers: int = 2
    n_bins: int = 257
    batch_size: int = 16
    seconds: float = 2.0
    float_steps: int = 2000
    wqat_steps: int = 300
    qat_steps: int = 40
    qat_batch_size: int = 8
    qat_seconds: float = 1.0
    calib_batches: int = 4
    lr: float = 1e-3
    wqat_lr: float = 3e-4
    qat_lr: float = 1e-4
    clip: float = 5.0
    structure: str = "none"
    sparsity: float = 0.0
    unit_sparsity: float = 0.0  # hybrid structures (unit+weight, unit+block): fraction of hidden units removed
    block: str = f"{DEFAULT_BLOCK[0]}x{DEFAULT_BLOCK[1]}"
    prune_start: int | None = None  # default: start of wqat
    prune_end: int | None = None  # default: 3/4 through wqat
    prune_every: int = 20
    init: str | None = None
    threads: int = 1  # torch threads: under CPU contention 2 OpenMP threads ran ~8x slower than 1
    complex_loss_weight: float = 0.0  # share of the compressed complex-spectrum term in the loss
    sisdr_loss_weight: float = 0.0  # share of the time-domain SI-SDR term in the loss
    augment: bool = True  # TRAINING_MIX (wide SNR/level, generated noises, augmentation) or the plain MixConfig()

    @property
    def mix(self) -> MixConfig:
        return TRAINING_MIX if self.augment else MixConfig()

    @property
    def total_steps(self) -> int:
        return self.float_steps + self.wqat_steps + self.qat_steps

    def schedule(self) -> tuple[int, int]:
        start = self.float_steps if self.prune_start is None else self.prune_start
        end = self.float_steps + (3 * self.wqat_steps) // 4 if self.prune_end is None else self.prune_end
        return start, max(end, start)

    def phase(self, step: int) -> str:
        if step < self.float_steps:
            return "float"
        if step < self.float_steps + self.wqat_steps:
            return "wqat"
        return "qat"

    def validate(self) -> None:
        if self.structure != "none":
            check_structure(self.structure)
            parse_block(self.block)
        check_sparsity(self.sparsity)
        check_sparsity(self.unit_sparsity)
        if (self.unit_sparsity > 0) != (self.structure in HYBRID_STRUCTURES):
            raise ConfigError(f"--unit-sparsity > 0 goes with --structure {' or '.join(HYBRID_STRUCTURES)} only "
                              f"(got --structure {self.structure}, --unit-sparsity {self.unit_sparsity})")
        if not 0.0 <= self.complex_loss_weight <= 1.0:
            raise ConfigError(f"--complex-loss-weight must be in [0, 1], got {self.complex_loss_weight}")
        if not 0.0 <= self.sisdr_loss_weight <= 1.0:
            raise ConfigError(f"--sisdr-loss-weight must be in [0, 1], got {self.sisdr_loss_weight}")
        if self.structure == "none" and self.sparsity > 0:
            raise ConfigError(f"--sparsity needs --structure {', '.join(STRUCTURES)}")
        for name in ("float_steps", "wqat_steps", "qat_steps", "calib_batches"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0")


# ---- data ----------------------------------------------------------------------------------------
class CachedCorpus(Corpus):
    """Corpus that keeps decoded utterances in memory: decoding FLAC dominated batch time."""

    def load_speech(self, path):
        cache = self.__dict__.setdefault("_speech_cache", {})
        if path not in cache:
            cache[path] = super().load_speech(path)
        return cache[path]


def open_corpus(path: str) -> Corpus:
    corpus = Corpus.from_manifest(path)
    return CachedCorpus(root=corpus.root, speech=corpus.speech, noise=corpus.noise)


# ---- model paths ---------------------------------------------------------------------------------
def fast_forward(model: TinyLSTM, features: torch.Tensor, quantize_weights: bool = False) -> torch.Tensor:
    """Masks [B, T, n_bins] from features with torch's fused LSTM (zero initial state).

    Same math as the float streaming step (gate order i, f, g, o; W acting on concat(x, h)).
    With ``quantize_weights`` every weight and bias sits on its int8/int32 grid and the input on
    the int8 feature grid, as in the integer graph; activations stay float.
    """
    H = model.config.hidden
    x = fake_quant(features, FEATURE_SCALE) if quantize_weights else features
    fcs = model.effective_weights()
    for name, w, b in fcs[:-1]:
        if quantize_weights:
            w, b = fake_quant_weight(w), fake_quant_bias(b, FEATURE_SCALE * weight_scales(w))
        k = w.shape[1] - H
        zeros = torch.zeros(1, x.shape[0], H, device=x.device)
        weights = [w[:, :k].contiguous(), w[:, k:].contiguous(), b, torch.zeros_like(b)]
        x = torch._VF.lstm(x, (zeros, zeros), weights, True, 1, 0.0, model.training, False, True)[0]
    _, w, b = fcs[-1]
    if quantize_weights:
        w, b = fake_quant_weight(w), fake_quant_bias(b, FEATURE_SCALE * weight_scales(w))
    return torch.sigmoid(x @ w.t() + b)


def spectral_loss(mask: torch.Tensor, batch: Batch, complex_weight: float = 0.0) -> torch.Tensor:
    """MSE of power-law compressed magnitudes, ``mean((|M·Y|^0.3 − |S|^0.3)²)``.

    Why: the model outputs a real mask, so magnitude is all it controls; compression (as in
    loudness perception) keeps quiet speech bins from being ignored next to loud ones, which
    tracks PESQ/STOI better than plain spectral MSE, and needs no inverse STFT in the loop.
    """
    noisy_magnitude = batch.noisy_spectrum.abs()
    estimate = (mask * noisy_magnitude + EPSILON) ** COMPRESSION
    target = (batch.clean_magnitude + EPSILON) ** COMPRESSION
    loss = (estimate - target).square().mean()
    if complex_weight > 0:  # compressed complex spectra: |X|^0.3 · e^{j∠X}, estimate with the noisy phase
        noisy_phase = batch.noisy_spectrum / (noisy_magnitude + EPSILON)
        clean_phase = batch.clean_spectrum / (batch.clean_magnitude + EPSILON)
        complex_error = (estimate * noisy_phase - target * clean_phase).abs().square().mean()
        loss = (1 - complex_weight) * loss + complex_weight * complex_error
    return loss


SISDR_LOSS_SCALE = 0.01  # dB → loss units: −10 dB SI-SDR counts as much as a magnitude MSE of 0.1


def sisdr_loss(mask: torch.Tensor, batch: Batch) -> torch.Tensor:
    """``−SI-SDR(istft(M·Y), s) · SISDR_LOSS_SCALE``, averaged over the batch.

    Why: SI-SDR is the figure the model is judged by, and the magnitude loss does not see what the noisy phase
    does to it: a time-domain term charges every bin's gain by its effect on the waveform, and an output worse
    than its input costs as much as a better one gains. The clean waveform is the inverse STFT of the clean
    spectrum (the framing reconstructs perfectly), so the batch needs nothing new.
    """
    estimate = torch_istft(mask * batch.noisy_spectrum)
    clean = torch_istft(batch.clean_spectrum)
    scale = (estimate * clean).sum(-1, keepdim=True) / (clean.square().sum(-1, keepdim=True) + EPSILON)
    target = scale * clean
    ratio = (target.square().sum(-1) + EPSILON) / ((estimate - target).square().sum(-1) + EPSILON)
    return -SISDR_LOSS_SCALE * (10.0 * torch.log10(ratio)).mean()


# ---- checkpoints ---------------------------------------------------------------------------------
def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_TEMP_NAME = r"\.{name}\.[A-Za-z0-9_]{{8}}"   # what atomic_save's mkstemp names look like


def remove_stale_temporaries(folder: Path, names=("checkpoint.pt", "float.pt", "final.pt")) -> list[Path]:
    """Delete the temporary files of ``atomic_save`` calls that a killed run never finished."""
    import re
    if not folder.is_dir():
        return []
    patterns = [re.compile(_TEMP_NAME.format(name=re.escape(n))) for n in names]
    removed = []
    for entry in folder.iterdir():
        if entry.is_file() and any(p.fullmatch(entry.name) for p in patterns):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    if removed:
        log.info("removed %d unfinished checkpoint write(s) of an interrupted run: %s", len(removed),
                 ", ".join(p.name for p in removed))
    return removed


def read_checkpoint(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict:
    """``torch.load`` of a tvmse checkpoint with every way it can be broken turned into one clear
    ModelFileError: missing, a folder, empty, truncated or damaged, not a tvmse checkpoint."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise ModelFileError(f"checkpoint {path} is not a file; remove or rename it, or give the checkpoint file")
    if path.stat().st_size == 0:
        raise ModelFileError(f"checkpoint {path} is empty (its write was interrupted?); delete it and start again, "
                             "or restore a copy")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many types (zip, pickle, EOF, Runtime) for a bad file
        reason = " ".join(str(err).split())[:160] or type(err).__name__
        raise ModelFileError(f"checkpoint {path} is damaged or truncated ({type(err).__name__}: {reason}); "
                             "delete it and start again, or restore a copy") from None
    if not isinstance(state, dict) or any(k not in state for k in required):
        missing = [k for k in required if not isinstance(state, dict) or k not in state]
        raise ModelFileError(f"{path} is not a tvmse training checkpoint (no {', '.join(missing) or 'dict'}); "
                             "give a checkpoint.pt, float.pt or final.pt written by python -m tvmse.train")
    return state


def to_device(model: TinyLSTM, device: str | torch.device) -> TinyLSTM:
    """Move parameters, buffers and the sparsity masks (plain dicts, not module state) to ``device``."""
    model.to(device)
    model.weight_masks = {k: v.to(device) for k, v in model.weight_masks.items()}
    model.bias_masks = {k: v.to(device) for k, v in model.bias_masks.items()}
    return model


def model_state(model: TinyLSTM) -> dict:
    return {"config": dataclasses.asdict(model.config), "state_dict": model.state_dict(),
            "weight_masks": model.weight_masks, "bias_masks": model.bias_masks,
            "quantized": model.quantized}


def restore_model(state: dict) -> TinyLSTM:
    model = TinyLSTM(TinyLSTMConfig(**state["config"]))
    model.load_state_dict(state["state_dict"])
    model.weight_masks = dict(state["weight_masks"])
    model.bias_masks = dict(state["bias_masks"])
    model.quantized = bool(state["quantized"])
    return model


def load_model(path: str | os.PathLike) -> TinyLSTM:
    """The model of a checkpoint (``checkpoint.pt``, ``float.pt`` or ``final.pt``), masks installed."""
    state = read_checkpoint(path)
    state = state.get("model", state)
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ModelFileError(f"{path} is not a tvmse TinyLSTM checkpoint")
    try:
        return restore_model(state)
    except (KeyError, TypeError, RuntimeError) as err:
        raise ModelFileError(f"{path} does not hold a TinyLSTM this tvmse can restore ({type(err).__name__}: "
                             f"{' '.join(str(err).split())[:160]})") from None


# ---- batches ahead of the training thread ---------------------------------------------------------
_PRODUCER: Callable | None = None  # the function worker processes call (inherited through fork)


def _call_producer(index: int):
    return _PRODUCER(index)


def prefetched(produce: Callable[[int], object], indices: Iterable[int], workers: int = 0) -> Iterator:
    """``produce(i)`` for each index in order, computed ahead: by one thread (``workers`` 0) or by ``workers``
    forked processes (``produce`` must then return picklable data, e.g. numpy arrays), at most 2 per worker
    ahead so memory stays bounded."""
    global _PRODUCER
    if workers > 0:
        _PRODUCER = produce
        executor: Executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        call, ahead = _call_producer, 2 * workers
    else:
        executor, call, ahead = ThreadPoolExecutor(1), produce, 1
    indices = iter(indices)
    pending: deque = deque()
    try:
        for index in indices:
            pending.append(executor.submit(call, index))
            if len(pending) > ahead:
                break
        while pending:
            result = pending.popleft().result()
            following = next(indices, None)
            if following is not None:
                pending.append(executor.submit(call, following))
            yield result
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


class Trainer:
    """One training run in ``out``; :meth:`run` trains (or resumes) to the last step.

    ``device``, ``workers``, ``quiet`` and the logging intervals change how fast and how visibly a run goes,
    not its result, so they are not part of :class:`TrainConfig` (a run may resume with other values).
    """

    checkpoint_every = 100
    log_every = 20
    eval_every = 0  # 0: no evaluation during training
    eval_mixtures = 16

    def __init__(self, config: TrainConfig, out: str | os.PathLike, corpus: Corpus | None = None,
                 resume: bool = False, device: str = "cpu", workers: int = 0, quiet: bool = False):
        config.validate()
        self.config, self.out = config, Path(out)
        try:
            self.device = torch.device(device)
        except RuntimeError as err:
            raise ConfigError(f"--device {device!r} is not a torch device ({err}); use cpu or cuda") from err
        self.workers, self.quiet = workers, quiet
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: torch sees no CUDA device here; use --device cpu")
        if workers < 0:
            raise ConfigError("--workers must be >= 0")
        self.checkpoint_path = self.out / "checkpoint.pt"
        torch.set_num_threads(config.threads)
        self.corpus = corpus if corpus is not None else open_corpus(config.data)
        self.batches = TrainingBatches(self.corpus, config.split, config.batch_size, config.seconds, config.seed,
                                       config=config.mix)
        self.qat_batches = TrainingBatches(self.corpus, config.split, config.qat_batch_size, config.qat_seconds,
                                           config.seed, config=config.mix)
        self.step = 0
        self.history: list[tuple[int, float]] = []
        remove_stale_temporaries(self.out)
        if os.path.lexists(self.checkpoint_path) and not resume:
            raise ConfigError(f"{self.checkpoint_path} exists; pass --resume to continue it or choose another --out")
        if resume and os.path.lexists(self.checkpoint_path):
            self._resume()
        else:
            if resume:
                log.info("--resume: no %s yet, starting from step 0", self.checkpoint_path)
            self._start()
        to_device(self.model, self.device)
        self.optimizer = self._optimizer(self.optimizer.state_dict())

    # -- set-up
    def _start(self) -> None:
        torch.manual_seed(self.config.seed)
        if self.config.init:
            self.model = load_model(self.config.init)
            if self.model.config != TinyLSTMConfig(self.config.n_bins, self.config.hidden, self.config.layers):
                raise ConfigError(f"--init {self.config.init} has {self.model.config}, not the requested shape")
            self.model.quantized = False
        else:
            self.model = TinyLSTM(TinyLSTMConfig(self.config.n_bins, self.config.hidden, self.config.layers))
        self.optimizer = self._optimizer()

    def _optimizer(self, state: dict | None = None) -> torch.optim.Optimizer:
        """Adam over the model's parameters (where they are now), with ``state`` loaded if given."""
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr)
        if state is not None:
            optimizer.load_state_dict(state)
        return optimizer

    def _resume(self) -> None:
        state = read_checkpoint(self.checkpoint_path, required=(
            "train_config", "model", "observing", "optimizer", "torch_rng", "step", "history"))
        try:
            saved = TrainConfig(**state["train_config"])
        except TypeError as err:
            raise ModelFileError(f"cannot resume {self.checkpoint_path}: it was written by another tvmse version "
                                 f"({err}); start a new --out") from None
        if saved != self.config:
            diff = {k: (v, getattr(self.config, k)) for k, v in dataclasses.asdict(saved).items()
                    if getattr(self.config, k) != v}
            raise ConfigError(f"cannot resume {self.checkpoint_path}: options differ (saved, given): {diff}")
        self.model = restore_model(state["model"])
        self.model.observing = state["observing"]
        self.optimizer = self._optimizer(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.history = state["step"], list(state["history"])
        log.info("resumed %s at step %d/%d", self.checkpoint_path, self.step, self.config.total_steps)

    def save_checkpoint(self) -> None:
        atomic_save({"train_config": dataclasses.asdict(self.config), "model": model_state(self.model),
                     "observing": self.model.observing, "optimizer": self.optimizer.state_dict(),
                     "torch_rng": torch.get_rng_state(), "step": self.step, "history": self.history},
                    self.checkpoint_path)

    # -- one step
    def _lr(self, step: int) -> float:
        cfg = self.config
        phase = cfg.phase(step)
        if phase == "float":  # cosine from lr to lr/10
            return cfg.lr * (0.55 + 0.45 * math.cos(math.pi * step / max(cfg.float_steps, 1)))
        return cfg.wqat_lr if phase == "wqat" else cfg.qat_lr

    def _prune_if_due(self) -> None:
        cfg = self.config
        if cfg.structure == "none" or cfg.sparsity == 0:
            return
        start, end = cfg.schedule()
        due = start <= self.step <= end and ((self.step - start) % cfg.prune_every == 0 or self.step == end)
        if not due:
            return
        target = cubic_schedule(self.step, start, end, cfg.sparsity)
        if target <= 0:
            return
        units = cubic_schedule(self.step, start, end, cfg.unit_sparsity)  # hybrids: both levels ramp together
        apply_masks(self.model, compute_masks(self.model, cfg.structure, target, parse_block(cfg.block),
                                              unit_sparsity=units))
        if self.step % (cfg.prune_every * 10) == 0 or self.step == end:
            log.info("step %d: pruned to %.3f (%s)", self.step, target, sparsity_report(self.model, False).summary())

    def _enter_qat(self) -> None:
        """Calibrate activation scales on float batches, then switch to fake-quant with observers on."""
        cfg = self.config
        self.calibrate()
        self.model.quantized = True
        self.model.observing = cfg.qat_steps > 1

    def calibrate(self) -> None:
        cfg = self.config
        self.model.act_max.zero_()
        self.model.quantized, self.model.observing = False, True
        with torch.no_grad():
            for i in range(max(cfg.calib_batches, 1)):
                self.model.forward_layerwise(self.qat_batches.batch(10_000_000 + i, self.device).features)
        self.model.observing = False
        log.info("calibrated activation scales on %d batches", max(cfg.calib_batches, 1))

    def _loss(self, step: int, batch: Batch) -> torch.Tensor:
        phase = self.config.phase(step)
        if phase == "qat":  # the exact int8 step, layer by layer (each layer's input FC batched over frames)
            mask = self.model.forward_layerwise(batch.features)
        else:
            mask = fast_forward(self.model, batch.features, quantize_weights=phase == "wqat")
        loss = spectral_loss(mask, batch, self.config.complex_loss_weight)
        weight = self.config.sisdr_loss_weight
        if weight > 0:
            loss = (1 - weight) * loss + weight * sisdr_loss(mask, batch)
        return loss

    def _waveforms(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(noisy, clean) of the batch of ``step`` (numpy: this half runs in the prefetch thread or workers)."""
        return (self.qat_batches if self.config.phase(step) == "qat" else self.batches).waveforms(step)

    def _batch(self, step: int) -> Batch:
        return batch_from_waveforms(*self._waveforms(step), device=self.device)

    def train_step(self, batch: Batch) -> float:
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(self.step)
        self.model.train()
        loss = self._loss(self.step, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip)
        self.optimizer.step()
        if self.model.weight_masks or self.model.bias_masks:  # keep pruned parameters at exactly zero
            apply_masks(self.model, (self.model.weight_masks, self.model.bias_masks))
        return float(loss.detach())

    # -- the loop
    def run(self, stop_after: int | None = None) -> TinyLSTM:
        """Train to the end (or stop before step ``stop_after``, as an interruption would), return the model."""
        cfg = self.config
        last = cfg.total_steps if stop_after is None else min(stop_after, cfg.total_steps)
        started, ema = time.monotonic(), None
        self.training_log = TrainingLog(self.out, cfg.total_steps, self.step, self.quiet)
        first = self.step
        try:
            for noisy, clean in prefetched(self._waveforms, range(first, last), self.workers):
                self._phase_transitions()
                loss = self.train_step(batch_from_waveforms(noisy, clean, device=self.device))
                ema = loss if ema is None else 0.95 * ema + 0.05 * loss
                self.history.append((self.step, loss))
                self.step += 1
                self.training_log.progress(self.step, cfg.phase(self.step - 1), ema, self._lr(self.step - 1),
                                           time.monotonic() - started,
                                           self.step % self.log_every == 0 or self.step == cfg.total_steps)
                if self.eval_every and (self.step % self.eval_every == 0 or self.step == cfg.total_steps):
                    self.training_log.evaluation(self.step, self.evaluate())
                if self.step % self.checkpoint_every == 0 and self.step < cfg.total_steps:
                    self.save_checkpoint()
        except KeyboardInterrupt:
            self.training_log.close()
            log.warning("interrupted at step %d: writing %s (continue with --resume)", self.step,
                        self.checkpoint_path)
            self.save_checkpoint()
            raise
        self.training_log.close()
        if self.step > first:
            log.info("%d steps in %.1f s (%.2f steps/s)", self.step - first, time.monotonic() - started,
                     (self.step - first) / max(time.monotonic() - started, 1e-9))
        if self.step >= cfg.total_steps:
            self._finish()
            self.training_log.plot()
        self.save_checkpoint()
        return self.model

    # -- evaluation during training
    def _eval_sets(self) -> dict[str, MixtureSet]:
        """Small fixed sets of 4 s mixtures of dev and dev_unseen (the splits the corpus has)."""
        if not hasattr(self, "_eval_cache"):
            self._eval_cache = {}
            for split in ("dev", UNSEEN_SPLIT):
                if split in self.corpus.speech and split in self.corpus.noise and self.corpus.noise[split]:
                    self._eval_cache[split] = MixtureSet(self.corpus, split, n=self.eval_mixtures, seed=0,
                                                         seconds=4.0)
            if not self._eval_cache:
                log.warning("the corpus has neither a dev nor a %s split: no evaluation during training",
                            UNSEEN_SPLIT)
        return self._eval_cache

    def evaluate(self) -> dict[str, float]:
        """Mean ΔSI-SDR (dB) per evaluation set with the fast path (quantized weights after the float phase).

        Touches no random state and restores the training mode, so it does not change the run's result."""
        from tvmse.data import apply_mask, istft
        from tvmse.metrics import si_sdr

        scores = {}
        self.model.eval()
        with torch.no_grad():
            for split, mixtures in self._eval_sets().items():
                noisy = np.stack([m.noisy for m in mixtures])
                batch = batch_from_waveforms(noisy, np.stack([m.clean for m in mixtures]), device=self.device)
                masks = fast_forward(self.model, batch.features,
                                     quantize_weights=self.config.phase(self.step - 1) != "float").cpu().numpy()
                spectra = batch.noisy_spectrum.cpu().numpy()
                deltas = [si_sdr(m.clean, istft(apply_mask(spectra[i], masks[i]), len(m.noisy)))
                          - si_sdr(m.clean, m.noisy) for i, m in enumerate(mixtures)]
                scores[split] = round(float(np.mean(deltas)), 3)
        self.model.train()
        return scores

    def _phase_transitions(self) -> None:
        """Work due at the start of step ``self.step``: snapshots, calibration, observer freeze, pruning."""
        cfg = self.config
        if self.step == cfg.float_steps and cfg.float_steps > 0:
            atomic_save(model_state(self.model), self.out / "float.pt")
            log.info("float phase done: wrote %s", self.out / "float.pt")
        self._prune_if_due()
        qat_start = cfg.float_steps + cfg.wqat_steps
        if self.step == qat_start and not self.model.quantized:
            self._enter_qat()
        if self.step == qat_start + cfg.qat_steps // 2 and self.model.observing:
            self.model.observing = False
            log.info("step %d: activation observers frozen", self.step)

    def _finish(self) -> None:
        """Final model: calibrated and quantized even when no QAT step ran."""
        cfg = self.config
        if cfg.float_steps > 0 and cfg.wqat_steps == 0 and cfg.qat_steps == 0:
            atomic_save(model_state(self.model), self.out / "float.pt")
        if not self.model.quantized:
            self._enter_qat()
        self.model.observing = False
        self.model.eval()
        atomic_save(model_state(to_device(self.model, "cpu")), self.out / "final.pt")
        to_device(self.model, self.device)
        log.info("done: %s; wrote %s", sparsity_report(self.model).summary(), self.out / "final.pt")



# ---- command line --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = command_parser("train", __doc__)
    p.add_argument("--data", default=d.data, help="corpus manifest.json")
    p.add_argument("--split", default=d.split, help="corpus split to train on")
    p.add_argument("--out", required=True, help="run folder (checkpoints, float.pt, final.pt)")
    p.add_argument("--export", help="write the int8 model as QDQ ONNX here at the end")
    p.add_argument("--resume", action="store_true", help="continue <out>/checkpoint.pt")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--hidden", type=int, default=d.hidden)
    p.add_argument("--layers", type=int, default=d.layers)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--seconds", type=float, default=d.seconds, help="segment length of float/wqat batches")
    p.add_argument("--float-steps", type=int, default=d.float_steps)
    p.add_argument("--wqat-steps", type=int, default=d.wqat_steps, help="steps with int8 weights (fast path)")
    p.add_argument("--qat-steps", type=int, default=d.qat_steps, help="steps of exact int8 fake-quant")
    p.add_argument("--qat-batch-size", type=int, default=d.qat_batch_size)
    p.add_argument("--qat-seconds", type=float, default=d.qat_seconds)
    p.add_argument("--calib-batches", type=int, default=d.calib_batches)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--wqat-lr", type=float, default=d.wqat_lr)
    p.add_argument("--qat-lr", type=float, default=d.qat_lr)
    p.add_argument("--structure", default=d.structure, choices=["none", *STRUCTURES])
    p.add_argument("--sparsity", type=float, default=d.sparsity,
                   help="target fraction of zero weights per FC (unit: fraction of hidden units removed; "
                        "unit+weight, unit+block: fraction of the weights the removed units leave)")
    p.add_argument("--unit-sparsity", type=float, default=d.unit_sparsity,
                   help="unit+weight, unit+block: fraction of hidden units removed")
    p.add_argument("--block", default=d.block, help="block shape OUTPUTSxINPUTS")
    p.add_argument("--prune-start", type=int, help="first pruning step (default: start of wqat)")
    p.add_argument("--prune-end", type=int, help="step the target is reached (default: 3/4 through wqat)")
    p.add_argument("--prune-every", type=int, default=d.prune_every)
    p.add_argument("--init", help="start from this checkpoint's weights (e.g. a dense run's float.pt)")
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--complex-loss-weight", type=float, default=d.complex_loss_weight,
                   help="share of the compressed complex-spectrum MSE in the loss (0: magnitude only)")
    p.add_argument("--sisdr-loss-weight", type=float, default=d.sisdr_loss_weight,
                   help="share of the time-domain SI-SDR term in the loss (0: magnitude loss only)")
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="train on plain mixtures (SNR -5..15 dB, recorded noises only) instead of TRAINING_MIX")
    p.add_argument("--device", default="cpu", help="torch device to train on: cpu or cuda")
    p.add_argument("--workers", type=int, default=0,
                   help="processes that mix training audio ahead of the training thread (0: one thread)")
    p.add_argument("--checkpoint-every", type=int, default=Trainer.checkpoint_every)
    p.add_argument("--log-every", type=int, default=Trainer.log_every, help="steps between log lines/JSONL rows")
    p.add_argument("--eval-every", type=int, default=200,
                   help="steps between ΔSI-SDR evaluations on small dev and dev_unseen sets (0: none)")
    p.add_argument("--eval-mixtures", type=int, default=Trainer.eval_mixtures, help="mixtures per evaluation set")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or progress lines")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, _train)


def _train(args: argparse.Namespace) -> int | None:
    """Train as ``args`` say; Ctrl-C ends the run with exit code 130 instead of a traceback."""
    try:
        if args.quiet:
            logging.getLogger("tvmse").setLevel(logging.WARNING)
        for name in ("checkpoint_every", "log_every", "eval_mixtures"):
            if getattr(args, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
        if args.eval_every < 0:
            raise ConfigError("--eval-every must be >= 0")
        config = config_from_args(args)
        trainer = Trainer(config, args.out, resume=args.resume, device=args.device, workers=args.workers,
                          quiet=args.quiet)
        trainer.checkpoint_every, trainer.log_every = args.checkpoint_every, args.log_every
        trainer.eval_every, trainer.eval_mixtures = args.eval_every, args.eval_mixtures
        log.info("config %s", json.dumps(dataclasses.asdict(config)))
        model = trainer.run()
        if args.export:
            export_qdq_onnx(to_device(model, "cpu"), args.export)
            log.info("exported %s", args.export)
    except KeyboardInterrupt:
        return 130
    return None


if __name__ == "__main__":
    sys.exit(main())
