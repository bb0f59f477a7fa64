"""User-facing errors: each says what is wrong, where, and what to do.

The command-line entry points print ``str(error)`` and exit with ``error.exit_code``; no
traceback is shown for these. Anything else escaping is a bug in tvmse and keeps its traceback.
"""

from __future__ import annotations


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
