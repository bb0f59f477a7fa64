"""Progress of long loops: a tqdm bar with ETA on a terminal, plain lines otherwise, nothing when quiet.

``progress(items, total, "enhance")`` wraps an iterable. On a terminal (stderr is a TTY) it draws
a tqdm bar; in a log or pipe it writes a line ``desc: i/total (elapsed, ETA)`` every 5 s (none for a
short run), so CI logs stay short; with ``quiet=True`` it writes nothing. Commands made of a few long
stages (compile) log each stage with the time since the start instead (:func:`log_stages`).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
PLAIN_INTERVAL_S = 5.0


def progress(items: Iterable[T], total: int | None = None, desc: str = "", quiet: bool = False,
             unit: str = "it") -> Iterator[T]:
    if quiet:
        yield from items
        return
    total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    if sys.stderr.isatty():
        from tqdm import tqdm
        yield from tqdm(items, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)
        return
    yield from _plain_lines(items, total, desc, unit)


def _plain_lines(items: Iterable[T], total: int | None, desc: str, unit: str) -> Iterator[T]:
    """A line at most every ``PLAIN_INTERVAL_S`` seconds: none for a short run, a few for a long one."""
    started = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= PLAIN_INTERVAL_S:
            last = now
            elapsed = now - started
            if total:
                eta = elapsed / done * (total - done)
                print(f"{desc}: {done}/{total} {unit} ({elapsed:.0f} s, ETA {eta:.0f} s)", file=sys.stderr)
            else:
                print(f"{desc}: {done} {unit} ({elapsed:.0f} s)", file=sys.stderr)


class ElapsedFormatter(logging.Formatter):
    """``tvmse: [  12.3 s] message``: each stage line of a long command says when it started."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def format(self, record: logging.LogRecord) -> str:
        return f"tvmse: [{time.monotonic() - self.started:6.1f} s] {record.getMessage()}"


def log_stages(quiet: bool) -> None:
    """Log tvmse's stage lines (INFO) on stderr with the time since the start; warnings only when quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ElapsedFormatter())
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=[handler])
