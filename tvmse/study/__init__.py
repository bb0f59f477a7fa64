"""The sparsity tradeoff study as one command: train, compile and score a grid of structures and levels on Ray.

Usage::

    python -m tvmse.study --preset smoke --out runs/study-smoke
    python -m tvmse.study --preset paper --out runs/study-paper [--config study.toml] [--max-concurrent 2]
    python -m tvmse.study --preset frontier --out runs/study --address auto     # on an existing Ray cluster

Presets: ``smoke`` (two tiny trials, a check of every part in a few minutes), ``paper`` (weight, block and
unit pruning at the study's kind of levels), ``frontier`` (hybrids unit+weight and unit+block, and levels
beyond). A trial fine-tunes the dense float model with its sparsity (tvmse.train), exports int8 QDQ ONNX,
compiles it for ethos-u55-128 in Shared_Sram and Sram_Only (tvmse.compile) and scores it on the dev mixture
set (tvmse.evaluate: SDR, SI-SDR, PESQ-WB, STOI). The dense model is trained first (or taken from
``[dense] checkpoint`` of a --config file) and cached in the study folder.

Writes ``DIR/results.json`` and ``results.csv`` (one row per trial: quality and drops vs the fp32 dense model,
flash and SRAM bytes, cycles per memory mode, speed-up vs dense int8, compression vs fp32),
``DIR/pareto_speed.png`` (SDR drop vs speed-up), ``DIR/pareto_memory.png`` (SDR drop vs compression) and
``DIR/study.md`` (the table, the plots, the study's two headline points, the Pareto fronts). Trials checkpoint
their phases under ``DIR/trials/<id>/``: a killed study resumes where it stopped, and a finished one starts
no trial when run again.
"""

from tvmse.study.runner import main

__all__ = ["main"]
