"""tvmse: sparse int8 speech-enhancement networks compiled for Arm Ethos-U microNPUs and the Cortex-M55.

The Python API mirrors the ``tvmse`` command; each function takes the options of its subcommand as
keyword arguments::

    import tvmse
    result = tvmse.compile_model("examples/tinylstm_int8.onnx", target="cortex-m55")
    tvmse.enhance("noisy.wav", "enhanced.wav", model="examples/tinylstm_int8.onnx")
    tvmse.evaluate("examples/tinylstm_int8.onnx", n=20)
    tvmse.train("runs/dense", float_steps=1600, export="dense.onnx")

``tvmse.train``, ``tvmse.evaluate`` and ``tvmse.enhance`` are also the modules of those commands:
calling the module calls its API function (the package makes those submodules callable), so
``tvmse.train.Trainer`` and ``tvmse.train(...)`` both work whichever was imported first.
"""

from __future__ import annotations

import sys
import types

__version__ = "0.1.0"


def compile_model(model, target: str = "ethos-u55", **options):
    """Compile ``model`` (an int8 .tflite, an int8 QDQ or, with ``calibration``, float .onnx file, or a torch
    module with ``example_inputs``) for ``target``; options as ``tvmse compile``'s (``accelerator_config``,
    ``system_config``, ``memory_mode``, ``output_dir``, ``verify_trials``, ``disabled_passes``, ``state``,
    ``calibration``, ``percentile``, ``features``, ``sram_budget``, ``tuning``; for cortex-m55 ``run``,
    ``ram_budget``, ``frames``). Returns a CompileResult."""
    from tvmse.compile import compile_model as compile_
    return compile_(model, target, **options)


def _train(out, *, export=None, resume: bool = False, checkpoint_every: int | None = None,
           log_every: int | None = None, **config):
    """Train into the run folder ``out``; ``config`` takes ``tvmse train``'s options as TrainConfig fields
    (``float_steps``, ``structure``, ``sparsity``, ``data``, …). Returns the final (int8) model."""
    import dataclasses

    from tvmse.models.export import export_qdq_onnx
    from tvmse.train import TrainConfig, Trainer
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise TypeError(f"tvmse.train: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    trainer = Trainer(TrainConfig(**config), out, resume=resume)
    if checkpoint_every is not None:
        trainer.checkpoint_every = checkpoint_every
    if log_every is not None:
        trainer.log_every = log_every
    model = trainer.run()
    if export:
        export_qdq_onnx(model, export)
    return model


def _evaluate(model, *, data: str | None = None, split: str | None = None, n: int | None = None,
              seed: int | None = None, metrics=None):
    """Score ``model`` (.onnx, .pt or a compile output folder) on a fixed mixture set, as
    ``tvmse evaluate``; returns {"noisy": …, "enhanced": …, "improvement": …} of mean scores."""
    from tvmse import evaluate as ev
    from tvmse.metrics import METRICS
    metrics = list(metrics or METRICS)
    mixtures = ev.mixture_set(data or ev.DEFAULT_DATA, split or ev.DEFAULT_SPLIT,
                              ev.DEFAULT_N if n is None else n, ev.DEFAULT_SEED if seed is None else seed)
    return ev.summarize(ev.score_noisy(mixtures, metrics),
                        ev.score_enhanced(ev.load_mask_function(model), mixtures, metrics))


def _enhance(noisy, output=None, **options):
    """``tvmse enhance``: see :func:`tvmse.enhance.enhance`."""
    from tvmse.enhance import enhance
    return enhance(noisy, output, **options)


_API = {"train": _train, "evaluate": _evaluate, "enhance": _enhance}


class _CallableModule(types.ModuleType):
    """A command's module that, called, runs the command's API function (see the module docstring)."""

    def __call__(self, *args, **kwargs):
        return _API[self.__name__.rpartition(".")[2]](*args, **kwargs)


class _Package(types.ModuleType):
    """The ``tvmse`` package: makes each API submodule callable as the import system attaches it."""

    def __setattr__(self, name, value):
        if name in _API and isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            value.__class__ = _CallableModule
        super().__setattr__(name, value)

    def __getattr__(self, name):
        if name in _API:  # first use before any import of the submodule: import it (callable by __setattr__)
            import importlib
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


sys.modules[__name__].__class__ = _Package
