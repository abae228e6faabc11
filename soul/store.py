"""The event logs: `memories/<instance>/<YYYY-MM>.jsonl`, one JSON object per line.

Only this module appends to event logs. Invariants: an instance appends only to its own
directory; each event is one fsynced `write()` under an exclusive `flock` on the log file; a
line that does not parse (a torn tail after a crash, a bad merge, a hand edit) is copied
byte-exact to `.soul/quarantine/` with its file and offset and skipped, never fatal.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from soul import fsutil
from soul.errors import SoulError

SCHEMA_VERSION = 1
MEMORIES_DIR = "memories"
_INSTANCE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_REQUIRED = ("op", "id", "at", "by")

Event = dict[str, Any]


@dataclass(frozen=True)
class Quarantined:
    file: str
    offset: int
    length: int
    sha256: str
    reason: str
    saved_as: str


def valid_instance(name: str) -> bool:
    return bool(_INSTANCE_RE.match(name)) and ".." not in name


# Logs are cut into segments of about this size: git hashes and compresses the whole file on every
# commit, so one 26 MB month (100k memories) made each `soul remember` cost ~0.8 s.
SEGMENT_BYTES = 1024 * 1024


def log_path(home: Path, instance: str, at: str) -> Path:
    """The log an event of time `at` goes to: the newest segment of this instance's log for that
    UTC month (`2026-11.jsonl`, then `2026-11.2.jsonl`, ...), the one the last append wrote."""
    month = at[:7]
    directory = home / MEMORIES_DIR / instance
    newest, number = directory / f"{month}.jsonl", 1
    for path in directory.glob(f"{month}.*.jsonl"):
        suffix = path.name[len(month) + 1 : -len(".jsonl")]
        if suffix.isdigit() and int(suffix) > number:
            newest, number = path, int(suffix)
    return newest


def _segment_for_append(path: Path, month: str) -> Path:
    """Start the next segment once the newest is full (checked before writing, so `log_path`
    called right after an append names the segment that was written)."""
    try:
        full = path.stat().st_size >= SEGMENT_BYTES
    except FileNotFoundError:
        return path
    if not full:
        return path
    suffix = path.name[len(month) + 1 : -len(".jsonl")]
    number = int(suffix) if suffix.isdigit() else 1
    return path.with_name(f"{month}.{number + 1}.jsonl")


def encode_event(event: Event) -> bytes:
    line = json.dumps(event, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    return (line + "\n").encode("utf-8")


def append_event(home: Path, instance: str, event: Event) -> Path:
    """Durably append `event` to this instance's log; return the log path."""
    return append_events(home, instance, [event])


def append_events(home: Path, instance: str, events: list[Event]) -> Path:
    """Append events (all in one month's log) in one write; used by batch imports."""
    if not events:
        raise SoulError("nothing to append")
    at = events[0]["at"]
    path = _segment_for_append(log_path(home, instance, at), at[:7])
    payload = b"".join(encode_event(e) for e in events)
    created = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _seal_torn_tail(home, path, fd)
        fsutil.append_record(fd, payload)
    finally:
        os.close(fd)
    if created:
        fsutil.fsync_dir(path.parent)
    return path


def _seal_torn_tail(home: Path, path: Path, fd: int) -> None:
    """A writer killed mid-write can leave a last line without its newline. We hold the lock,
    so no write is in flight: quarantine those bytes and cut them off, or the next event
    would be glued onto them and lost too."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 1))
        if handle.read(1) == b"\n":
            return
        start = _last_line_start(handle, size)
        handle.seek(start)
        tail = handle.read(size - start)
    quarantine(home, path, start, tail, "torn tail (writer interrupted)")
    os.ftruncate(fd, start)
    os.fsync(fd)


def _last_line_start(handle: BinaryIO, size: int) -> int:
    pos = size
    block = 65536
    while pos > 0:
        step = min(block, pos)
        pos -= step
        handle.seek(pos)
        chunk = handle.read(step)
        idx = chunk.rfind(b"\n")
        if idx >= 0:
            return pos + idx + 1
    return 0


def quarantine_dir(home: Path) -> Path:
    return home / ".soul" / "quarantine"


def quarantine(home: Path, path: Path, offset: int, raw: bytes, reason: str) -> Quarantined:
    """Save a bad line byte-exact; idempotent for the same file, offset and content."""
    rel = _rel(home, path)
    digest = hashlib.sha256(raw).hexdigest()
    name = f"{rel.replace('/', '__')}.{offset}.{digest[:12]}.bad"
    qdir = quarantine_dir(home)
    target = qdir / name
    entry = Quarantined(rel, offset, len(raw), digest, reason, name)
    if not target.exists():
        fsutil.atomic_write(target, raw, mode=0o600)
        meta = json.dumps(entry.__dict__) + "\n"
        with fsutil.file_lock(qdir / ".lock"), open(qdir / "index.jsonl", "a", encoding="utf-8") as handle:
            handle.write(meta)
            handle.flush()
            os.fsync(handle.fileno())
    return entry


def quarantined(home: Path) -> list[Quarantined]:
    index = quarantine_dir(home) / "index.jsonl"
    if not index.exists():
        return []
    out: dict[str, Quarantined] = {}
    for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            data = json.loads(line)
            out[data["saved_as"]] = Quarantined(**data)
        except (ValueError, TypeError, KeyError):
            continue
    return [q for q in out.values() if (quarantine_dir(home) / q.saved_as).exists()]


def _rel(home: Path, path: Path) -> str:
    try:
        return path.relative_to(home).as_posix()
    except ValueError:
        return path.as_posix()


def log_files(home: Path) -> list[Path]:
    root = home / MEMORIES_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*/*.jsonl") if p.is_file())


def parse_line(raw: bytes) -> Event | None:
    """One event from one line, or None when the line is not a valid event."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if not all(isinstance(data.get(k), str) and data.get(k) for k in _REQUIRED):
        return None
    return data


def read_log(home: Path, path: Path, offset: int = 0, final: bool = True) -> tuple[list[Event], int]:
    """Events of `path` from byte `offset`; returns them and the offset after the last whole line.

    A last line without a newline may be a write in progress: it is quarantined only when
    `final` (a full read) and another writer cannot be mid-append, i.e. under the log's lock."""
    events: list[Event] = []
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    pos = 0
    for raw in _lines(data):
        line_offset = offset + pos
        pos += len(raw)
        if not raw.endswith(b"\n"):
            pos -= len(raw)
            if final and raw.strip() and not _writer_active(path):
                quarantine(home, path, line_offset, raw, "torn tail (no newline)")
            break
        body = raw[:-1]
        if not body.strip():
            continue
        event = parse_line(body)
        if event is None:
            quarantine(home, path, line_offset, raw, "line is not a valid event")
            continue
        events.append(event)
    return events, offset + pos


def _lines(data: bytes) -> Iterator[bytes]:
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            yield data[start:]
            return
        yield data[start : end + 1]
        start = end + 1


def _writer_active(path: Path) -> bool:
    fd = fsutil.try_lock(path)
    if fd is None:
        return True
    os.close(fd)
    return False


def read_all(home: Path) -> list[Event]:
    """Every event in every log, in fold order (at, by, id), duplicates by id removed."""
    seen: set[str] = set()
    events: list[Event] = []
    for path in log_files(home):
        for event in read_log(home, path)[0]:
            if event["id"] in seen:
                continue
            seen.add(event["id"])
            events.append(event)
    events.sort(key=fold_key)
    return events


def fold_key(event: Event) -> tuple[str, str, str]:
    return (event["at"], event["by"], event["id"])
