"""The exact-duplicate index: fact key -> live memory id, kept in `.soul/state.sqlite`.

`soul remember` must answer "is this fact already here?" without folding every log (a fold of
100k memories costs seconds). This module keeps the part of the fold that decides it (which
memories exist, which are aliases, forgotten or merged, and which id holds each fact key) in
sqlite tables prefixed `dupe_`, and catches up by reading only the bytes appended to each log
since the offsets it stored.

Invariant: the index answers exactly what `soul.view.fold` would (`View.by_key` + liveness). It
applies events incrementally only while they arrive in fold order (at, by, id); an event that
sorts before one already applied (history pulled from another machine, a clock that was behind),
a log that shrank or changed before its stored offset (`soul purge` rewrites history), a schema
change or a corrupt database all lead to a rebuild from the logs. It is derived state: deleting
it is always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soul import fsutil, store
from soul.view import fact_key

if TYPE_CHECKING:
    from soul.core import Soul

SCHEMA = 1
DB_NAME = "state.sqlite"
_TAIL = 64  # bytes before a stored offset whose hash proves the file was only appended to

_TABLES = """
CREATE TABLE IF NOT EXISTS dupe_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dupe_files (path TEXT PRIMARY KEY, offset INTEGER NOT NULL, tail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dupe_mem (
    id TEXT PRIMARY KEY, key TEXT NOT NULL, kind TEXT NOT NULL, project TEXT,
    forgotten INTEGER NOT NULL DEFAULT 0, merged_into TEXT);
CREATE TABLE IF NOT EXISTS dupe_alias (id TEXT PRIMARY KEY, canonical TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dupe_key (key TEXT PRIMARY KEY, id TEXT NOT NULL);
"""
_DROP = ("dupe_meta", "dupe_files", "dupe_mem", "dupe_alias", "dupe_key")


class _OutOfOrder(Exception):
    """New events sort before applied ones, or a log changed under us: rebuild."""


# ---------------------------------------------------------------------- public API


def find(soul: Soul, text: str, kind: str, project: str | None) -> str | None:
    """The canonical id of a live memory holding the same fact as (text, kind, project), if any."""
    return find_key(soul, fact_key(text, kind, project))


def find_key(soul: Soul, key: str) -> str | None:
    with _open(soul) as db:
        return _live_id_for_key(db, key)


def lookup(soul: Soul, ids: Iterable[str], keys: Iterable[str]) -> tuple[set[str], set[str]]:
    """For a whole import batch, one catch-up: which of `ids` any memory.add already used (live,
    forgotten, merged or alias), and which fact `keys` a live memory holds."""
    with _open(soul) as db:
        known = _present(db, "SELECT id FROM dupe_mem WHERE id IN ({})", ids)
        known |= _present(db, "SELECT id FROM dupe_alias WHERE id IN ({})", ids)
        held = {key for key in dict.fromkeys(keys) if _live_id_for_key(db, key) is not None}
    return known, held


def _present(db: sqlite3.Connection, query: str, values: Iterable[str]) -> set[str]:
    wanted = list(dict.fromkeys(values))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(str(r[0]) for r in db.execute(query.format(",".join("?" * len(chunk))), chunk))
    return found


def rebuild(soul: Soul) -> int:
    """Drop and rebuild the index from the logs; returns the number of events applied."""
    path = soul.state_dir / DB_NAME
    with _lock(soul), _connect(path) as db:
        return _rebuild(soul.home, db)


# ---------------------------------------------------------------------- opening and catching up


@contextlib.contextmanager
def _lock(soul: Soul) -> Iterator[None]:
    with fsutil.file_lock(soul.state_dir / "dupes.lock", timeout=60):
        yield


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        yield db
    finally:
        db.close()


@contextlib.contextmanager
def _open(soul: Soul) -> Iterator[sqlite3.Connection]:
    """A connection to an index that is current with every log on disk."""
    path = soul.state_dir / DB_NAME
    with _lock(soul):
        try:
            with _connect(path) as db:
                _catch_up_or_rebuild(soul.home, db)
                yield db
                return
        except sqlite3.DatabaseError:
            # A torn or foreign file: the index is derived, so start over from the logs.
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{path}{suffix}").unlink()
        with _connect(path) as db:
            _rebuild(soul.home, db)
            yield db


def _create_tables(db: sqlite3.Connection) -> None:
    # One statement at a time: executescript() would commit the caller's open transaction.
    for statement in _TABLES.split(";"):
        if statement.strip():
            db.execute(statement)


def _catch_up_or_rebuild(home: Path, db: sqlite3.Connection) -> None:
    _create_tables(db)
    if _meta(db, "schema") != str(SCHEMA):
        _rebuild(home, db)
        return
    try:
        _catch_up(home, db)
    except _OutOfOrder:
        _rebuild(home, db)


def _catch_up(home: Path, db: sqlite3.Connection) -> None:
    stored = {row[0]: (row[1], row[2]) for row in db.execute("SELECT path, offset, tail FROM dupe_files")}
    files = {store._rel(home, p): p for p in store.log_files(home)}
    if set(stored) - set(files):
        raise _OutOfOrder  # a log disappeared (purge, hand edit)
    pending: list[tuple[str, int, str, list[store.Event]]] = []
    for rel, path in files.items():
        offset, tail = stored.get(rel, (0, ""))
        size = path.stat().st_size
        if size == offset:
            continue
        if size < offset or _tail_hash(path, offset) != tail:
            raise _OutOfOrder
        events, new_offset = store.read_log(home, path, offset, final=False)
        pending.append((rel, new_offset, _tail_hash(path, new_offset), events))
    if not pending:
        return
    new_events = sorted((e for _, _, _, evs in pending for e in evs), key=store.fold_key)
    last = _meta(db, "last")
    if new_events and last is not None and "\x1f".join(store.fold_key(new_events[0])) <= last:
        raise _OutOfOrder
    db.execute("BEGIN IMMEDIATE")
    try:
        for event in new_events:
            _apply(db, event)
        for rel, new_offset, tail, _ in pending:
            db.execute("INSERT OR REPLACE INTO dupe_files VALUES (?, ?, ?)", (rel, new_offset, tail))
        if new_events:
            _set_meta(db, "last", "\x1f".join(store.fold_key(new_events[-1])))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _rebuild(home: Path, db: sqlite3.Connection) -> int:
    db.execute("BEGIN IMMEDIATE")
    try:
        for table in _DROP:
            db.execute(f"DROP TABLE IF EXISTS {table}")
        _create_tables(db)
        offsets: list[tuple[str, int, str]] = []
        seen: set[str] = set()
        events: list[store.Event] = []
        for path in store.log_files(home):
            file_events, end = store.read_log(home, path, 0, final=False)
            offsets.append((store._rel(home, path), end, _tail_hash(path, end)))
            for event in file_events:
                if event["id"] not in seen:
                    seen.add(event["id"])
                    events.append(event)
        events.sort(key=store.fold_key)
        for event in events:
            _apply(db, event)
        db.executemany("INSERT INTO dupe_files VALUES (?, ?, ?)", offsets)
        _set_meta(db, "schema", str(SCHEMA))
        if events:
            _set_meta(db, "last", "\x1f".join(store.fold_key(events[-1])))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(events)


def _tail_hash(path: Path, offset: int) -> str:
    if offset <= 0:
        return ""
    with open(path, "rb") as handle:
        handle.seek(max(0, offset - _TAIL))
        return hashlib.sha256(handle.read(min(_TAIL, offset))).hexdigest()[:32]


def _meta(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT v FROM dupe_meta WHERE k = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO dupe_meta VALUES (?, ?)", (key, value))


# ---------------------------------------------------------------------- the fold, for keys only
# Each function mirrors its handler in soul/view.py; keep them in step (tests compare the two).


def _apply(db: sqlite3.Connection, e: store.Event) -> None:
    handler = _HANDLERS.get(e["op"])
    if handler is None:
        return
    with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
        handler(db, e)


def _resolve(db: sqlite3.Connection, memory_id: str) -> str:
    row = db.execute("SELECT canonical FROM dupe_alias WHERE id = ?", (memory_id,)).fetchone()
    return memory_id if row is None else str(row[0])


def _mem(db: sqlite3.Connection, memory_id: str) -> tuple[str, str, str | None, int, str | None] | None:
    row = db.execute(
        "SELECT key, kind, project, forgotten, merged_into FROM dupe_mem WHERE id = ?", (memory_id,)
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2], row[3], row[4])


def _is_live(db: sqlite3.Connection, memory_id: str) -> bool:
    mem = _mem(db, memory_id)
    return mem is not None and not mem[3] and mem[4] is None


def _live_id_for_key(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT id FROM dupe_key WHERE key = ?", (key,)).fetchone()
    if row is None or not _is_live(db, str(row[0])):
        return None
    return str(row[0])


def _add(db: sqlite3.Connection, e: store.Event) -> None:
    memory_id = str(e["id"])
    if _mem(db, memory_id) is not None or _resolve(db, memory_id) != memory_id:
        return
    kind = str(e.get("kind") or "note")
    project = e.get("project") or None
    key = fact_key(str(e["text"]), kind, project)
    row = db.execute("SELECT id FROM dupe_key WHERE key = ?", (key,)).fetchone()
    if row is not None and _is_live(db, str(row[0])):
        db.execute("INSERT INTO dupe_alias VALUES (?, ?)", (memory_id, row[0]))
        return
    db.execute("INSERT INTO dupe_mem (id, key, kind, project) VALUES (?, ?, ?, ?)", (memory_id, key, kind, project))
    db.execute("INSERT OR REPLACE INTO dupe_key VALUES (?, ?)", (key, memory_id))


def _update(db: sqlite3.Connection, e: store.Event) -> None:
    memory_id = _resolve(db, str(e["target"]))
    mem = _mem(db, memory_id)
    if mem is None or mem[3]:
        return
    old_key, kind, project = mem[0], mem[1], mem[2]
    new_key = fact_key(e["text"], kind, project) if isinstance(e.get("text"), str) else old_key
    db.execute("DELETE FROM dupe_key WHERE key = ? AND id = ?", (old_key, memory_id))
    db.execute("INSERT OR IGNORE INTO dupe_key VALUES (?, ?)", (new_key, memory_id))
    db.execute("UPDATE dupe_mem SET key = ? WHERE id = ?", (new_key, memory_id))


def _forget(db: sqlite3.Connection, e: store.Event) -> None:
    memory_id = _resolve(db, str(e["target"]))
    mem = _mem(db, memory_id)
    if mem is None:
        return
    db.execute("UPDATE dupe_mem SET forgotten = 1 WHERE id = ?", (memory_id,))
    db.execute("DELETE FROM dupe_key WHERE key = ? AND id = ?", (mem[0], memory_id))


def _merge(db: sqlite3.Connection, e: store.Event) -> None:
    source = _resolve(db, str(e["source"]))
    target = _resolve(db, str(e["target"]))
    if _mem(db, source) is None or source == target or not _is_live(db, target):
        return
    db.execute("UPDATE dupe_mem SET merged_into = ? WHERE id = ?", (target, source))


def _unmerge(db: sqlite3.Connection, e: store.Event) -> None:
    source = _resolve(db, str(e["source"]))
    db.execute("UPDATE dupe_mem SET merged_into = NULL WHERE id = ?", (source,))


_HANDLERS: dict[str, Any] = {
    "memory.add": _add,
    "memory.update": _update,
    "memory.forget": _forget,
    "memory.merge": _merge,
    "memory.unmerge": _unmerge,
}
