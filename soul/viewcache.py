"""A folded view kept current by folding only what was appended to the logs since the last fold.

Folding 100k memories from scratch takes ~4 s (parsing every line, then every handler); a
long-lived process (the daemon's warm server, an MCP server) refolds after every write it sees.
The logs are append-only, so usually only their tails are new, and new local events sort after
every event already folded: then folding just the tail gives exactly the view a full fold gives.

Invariant: `get()` returns what `fold(read_all(home))` would. The tail path is taken only when
- every file folded before still exists and still starts with the bytes folded (sha1 of the
  prefix: a merge or a purge that rewrote a file, even to a longer one, is caught), and
- every new event sorts after the last event folded (events pulled from a machine whose clock is
  behind sort earlier: full fold).
Anything else, or any doubt, is a full fold.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from soul import store
from soul.store import Event
from soul.view import View, fold, fold_into

Stamp = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class _Folded:
    """How much of one log is folded: `end` bytes (a line boundary), their sha1, and the file's
    stat when read; an unchanged stat means an unchanged file, so only changed files are hashed."""

    end: int
    digest: bytes
    stat: tuple[int, int, int]  # size, mtime_ns, inode


def _stat(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _read(path: Path, home: Path, offset: int, final: bool) -> tuple[list[Event], _Folded]:
    stat = _stat(path)
    events, end = store.read_log(home, path, offset=offset, final=final)
    with open(path, "rb") as handle:
        digest = hashlib.sha1(handle.read(end), usedforsecurity=False).digest()
    return events, _Folded(end, digest, stat)


@dataclass
class ViewCache:
    home: Path
    view: View | None = None
    stamp: Stamp | None = None
    files: dict[str, _Folded] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    last: tuple[str, str, str] | None = None
    full_folds: int = 0  # for tests and benchmarks: how often the slow path ran

    def get(self) -> View:
        paths = store.log_files(self.home)
        stamp = tuple((p.as_posix(), st.st_size, st.st_mtime_ns) for p in paths for st in [p.stat()])
        if self.view is not None and stamp == self.stamp:
            return self.view
        if self.view is None or not self._fold_tails(paths):
            self._fold_all(paths)
        self.stamp = stamp
        assert self.view is not None
        return self.view

    def reset(self) -> None:
        self.view = None
        self.stamp = None

    def _fold_all(self, paths: list[Path]) -> None:
        self.full_folds += 1
        files: dict[str, _Folded] = {}
        seen: set[str] = set()
        events: list[Event] = []
        for path in paths:
            found, files[path.as_posix()] = _read(path, self.home, 0, True)
            for event in found:
                if event["id"] not in seen:
                    seen.add(event["id"])
                    events.append(event)
        events.sort(key=store.fold_key)
        self.view = fold(events)
        self.files, self.seen = files, seen
        self.last = store.fold_key(events[-1]) if events else None

    def _fold_tails(self, paths: list[Path]) -> bool:
        """Fold only the new tails; False (and nothing changed) when a full fold is needed."""
        names = {p.as_posix() for p in paths}
        if any(name not in names for name in self.files):
            return False  # a log disappeared (purge, hand edit)
        files = dict(self.files)
        new: list[Event] = []
        for path in paths:
            name = path.as_posix()
            before = files.get(name)
            try:
                if before is not None and _stat(path) == before.stat:
                    continue
                start = before.end if before is not None else 0
                if before is not None:
                    with open(path, "rb") as handle:
                        prefix = handle.read(start)
                    if len(prefix) < start or hashlib.sha1(prefix, usedforsecurity=False).digest() != before.digest:
                        return False  # rewritten, not appended to
                found, files[name] = _read(path, self.home, start, False)
            except OSError:
                return False
            new.extend(found)
        fresh: list[Event] = []
        ids: set[str] = set()
        for event in new:
            if event["id"] not in self.seen and event["id"] not in ids:
                ids.add(event["id"])
                fresh.append(event)
        fresh.sort(key=store.fold_key)
        if fresh and self.last is not None and store.fold_key(fresh[0]) <= self.last:
            return False
        assert self.view is not None
        fold_into(self.view, fresh)
        self.files = files
        self.seen |= ids
        if fresh:
            self.last = store.fold_key(fresh[-1])
        return True
