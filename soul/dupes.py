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
_CATCH_UP_MAX = 50_000  # more new events than this: rebuild instead (above importers.MAX_BATCH)
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


def refresh(soul: Soul) -> None:
    """Catch up now (or rebuild when needed): for sync/the daemon to call after a pull, so the next
    `soul remember` does not pay for history that arrived out of order."""
    with _open(soul):
        return


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
        events, new_offset = _read(path, offset)
        pending.append((rel, new_offset, _tail_hash(path, new_offset), events))
    if not pending:
        return
    new_events = sorted((e for _, _, _, evs in pending for e in evs), key=store.fold_key)
    last = _meta(db, "last")
    if new_events and last is not None and "\x1f".join(store.fold_key(new_events[0])) <= last:
        raise _OutOfOrder
    if len(new_events) > _CATCH_UP_MAX:
        raise _OutOfOrder  # not out of order, but a bulk rebuild in memory is faster than row by row
    db.execute("BEGIN IMMEDIATE")
    try:
        rows = _Rows(db)
        for event in new_events:
            _apply(rows, event)
        for rel, new_offset, tail, _ in pending:
            db.execute("INSERT OR REPLACE INTO dupe_files VALUES (?, ?, ?)", (rel, new_offset, tail))
        if new_events:
            _set_meta(db, "last", "\x1f".join(store.fold_key(new_events[-1])))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _rebuild(home: Path, db: sqlite3.Connection) -> int:
    """Fold every log in memory (dicts, not one SQL round trip per event), then bulk-insert."""
    offsets: list[tuple[str, int, str]] = []
    seen: set[str] = set()
    events: list[store.Event] = []
    for path in store.log_files(home):
        file_events, end = _read(path, 0)
        offsets.append((store._rel(home, path), end, _tail_hash(path, end)))
        for event in file_events:
            if event["id"] not in seen:
                seen.add(event["id"])
                events.append(event)
    events.sort(key=store.fold_key)
    state = _Dicts()
    for event in events:
        _apply(state, event)
    db.execute("BEGIN IMMEDIATE")
    try:
        for table in _DROP:
            db.execute(f"DROP TABLE IF EXISTS {table}")
        _create_tables(db)
        # Sorted by primary key: appending to a B-tree is much cheaper than inserting at random.
        db.executemany("INSERT INTO dupe_mem VALUES (?, ?, ?, ?, ?, ?)", sorted((k, *v) for k, v in state.mems.items()))
        db.executemany("INSERT INTO dupe_alias VALUES (?, ?)", sorted(state.aliases.items()))
        db.executemany("INSERT INTO dupe_key VALUES (?, ?)", sorted(state.keys.items()))
        db.executemany("INSERT INTO dupe_files VALUES (?, ?, ?)", offsets)
        _set_meta(db, "schema", str(SCHEMA))
        if events:
            _set_meta(db, "last", "\x1f".join(store.fold_key(events[-1])))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(events)


def _read(path: Path, offset: int) -> tuple[list[store.Event], int]:
    """The memory events of `path` after `offset`, reduced to what the index needs (an add keeps
    its fact key, not its text), read a line at a time; and the offset after the last whole line.
    Bad lines are skipped here: quarantining them is the store's job when the view reads them."""
    events: list[store.Event] = []
    end = offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        for raw in handle:
            if not raw.endswith(b"\n"):
                break  # a write in progress (or a torn tail): not ours to judge yet
            end += len(raw)
            event = store.parse_line(raw[:-1])
            if event is not None and event["op"] in _HANDLERS:
                small = _compact(event)
                if small is not None:
                    events.append(small)
    return events, end


def _compact(e: store.Event) -> store.Event | None:
    keep: store.Event = {k: e[k] for k in ("op", "id", "at", "by", "target", "source") if k in e}
    try:
        if e["op"] == "memory.add":
            kind, project = str(e.get("kind") or "note"), e.get("project") or None
            keep.update(kind=kind, project=project, key=fact_key(str(e["text"]), kind, project))
        elif e["op"] == "memory.update" and isinstance(e.get("text"), str):
            keep["text"] = e["text"]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None  # the fold skips an event whose body it cannot use, and so do we
    return keep


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
# Each handler mirrors its namesake in soul/view.py; keep them in step (tests compare the two).
# They run on two stores of the same state: dicts for a rebuild, sqlite rows for a catch-up.

_Mem = tuple[str, str, "str | None", int, "str | None"]  # key, kind, project, forgotten, merged_into
_FIELDS = {"key": 0, "forgotten": 3, "merged_into": 4}


class _Dicts:
    def __init__(self) -> None:
        self.mems: dict[str, list[Any]] = {}
        self.aliases: dict[str, str] = {}
        self.keys: dict[str, str] = {}

    def resolve(self, memory_id: str) -> str:
        return self.aliases.get(memory_id, memory_id)

    def mem(self, memory_id: str) -> _Mem | None:
        row = self.mems.get(memory_id)
        return None if row is None else (row[0], row[1], row[2], row[3], row[4])

    def add_mem(self, memory_id: str, key: str, kind: str, project: str | None) -> None:
        self.mems[memory_id] = [key, kind, project, 0, None]

    def add_alias(self, memory_id: str, canonical: str) -> None:
        self.aliases[memory_id] = canonical

    def set(self, memory_id: str, field: str, value: Any) -> None:
        self.mems[memory_id][_FIELDS[field]] = value

    def owner(self, key: str) -> str | None:
        return self.keys.get(key)

    def set_owner(self, key: str, memory_id: str, replace: bool = True) -> None:
        if replace or key not in self.keys:
            self.keys[key] = memory_id

    def drop_owner(self, key: str, memory_id: str) -> None:
        if self.keys.get(key) == memory_id:
            del self.keys[key]


class _Rows:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def resolve(self, memory_id: str) -> str:
        row = self.db.execute("SELECT canonical FROM dupe_alias WHERE id = ?", (memory_id,)).fetchone()
        return memory_id if row is None else str(row[0])

    def mem(self, memory_id: str) -> _Mem | None:
        row = self.db.execute(
            "SELECT key, kind, project, forgotten, merged_into FROM dupe_mem WHERE id = ?", (memory_id,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3], row[4])

    def add_mem(self, memory_id: str, key: str, kind: str, project: str | None) -> None:
        self.db.execute("INSERT INTO dupe_mem VALUES (?, ?, ?, ?, 0, NULL)", (memory_id, key, kind, project))

    def add_alias(self, memory_id: str, canonical: str) -> None:
        self.db.execute("INSERT INTO dupe_alias VALUES (?, ?)", (memory_id, canonical))

    def set(self, memory_id: str, field: str, value: Any) -> None:
        assert field in _FIELDS  # a column name, never user data
        self.db.execute(f"UPDATE dupe_mem SET {field} = ? WHERE id = ?", (value, memory_id))

    def owner(self, key: str) -> str | None:
        row = self.db.execute("SELECT id FROM dupe_key WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_owner(self, key: str, memory_id: str, replace: bool = True) -> None:
        verb = "REPLACE" if replace else "IGNORE"
        self.db.execute(f"INSERT OR {verb} INTO dupe_key VALUES (?, ?)", (key, memory_id))

    def drop_owner(self, key: str, memory_id: str) -> None:
        self.db.execute("DELETE FROM dupe_key WHERE key = ? AND id = ?", (key, memory_id))


_State = _Dicts | _Rows


def _apply(state: _State, e: store.Event) -> None:
    handler = _HANDLERS.get(e["op"])
    if handler is None:
        return
    with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
        handler(state, e)


def _is_live(state: _State, memory_id: str) -> bool:
    mem = state.mem(memory_id)
    return mem is not None and not mem[3] and mem[4] is None


def _live_id_for_key(db: sqlite3.Connection, key: str) -> str | None:
    rows = _Rows(db)
    found = rows.owner(key)
    return found if found is not None and _is_live(rows, found) else None


def _add(state: _State, e: store.Event) -> None:
    memory_id = str(e["id"])
    if state.mem(memory_id) is not None or state.resolve(memory_id) != memory_id:
        return
    kind, project, key = str(e["kind"]), e["project"], str(e["key"])
    owner = state.owner(key)
    if owner is not None and _is_live(state, owner):
        state.add_alias(memory_id, owner)
        return
    state.add_mem(memory_id, key, kind, project)
    state.set_owner(key, memory_id)


def _update(state: _State, e: store.Event) -> None:
    memory_id = state.resolve(str(e["target"]))
    mem = state.mem(memory_id)
    if mem is None or mem[3]:
        return
    old_key, kind, project = mem[0], mem[1], mem[2]
    new_key = fact_key(e["text"], kind, project) if isinstance(e.get("text"), str) else old_key
    state.drop_owner(old_key, memory_id)
    state.set_owner(new_key, memory_id, replace=False)
    state.set(memory_id, "key", new_key)


def _forget(state: _State, e: store.Event) -> None:
    memory_id = state.resolve(str(e["target"]))
    mem = state.mem(memory_id)
    if mem is None:
        return
    state.set(memory_id, "forgotten", 1)
    state.drop_owner(mem[0], memory_id)


def _merge(state: _State, e: store.Event) -> None:
    source = state.resolve(str(e["source"]))
    target = state.resolve(str(e["target"]))
    if state.mem(source) is None or source == target or not _is_live(state, target):
        return
    state.set(source, "merged_into", target)


def _unmerge(state: _State, e: store.Event) -> None:
    source = state.resolve(str(e["source"]))
    if state.mem(source) is not None:
        state.set(source, "merged_into", None)


_HANDLERS: dict[str, Any] = {
    "memory.add": _add,
    "memory.update": _update,
    "memory.forget": _forget,
    "memory.merge": _merge,
    "memory.unmerge": _unmerge,
}
