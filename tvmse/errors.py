"""User-facing errors and the one error boundary every command-line entry point runs inside.

A ``TvmseError`` is the user's input or environment: the boundary prints ``tvmse: error: …``
(what, where, what to do) and exits 2. Anything else escaping is a bug in tvmse: the boundary writes
the full traceback to a log file and prints one line saying so and where the log is (exit 3), never
a raw traceback. Ctrl-C and SIGTERM raise ``Interrupted`` wherever the program is, so every
``finally``/context manager cleans up (staging folders, locks, checkpoints), then the boundary exits
quietly with 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM).

Use it as ``@cli_entry`` on a ``main(argv) -> int``, or through ``run_command`` for commands that
parse arguments with argparse.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import functools
import logging
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable, Iterator

PROG = "tvmse"
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3


class TvmseError(Exception):
    """Base of every error caused by the user's input or environment."""

    exit_code = EXIT_USER_ERROR


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


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: unwinds like Ctrl-C (so ``except KeyboardInterrupt`` handlers that
    save work run for both), and the boundary exits with ``128 + signum``."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# OS errors that describe the machine, not tvmse: reported like a user error.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG,
                       errno.EMFILE, errno.ENFILE, errno.EIO}

_received_signal: int | None = None


def _raise_interrupted(signum, _frame) -> None:
    global _received_signal
    first = _received_signal is None
    _received_signal = signum
    if first:  # a second Ctrl-C during clean-up must not cut the clean-up short
        raise Interrupted(signum)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``Interrupted`` in the main thread while the block runs."""
    global _received_signal
    _received_signal = None
    if not _is_main_thread():  # signal handlers can only be set from the main thread
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _is_main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs (a few renames that must happen together);
    a signal that arrives meanwhile is delivered when it ends."""
    signals = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def crash_log_dir() -> Path:
    """Where internal-error logs go: ``$TVMSE_LOG_DIR``, else ``~/.cache/tvmse/logs``."""
    if os.environ.get("TVMSE_LOG_DIR"):
        return Path(os.environ["TVMSE_LOG_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "tvmse" / "logs"


def write_crash_log(exc: BaseException, argv: list[str]) -> Path | None:
    """The full traceback and the command line, in a new file; None if no folder is writable."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = (f"tvmse internal error, {datetime.datetime.now().isoformat()}\ncommand: {' '.join(argv)}\n"
            f"python: {sys.version.split()[0]}\n\n" + "".join(traceback.format_exception(exc)))
    for folder in (crash_log_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, path = tempfile.mkstemp(prefix=f"tvmse-crash-{stamp}-", suffix=".log", dir=folder)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            return Path(path)
        except OSError:
            continue
    return None


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit - 1] + "…"


def report_exception(exc: BaseException, argv: list[str] | None = None) -> int:
    """Print the one-line report of ``exc`` on stderr; return the exit code."""
    if isinstance(exc, TvmseError):
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt) or _received_signal is not None:
        # an exception while a signal unwinds the stack (e.g. wrapped by a C++ callback) is the signal
        signum = getattr(exc, "signum", None) or _received_signal or signal.SIGINT
        print(f"{PROG}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"{PROG}: error: {exc.strerror or exc}{where}; free space or fix the permissions and run again",
              file=sys.stderr)
        return EXIT_USER_ERROR
    log = write_crash_log(exc, list(sys.argv if argv is None else [sys.argv[0], *argv]))
    where = f"full traceback in {log}" if log else "no log could be written"
    print(f"{PROG}: internal error (a bug in tvmse, please report it): {type(exc).__name__}: "
          f"{_first_line(str(exc))}; {where}", file=sys.stderr)
    return EXIT_INTERNAL_ERROR


def guarded(body: Callable[[], int | None], argv: list[str] | None = None) -> int:
    """Run ``body`` inside the error boundary (see the module docstring); its result (None: 0) or
    the exit code of what escaped it."""
    with _signals_raise():
        try:
            return body() or 0
        except SystemExit:
            raise  # argparse's own usage errors (exit 2) and explicit exits
        except BrokenPipeError:  # `tvmse … | head`: the reader left, nothing to say
            return 0
        except BaseException as exc:  # noqa: BLE001 - this is the boundary
            try:
                return report_exception(exc, argv)
            except Interrupted as again:
                return 128 + again.signum


def cli_entry(main: Callable[[list[str] | None], int | None]) -> Callable[[list[str] | None], int]:
    """Decorator for ``main(argv)`` of a command: runs it inside the error boundary."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        return guarded(lambda: main(argv), argv)

    return wrapper


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None,
                command: Callable[[argparse.Namespace], int | None]) -> int:
    """``main`` of the training-side commands (train, prune, evaluate): timestamped INFO logging on
    stderr, parse ``argv``, run ``command`` inside the error boundary. ``command`` may return its own
    exit code (None: 0).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    args = parser.parse_args(argv)
    return guarded(lambda: command(args), argv)
