"""The pass pipeline the Ethos-U compile runs by default, as one ordered list.

Each entry is a pass object with a ``name`` and ``run(graph) -> (graph, records)``; records are
dicts describing each rewrite (layer, shapes before/after, MACs before/after) for the report.
``--disable-pass NAME`` on the command line removes one by name.
"""

from __future__ import annotations

import logging

from tvmse.errors import ConfigError
from tvmse.ir import IntegerGraph

logger = logging.getLogger(__name__)

# Stage order: (structure) — none yet.
PIPELINE: list = []


def pass_names() -> list[str]:
    return [p.name for p in PIPELINE]


def check_disabled(disabled: tuple[str, ...]) -> None:
    unknown = sorted(set(disabled) - set(pass_names()))
    if unknown:
        raise ConfigError(f"unknown pass(es) {', '.join(unknown)}; passes: {', '.join(pass_names()) or 'none'}")


def run_pipeline(graph: IntegerGraph, disabled: tuple[str, ...] = ()) -> tuple[IntegerGraph, list[dict]]:
    check_disabled(disabled)
    records: list[dict] = []
    for p in PIPELINE:
        if p.name in disabled:
            logger.info("pass %s disabled", p.name)
            continue
        graph, done = p.run(graph)
        records += [{"pass": p.name, **r} for r in done]
    return graph, records
