"""The log files on disk during a purge: removed lines go, in place, and nothing else is lost.

Invariant: a log is only ever rewritten under its own flock and in place (a writer blocked on the
lock holds the inode), after its kept content was saved under `.soul/purge-scratch/`; so a crash at
any point leaves either the old file, the new file, or a short file that the next run repairs from
the saved copy plus whatever was appended since.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from soul import fsutil, store
from soul.purge import journal
from soul.purge.rewrite import LineFilter


def filter_worktree(home: Path, filt: LineFilter, scratch: Path) -> list[str]:
    """Drop removed lines from the log files on disk, in place, under each log's lock; return the
    logs that had to be repaired after an interrupted run.

    In place (not rename) because a writer blocked on the flock holds the old inode and would append
    to an unlinked file. The kept content is saved to `scratch` first, so a crash between the
    truncate and the write is repaired by the next run (see `_recover`)."""
    scratch.mkdir(parents=True, exist_ok=True)
    repaired: list[str] = []
    for path in store.log_files(home):
        rel = path.relative_to(home).as_posix()
        copy = scratch / rel.replace("/", "__")
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = _read_fd(fd)
            if copy.exists():
                kept = _recover(copy.read_bytes(), data, filt)
                repaired.append(rel)
            else:
                kept, dropped = filt.split(data)
                if not dropped:
                    continue
                fsutil.atomic_write(copy, kept, mode=0o600)
            # Truncate first: a crash in between leaves a short file (repaired from `copy` by the next
            # run), never a mix of old and new bytes that a commit could capture with removed text.
            os.ftruncate(fd, 0)
            journal.crash_point("worktree-torn")
            os.pwrite(fd, kept, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        copy.unlink()
    return repaired


def _read_fd(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _recover(saved: bytes, current: bytes, filt: LineFilter) -> bytes:
    """The saved kept content, plus whole valid lines appended since that are not removed."""
    have = set(saved.splitlines(keepends=True))
    extra = [
        line
        for line in current.splitlines(keepends=True)
        if line.endswith(b"\n") and line not in have and store.parse_line(line) is not None and not filt.drops(line)
    ]
    return saved + b"".join(extra)
