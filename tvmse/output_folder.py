"""Output folders: checked before any work, staged beside the target, published atomically, locked.

Owns every rule about where a command writes its results:

- ``check_output_dir`` (no side effects, run before any work): refuses the current folder or one of
  its ancestors, the folder holding the input model (or an ancestor of it), a path the file system
  cannot hold (too long), a file in the way, and an existing non-empty folder tvmse did not write
  (no ``.tvmse-output`` marker) unless ``force``.
- ``staged_output`` (a context manager, entered once the model has been read): creates missing parents,
  takes the lock ``.NAME.lock`` beside the target (a second run to the same folder fails clearly),
  restores or removes what killed runs left (``.NAME.old-*``, ``.NAME.tmp-*``), yields a fresh staging
  folder ``.NAME.tmp-*`` beside the target, writes the marker and publishes it: one atomic exchange
  (``renameat2(RENAME_EXCHANGE)``) when an older output exists, one rename when none does, a
  rename-aside with restore where the file system cannot exchange. Signals are held back during the
  renames, so at every instant the old output or the new one is in place, never neither. On any failure,
  Ctrl-C or SIGTERM the staging folder, the lock and the parents it created are removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from tvmse.errors import OutputError, signals_deferred

MARKER = ".tvmse-output"
#: Longest output folder name: the staging name ``.NAME.tmp-XXXXXXXX`` must still fit NAME_MAX.
_STAGING_EXTRA = len("..tmp-") + 8


def marker_text(model_path: Path | None) -> str:
    from tvmse import __version__
    return json.dumps({"written_by": f"tvmse {__version__}",
                       "model": str(model_path) if model_path else None}) + "\n"


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path):
        path = path.parent
    return path


def check_output_dir(output_dir: str | os.PathLike, model_path: str | os.PathLike | None = None,
                     force: bool = False, option: str = "--output-dir") -> Path:
    """Validate ``output_dir`` as a place to publish into; OutputError saying why not. Creates nothing."""
    given = str(output_dir)
    if not given.strip():
        raise OutputError(f"{option} is empty; give a folder name")
    target = Path(os.path.abspath(given))
    try:
        name_max = os.pathconf(_nearest_existing(target), "PC_NAME_MAX")
        path_max = os.pathconf(_nearest_existing(target), "PC_PATH_MAX")
    except OSError:
        name_max, path_max = 255, 4096
    long_parts = [p for p in target.parts[1:-1] if len(os.fsencode(p)) > name_max]
    if len(os.fsencode(target.name)) > name_max - _STAGING_EXTRA:
        long_parts.append(target.name)
    if long_parts or len(os.fsencode(str(target))) + _STAGING_EXTRA >= path_max:
        raise OutputError(f"{option} {given[:60]}{'…' if len(given) > 60 else ''} is too long for the file system "
                          f"(names up to {name_max - _STAGING_EXTRA} bytes, paths up to {path_max - _STAGING_EXTRA - 1}); "
                          "choose a shorter path")
    if target.is_symlink():
        raise OutputError(f"{option} {given} is a symbolic link; give the folder it points to")
    real = target.resolve()
    cwd = Path.cwd().resolve()
    if _is_within(cwd, real):
        raise OutputError(f"{option} {given} is the current folder or holds it; publishing would replace it. "
                          "Choose a new folder, e.g. out/<name>")
    if model_path is not None:
        model_real = Path(model_path).resolve()
        if _is_within(model_real, real):
            raise OutputError(f"{option} {given} holds the input model {model_path}; publishing would delete it. "
                              "Choose another folder")
    existing = _nearest_existing(target)
    if existing == target:
        if not target.is_dir():
            raise OutputError(f"output path {given} exists and is not a directory; choose another {option}")
        if any(target.iterdir()) and not (target / MARKER).is_file() and not force:
            raise OutputError(f"{option} {given} exists and was not written by tvmse (no {MARKER} marker); "
                              "choose another folder, or pass --force to replace it and everything in it")
    elif not existing.is_dir():
        raise OutputError(f"cannot write output directory {given}: {existing} is a file; choose another {option}")
    if not os.access(existing if existing != target else target.parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write output directory {given}: {existing} is not writable; "
                          f"choose a writable {option}")
    return target


# ---- publishing ------------------------------------------------------------------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the platform or file system cannot."""
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def publish(staging: Path, output_dir: Path) -> None:
    """Put the finished ``staging`` folder at ``output_dir``; an older output there is replaced in one
    step and then deleted. Signals wait until the renames are done."""
    aside = None
    with signals_deferred():
        if not output_dir.exists():
            os.rename(staging, output_dir)
            return
        if not _exchange(staging, output_dir):
            aside = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
            os.rename(output_dir, aside)
            try:
                os.rename(staging, output_dir)
            except BaseException:
                os.rename(aside, output_dir)
                raise
    shutil.rmtree(aside or staging, ignore_errors=True)  # the old output (staging holds it after a swap)


def _siblings(output_dir: Path, kind: str) -> list[Path]:
    prefix = f".{output_dir.name}.{kind}-"
    try:
        return sorted(output_dir.parent / n for n in os.listdir(output_dir.parent) if n.startswith(prefix))
    except OSError:
        return []


def recover_stale(output_dir: Path) -> None:
    """Undo what killed runs left beside ``output_dir`` (call with the lock held): an output set aside
    by an interrupted publish comes back if nothing replaced it; staging folders are deleted."""
    olds = _siblings(output_dir, "old")
    if olds and not output_dir.exists():
        os.rename(olds.pop(), output_dir)
    for stale in olds + _siblings(output_dir, "tmp"):
        shutil.rmtree(stale, ignore_errors=True)


class _Lock:
    """``.NAME.lock`` beside the output, held with flock while a run owns that output."""

    def __init__(self, output_dir: Path):
        self.path = output_dir.with_name(f".{output_dir.name}.lock")
        self.output_dir = output_dir
        self.fd: int | None = None

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise OutputError(f"{self.output_dir} is being written by another tvmse run (pid {holder}); "
                                  "wait for it to finish or choose another --output-dir") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # else the previous holder removed it as we opened it: take the new one
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.fd)
        self.fd = None


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p ``folder``; the folders it created, deepest first."""
    created = []
    probe = folder
    while not os.path.lexists(probe):
        created.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {folder}: {e.strerror or e}; "
                          "choose a writable --output-dir") from None
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextlib.contextmanager
def staged_output(output_dir: str | os.PathLike, model_path: str | os.PathLike | None = None,
                  force: bool = False) -> Iterator[Path]:
    """A staging folder to fill instead of ``output_dir``; published with a marker when the block
    completes, deleted (with the lock and any parents made for it) if the block raises. Enter it only
    once the input has been read: that is when folders start to be made."""
    output_dir = check_output_dir(output_dir, model_path, force)
    created = _make_parents(output_dir.parent)
    lock = _Lock(output_dir)
    staging = None
    try:
        lock.acquire()
        recover_stale(output_dir)
        check_output_dir(output_dir, model_path, force)  # again under the lock: it may have changed
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
        except OSError as e:
            raise OutputError(f"cannot write output directory {output_dir}: {e.strerror or e}; "
                              "choose a writable --output-dir") from None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
        yield staging
        (staging / MARKER).write_text(marker_text(Path(model_path) if model_path else None))
        publish(staging, output_dir)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        lock.release()
        _remove_empty(created)
        raise
    lock.release()
