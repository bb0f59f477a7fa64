"""Errors of the Cortex-M55 target, as ``tvmse.errors`` kinds so the CLI reports them cleanly."""

from tvmse.errors import BudgetError, ToolError, UnsupportedModelError


class LoweringError(UnsupportedModelError):
    """An integer op could not be lowered to TIR kernels for the Cortex-M55."""


class ArenaBudgetError(BudgetError):
    """The planned arena (plus the streaming state) does not fit ``--ram-budget``."""


class MismatchError(ToolError):
    """The emulated run's outputs differ from the host reference."""
