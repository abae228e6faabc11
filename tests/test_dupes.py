"""The exact-duplicate index (soul/dupes.py): same fact once, on one machine and across clones."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import Any

from soul import dupes, store
from soul.core import Soul
from soul.ids import iso_from_ms, new_ulid
from soul.view import fact_key, fold

from conftest import run_soul, soul_json


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60).stdout


def test_same_fact_twice_answers_with_the_existing_id(soul_home: Path) -> None:
    first = soul_json("remember", "Deploys happen on Fridays", home=soul_home)
    again = soul_json("remember", "  deploys happen on fridays. ", home=soul_home)
    assert again == {"id": first["id"], "duplicate_of": first["id"]}
    assert len(soul_json("list", home=soul_home)) == 1
    other_kind = soul_json("remember", "Deploys happen on Fridays", "--kind", "decision", home=soul_home)
    assert other_kind["id"] != first["id"] and "duplicate_of" not in other_kind


def test_duplicate_writes_nothing_and_allow_duplicate_overrides(core: Soul) -> None:
    first = core.remember("Uses tabs").id
    log = store.log_files(core.home)[0]
    size = log.stat().st_size
    assert core.remember("uses  TABS!").duplicate_of == first
    assert log.stat().st_size == size
    forced = soul_json("remember", "Uses tabs", "--allow-duplicate", home=core.home)
    assert forced["id"] != first and "duplicate_of" not in forced
    # The fold shows the forced copy as an alias of the first, not as a second memory.
    assert [m["id"] for m in core.list_memories()] == [first]


def test_forgetting_frees_the_fact(core: Soul) -> None:
    first = core.remember("Standup is at 9:30").id
    core.forget(first)
    again = core.remember("Standup is at 9:30")
    assert again.id != first and again.duplicate_of is None
    assert [m["id"] for m in core.list_memories()] == [again.id]


def test_corrupt_index_is_rebuilt(core: Soul) -> None:
    mem = core.remember("The build uses uv").id
    (core.state_dir / dupes.DB_NAME).write_bytes(b"this is not sqlite" * 100)
    assert core.find_duplicate("the build uses uv", "note", None) == mem


def test_rewritten_log_triggers_rebuild(core: Soul) -> None:
    keep = core.remember("Keep me").id
    gone = core.remember("Drop me").id
    assert core.find_duplicate("Drop me", "note", None) == gone
    # Rewrite history the way `soul purge` does: the line disappears from the log.
    log = store.log_files(core.home)[0]
    lines = [ln for ln in log.read_bytes().splitlines(keepends=True) if gone.encode() not in ln]
    log.write_bytes(b"".join(lines))
    assert core.find_duplicate("Drop me", "note", None) is None
    assert core.find_duplicate("Keep me", "note", None) == keep


def _event(op: str, at_ms: int, by: str, **fields: Any) -> dict[str, Any]:
    return {"op": op, "id": new_ulid(at_ms), "at": iso_from_ms(at_ms), "by": by, "v": 1, **fields}


def test_index_agrees_with_the_fold_under_random_histories(core: Soul) -> None:
    """Random adds/updates/forgets/merges on three instances, appended out of time order: after
    every batch the index answers exactly what the fold answers, for every fact key."""
    rng = random.Random(11)
    texts = [f"fact number {i}" for i in range(6)]
    ids: list[str] = []
    base = 1_790_000_000_000
    for _step in range(40):
        batch: list[dict[str, Any]] = []
        by = rng.choice(["alpha", "beta", "gamma"])
        for _ in range(rng.randint(1, 4)):
            at = base + rng.randint(0, 10_000_000)
            roll = rng.random()
            if roll < 0.04:
                # Well-formed lines with bodies the fold cannot use: both must skip them alike.
                event = _event("memory.add", at, by, **rng.choice([{"kind": "note"}, {"text": "x", "project": 5}]))
            elif roll < 0.5 or not ids:
                event = _event("memory.add", at, by, text=rng.choice(texts), kind="note", tags=[])
                ids.append(event["id"])
            elif roll < 0.65:
                event = _event("memory.forget", at, by, target=rng.choice(ids))
            elif roll < 0.8:
                event = _event("memory.update", at, by, target=rng.choice(ids), text=rng.choice(texts))
            elif roll < 0.92:
                event = _event("memory.merge", at, by, source=rng.choice(ids), target=rng.choice(ids))
            else:
                event = _event("memory.unmerge", at, by, source=rng.choice(ids))
            batch.append(event)
        # Same month for every event of a batch: one log file per append.
        store.append_events(core.home, by, batch)
        view = fold(store.read_all(core.home))
        for text in texts:
            key = fact_key(text, "note", None)
            expected = view.by_key.get(key)
            expected = expected if expected is not None and view.memory(expected) is not None else None
            assert dupes.find_key(core, key) == expected, (text, _step)


def test_same_fact_on_two_clones_offline_shows_once(tmp_path: Path, bare_remote: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    soul_a = Soul.init(a, "alpha", remote=str(bare_remote))
    git("push", "-q", "-u", "origin", "main", cwd=a)
    git("clone", "-q", str(bare_remote), str(b), cwd=tmp_path)
    soul_b = Soul.init(b, "beta")
    # Both machines learn the same fact while offline.
    id_a = soul_a.remember("Priya leads payments", kind="fact").id
    id_b = soul_b.remember("priya leads payments.", kind="fact").id
    assert id_a != id_b
    git("push", "-q", "origin", "main", cwd=a)
    git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main", cwd=b)
    listed = soul_json("list", home=b)
    assert len(listed) == 1 and listed[0]["id"] == id_a and id_b in listed[0]["aliases"]
    assert [h["id"] for h in soul_json("recall", "payments", home=b)] == [id_a]
    assert soul_b.remember("Priya leads payments", kind="fact").duplicate_of == id_a
    # Forgetting through the alias forgets the fact on both machines.
    run_soul("forget", id_b, home=b)
    assert soul_b.list_memories() == []
    git("push", "-q", "origin", "main", cwd=b)
    git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main", cwd=a)
    assert soul_a.list_memories() == []
    assert soul_a.remember("Priya leads payments", kind="fact").duplicate_of is None
