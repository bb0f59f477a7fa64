"""The ``tvmse`` command: one entry point for every subcommand, and the help style they share.

``tvmse NAME ARGS…`` runs ``python -m tvmse.NAME ARGS…``: each subcommand is a module with a
``main(argv) -> int`` and builds its parser with :func:`command_parser`, so ``tvmse train --help``
and ``python -m tvmse.train --help`` print the same text (only the program name differs) and every
option shows its default.

A new subcommand is one line in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand → (module with main(argv), one-line summary for `tvmse --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "compile": ("tvmse.compile", "compile a model step (int8 .tflite, QDQ or float .onnx) for Ethos-U or the Cortex-M55"),
    "autotune": ("tvmse.autotune", "search weight placement in SRAM and pass decisions for an Ethos-U build"),
    "quantize": ("tvmse.quantize", "post-training int8 quantization of a float ONNX step (calibrated, TFLite's rules)"),
    "train": ("tvmse.train", "train TinyLSTM (float, int8-weight QAT with sparsity, int8 QAT) and export it"),
    "prune": ("tvmse.prune", "magnitude-prune a trained int8 checkpoint without retraining (baseline)"),
    "evaluate": ("tvmse.evaluate", "SDR, SI-SDR, PESQ, STOI of a model on a fixed mixture set"),
    "enhance": ("tvmse.enhance", "enhance a noisy .wav with a model or a compiled output folder"),
    "study": ("tvmse.study", "the sparsity tradeoff study on Ray: train, compile and score a grid, Pareto plots"),
}

# "tvmse" while the console script dispatches, so subcommand usage lines read "tvmse NAME"
_invoked_as: str | None = None


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option with a default says so, with or without a help text of its own."""

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and _has_default(action):
            action = _with_help(action, "default: %(default)s")
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if _has_default(action) and "%(default)" not in text and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _has_default(action: argparse.Action) -> bool:
    # identity, not equality: a default of 0 is shown, store_true's False is not; nor is an empty list
    return (bool(action.option_strings) and action.nargs != 0 and action.default != []
            and not any(action.default is skip for skip in (None, False, argparse.SUPPRESS)))


def _with_help(action: argparse.Action, text: str) -> argparse.Action:
    import copy
    clone = copy.copy(action)
    clone.help = text
    return clone


def command_parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of subcommand ``name``: program name, description from the module docstring
    (its first paragraph), the shared help formatter."""
    prog = f"{_invoked_as} {name}" if _invoked_as else f"python -m tvmse.{name}"
    description = (doc or "").strip().split("\n\n")[0]
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: tvmse COMMAND [options]   (tvmse COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    global _invoked_as
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from tvmse import __version__
        print(f"tvmse {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"tvmse: error: unknown command '{name}'; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    _invoked_as = "tvmse"
    try:
        return importlib.import_module(COMMANDS[name][0]).main(rest)
    finally:
        _invoked_as = None


if __name__ == "__main__":  # python -m tvmse.cli: dispatch through the imported module, whose state parsers read
    from tvmse.cli import main as dispatch
    sys.exit(dispatch())
