"""User-facing errors: each says what is wrong, where, and what to do.

The command-line entry points print ``str(error)`` and exit with ``error.exit_code``; no
traceback is shown for these. Anything else escaping is a bug in tvmse and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable


class TvmseError(Exception):
    """Base of every error caused by the user's input or environment."""

    exit_code = 2


class ModelFileError(TvmseError):
    """The model file is missing, unreadable or not the format its name claims."""


class UnsupportedModelError(TvmseError):
    """The model is valid but uses something tvmse does not compile (op, dtype, dynamic shape)."""


class QuantizationError(UnsupportedModelError):
    """The model is not (or not fully) int8-quantized the way tvmse needs."""


class ConfigError(TvmseError):
    """An option has a value tvmse does not know; the message lists the valid ones."""


class OutputError(TvmseError):
    """The output location cannot be written."""


class BudgetError(TvmseError):
    """The compiled model does not fit a stated memory budget."""


class ToolError(TvmseError):
    """An external tool (Vela, a compiler, an emulator) failed or is missing."""


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None,
                command: Callable[[argparse.Namespace], int | None]) -> int:
    """``main`` of the training-side commands (train, prune, evaluate): timestamped INFO logging on
    stderr, parse ``argv``, run ``command``; a TvmseError is printed as ``error: …`` and becomes the
    exit code, as the module docstring promises. ``command`` may return its own exit code (None: 0).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    args = parser.parse_args(argv)
    try:
        return command(args) or 0
    except TvmseError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
