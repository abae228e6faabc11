"""Durable file primitives: atomic replace and locked, fsynced appends.

Invariant: a file soul writes is either its old content or its new content (temp + fsync +
rename + directory fsync), and an appended record is one `write()` under an exclusive `flock`
followed by `fsync`; a short write is rolled back before the error is raised.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from soul.errors import SoulError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Replace `path` with `data` so a crash leaves either the old or the new file."""
    import tempfile

    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def file_lock(path: Path, timeout: float | None = 30.0, shared: bool = False) -> Iterator[int]:
    """Hold a `flock` on `path` (created if missing). flock, not lockf: closing another
    descriptor of the same file must not release it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    kind = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, kind | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise SoulError(f"timed out waiting for lock {path}") from None
                time.sleep(0.005)
        yield fd
    finally:
        os.close(fd)


def try_lock(path: Path) -> int | None:
    """Take an exclusive flock without waiting; return the fd (caller closes) or None if held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def append_record(fd: int, record: bytes) -> None:
    """Append one record with a single write() and fsync; undo a short write.

    The caller holds the flock on `fd` (opened with O_APPEND)."""
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        written = os.write(fd, record)
    except OSError as exc:
        _rollback(fd, start)
        raise SoulError(f"could not write the event log: {os.strerror(exc.errno or errno.EIO)}") from exc
    if written != len(record):
        _rollback(fd, start)
        raise SoulError("could not write the event log: short write (disk full?)")
    try:
        os.fsync(fd)
    except OSError as exc:
        # After a failed fsync the page cache may be lying; the record is not acknowledged.
        _rollback(fd, start)
        raise SoulError(f"could not sync the event log to disk: {os.strerror(exc.errno or errno.EIO)}") from exc


def _rollback(fd: int, size: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, size)
        os.fsync(fd)
