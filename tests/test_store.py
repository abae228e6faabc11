"""The event log: durable appends, quarantine of bad lines, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from soul import fsutil, store
from soul.ids import new_ulid, now_iso


def _event(text: str, by: str = "alpha") -> dict[str, object]:
    return {"op": "memory.add", "id": new_ulid(), "at": now_iso(), "by": by, "v": 1, "text": text}


def test_append_then_read_roundtrip(tmp_path: Path) -> None:
    events = [_event(f"fact {i}") for i in range(5)]
    for e in events:
        store.append_event(tmp_path, "alpha", e)
    got = store.read_all(tmp_path)
    assert [e["id"] for e in got] == [e["id"] for e in events]
    path = store.log_files(tmp_path)[0]
    assert path.parent.name == "alpha" and path.name == f"{events[0]['at'][:7]}.jsonl"
    assert path.read_bytes().count(b"\n") == 5


def test_unicode_and_newlines_in_text_stay_one_line(tmp_path: Path) -> None:
    e = _event("line one\nline two — ünïcødé 🚀")
    store.append_event(tmp_path, "alpha", e)
    raw = store.log_files(tmp_path)[0].read_bytes()
    assert raw.count(b"\n") == 1
    assert store.read_all(tmp_path)[0]["text"] == e["text"]


def test_corrupt_middle_line_is_quarantined_byte_exact(tmp_path: Path) -> None:
    store.append_event(tmp_path, "alpha", _event("before"))
    path = store.log_files(tmp_path)[0]
    bad = b'{"op": "memory.add", "id": broken\n'
    offset = path.stat().st_size
    with open(path, "ab") as handle:
        handle.write(bad)
    store.append_event(tmp_path, "alpha", _event("after"))
    texts = [e["text"] for e in store.read_all(tmp_path)]
    assert texts == ["before", "after"]
    [q] = store.quarantined(tmp_path)
    assert q.offset == offset and q.length == len(bad)
    assert (store.quarantine_dir(tmp_path) / q.saved_as).read_bytes() == bad
    # Reading again does not quarantine twice.
    store.read_all(tmp_path)
    assert len(store.quarantined(tmp_path)) == 1


def test_torn_tail_is_sealed_by_next_append(tmp_path: Path) -> None:
    store.append_event(tmp_path, "alpha", _event("whole"))
    path = store.log_files(tmp_path)[0]
    torn = b'{"op":"memory.add","id":"01J0000000000000000000000","te'
    offset = path.stat().st_size
    with open(path, "ab") as handle:
        handle.write(torn)
    store.append_event(tmp_path, "alpha", _event("next"))
    assert [e["text"] for e in store.read_all(tmp_path)] == ["whole", "next"]
    [q] = store.quarantined(tmp_path)
    assert (q.offset, q.length) == (offset, len(torn))
    assert (store.quarantine_dir(tmp_path) / q.saved_as).read_bytes() == torn
    assert path.read_bytes().endswith(b"\n")


def test_torn_tail_on_read_is_skipped_not_fatal(tmp_path: Path) -> None:
    store.append_event(tmp_path, "alpha", _event("whole"))
    path = store.log_files(tmp_path)[0]
    with open(path, "ab") as handle:
        handle.write(b'{"op":"memo')
    assert [e["text"] for e in store.read_all(tmp_path)] == ["whole"]
    assert len(store.quarantined(tmp_path)) == 1


def test_non_event_json_and_invalid_utf8_are_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "memories" / "alpha" / "2026-01.jsonl"
    path.parent.mkdir(parents=True)
    good = json.dumps(_event("ok")).encode() + b"\n"
    path.write_bytes(b"[1, 2]\n" + b"\xff\xfe\n" + b'{"op": "x"}\n' + good)
    assert [e["text"] for e in store.read_all(tmp_path)] == ["ok"]
    assert len(store.quarantined(tmp_path)) == 3


def test_duplicate_ids_fold_once_and_order_is_by_time(tmp_path: Path) -> None:
    first = _event("first", by="beta")
    first["at"] = "2026-01-01T00:00:00.000Z"
    second = _event("second", by="alpha")
    second["at"] = "2026-01-02T00:00:00.000Z"
    store.append_event(tmp_path, "alpha", second)
    store.append_event(tmp_path, "beta", first)
    store.append_event(tmp_path, "beta", dict(first))
    assert [e["text"] for e in store.read_all(tmp_path)] == ["first", "second"]


def _writer(home: str, n: int, tag: str) -> None:
    for i in range(n):
        store.append_event(Path(home), "alpha", _event(f"{tag}-{i}-" + "x" * (i * 37 % 5000)))


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), 100, f"w{w}")) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    events = store.read_all(tmp_path)
    assert len(events) == 400
    assert len({e["text"] for e in events}) == 400
    assert store.quarantined(tmp_path) == []


def test_flock_survives_closing_another_descriptor(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with fsutil.file_lock(lock):
        other = os.open(lock, os.O_RDWR)
        os.close(other)  # with lockf/fcntl locks this would drop our lock
        assert fsutil.try_lock(lock) is None
    fd = fsutil.try_lock(lock)
    assert fd is not None
    os.close(fd)


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "f.txt"
    fsutil.atomic_write(target, "one")
    fsutil.atomic_write(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_logs_roll_over_into_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "SEGMENT_BYTES", 2000)
    written = [store.append_event(tmp_path, "alpha", _event(f"fact {i} " + "x" * 300)) for i in range(20)]
    names = {p.name for p in written}
    month = written[0].name[:7]
    assert written[0].name == f"{month}.jsonl" and f"{month}.2.jsonl" in names and len(names) >= 3
    # log_path names the segment the last append wrote; no segment exceeds the limit by more than a record.
    assert store.log_path(tmp_path, "alpha", _event("x")["at"]) == written[-1]
    assert all(p.stat().st_size < 2000 + 400 for p in store.log_files(tmp_path))
    assert [e["text"][:7] for e in store.read_all(tmp_path)] == [f"fact {i} "[:7] for i in range(20)]
