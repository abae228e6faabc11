"""soul purge on one replica and its bare remote: plan, apply, scrub, kill -9 and rerun.

Real git and real `soul` subprocesses. "No trace" means: not in `git log -p --all --reflog`, not in
any object (`git cat-file --batch-all-objects --batch`), not in any other file under `.git/`, the
working tree or `.soul/`, on the replica and on the remote.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import run_soul, soul_json

SECRET = "Zanzibar biopsy results for Aunt Mirela"
NEEDLE = b"zanzibar"


def git(repo: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, check=check)
    return proc.stdout.decode("utf-8", "replace")


def traces(repo: Path, needle: bytes = NEEDLE) -> list[str]:
    """Every place under `repo` (a clone or a bare repository) where `needle` still appears."""
    found = []
    history = subprocess.run(["git", "log", "-p", "--all", "--reflog"], cwd=repo, capture_output=True).stdout
    if needle in history.lower():
        found.append("git log -p --all --reflog")
    objects = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo, capture_output=True
    ).stdout
    if needle in objects.lower():
        found.append("object store")
    for path in repo.rglob("*"):
        if path.is_file() and "objects" not in path.relative_to(repo).parts and needle in path.read_bytes().lower():
            found.append(str(path.relative_to(repo)))
    return found


def texts(home: Path) -> list[str]:
    return sorted(m["text"] for m in open_soul(home).list_memories())


@pytest.fixture
def setup(tmp_path: Path, bare_remote: Path) -> dict[str, Any]:
    """A soul with three memories pushed to a bare remote (made in-process: only purge is under test)."""
    from soul.core import Soul

    home = tmp_path / "soul"
    soul = Soul.init(home, "alpha", remote=str(bare_remote))
    soul.remember("keep: the build uses make")
    secret = soul.remember(SECRET, kind="fact").id
    soul.remember("keep: tea, not coffee")
    git(home, "push", "-q", "origin", "main")
    return {"home": home, "remote": bare_remote, "secret": secret, "soul": soul}


def open_soul(home: Path) -> Any:
    from soul.core import Soul

    return Soul.open(home, "alpha")


def test_dry_run_changes_nothing(setup: dict[str, Any]) -> None:
    home = setup["home"]
    head = git(home, "rev-parse", "HEAD")
    logs = {p: p.read_bytes() for p in (home / "memories").rglob("*.jsonl")}
    plan = soul_json("purge", setup["secret"], home=home)
    assert plan["applied"] is False
    assert [line["id"] for line in plan["lines"]] == [setup["secret"]]
    assert plan["files"] == {"memories/alpha/" + next(iter(logs)).name: 1}
    assert plan["commits"]["rewritten"] >= 2 and plan["remote"] == str(setup["remote"])
    assert git(home, "rev-parse", "HEAD") == head
    assert {p: p.read_bytes() for p in logs} == logs
    assert not (home / ".soul" / "purge-state.json").exists() and not (home / "purges").exists()
    assert traces(setup["remote"])  # the text is still there: nothing was done


def test_purge_removes_every_trace_here_and_on_the_remote(setup: dict[str, Any]) -> None:
    home, remote = setup["home"], setup["remote"]
    state = home / ".soul"
    (state / "logs").mkdir(exist_ok=True)
    (state / "logs" / "error-1.log").write_text(f"ok line\nValueError: {SECRET}\n", encoding="utf-8")
    (state / "quarantine").mkdir(exist_ok=True)
    (state / "quarantine" / "x.bad").write_text(json.dumps({"text": SECRET}), encoding="utf-8")
    (state / "index").mkdir(exist_ok=True)
    (state / "index" / "rows.lance").write_bytes(b"\x00" + SECRET.encode())
    _cache_vector(state, SECRET)

    result = soul_json("purge", setup["secret"], "--yes", home=home)

    assert result["applied"] is True
    assert traces(home) == [] and traces(remote) == []
    assert texts(home) == ["keep: tea, not coffee", "keep: the build uses make"]
    assert git(home, "rev-parse", "HEAD") == git(remote, "rev-parse", "main")
    assert (state / "logs" / "error-1.log").read_text(encoding="utf-8") == "ok line\n"
    assert not (state / "index").exists() and _cached_rows(state) == 0
    record = (home / "purges" / f"{result['purge_id']}.toml").read_text(encoding="utf-8")
    assert setup["secret"] in record and "line_sha256" in record
    status = open_soul(home).status()["purge"]
    assert status["pending"] is False and status["applied"] == 1
    assert {c["name"]: c for c in open_soul(home).doctor()}["purge"]["ok"] is True


def test_match_removes_duplicates_and_linked_events(setup: dict[str, Any]) -> None:
    home = setup["home"]
    soul = setup["soul"]
    dup = soul.remember(SECRET.lower() + ".", allow_duplicate=True).id
    other = soul.remember("keep: a memory about the zoo").id
    soul.forget(setup["secret"])
    plan = soul_json("purge", "--match", "ZANZIBAR", home=home)
    assert {line["id"] for line in plan["lines"]} >= {setup["secret"], dup}
    assert {line["op"] for line in plan["lines"]} == {"memory.add", "memory.forget"}
    soul_json("purge", "--match", "ZANZIBAR", "--yes", home=home)
    assert traces(home) == [] and traces(setup["remote"]) == []
    assert other in {m["id"] for m in soul_json("list", home=home)}


def test_unknown_id_and_no_target_are_refused(setup: dict[str, Any]) -> None:
    home = setup["home"]
    head = git(home, "rev-parse", "HEAD")
    missing = run_soul("purge", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--yes", home=home, check=False)
    assert missing.returncode == 1 and "no event with id" in missing.stderr
    assert run_soul("purge", "--yes", home=home, check=False).returncode == 2
    assert git(home, "rev-parse", "HEAD") == head


# Every step of the journal; the default suite kills at three of them, `make test-long` at all.
_SLOW = pytest.mark.slow
STEPS = [
    pytest.param("start", marks=_SLOW),
    "rewrite",
    "worktree",
    "worktree-torn",  # killed between truncating a log and writing its kept lines back
    pytest.param("record", marks=_SLOW),
    pytest.param("scrub", marks=_SLOW),
    pytest.param("gc", marks=_SLOW),
    "push",
    pytest.param("remote-gc", marks=_SLOW),
]


@pytest.mark.parametrize("step", STEPS)
def test_kill_at_any_step_then_rerun_finishes(setup: dict[str, Any], step: str) -> None:
    home, remote = setup["home"], setup["remote"]
    crashed = run_soul("purge", setup["secret"], "--yes", home=home, env={"SOUL_PURGE_CRASH_AT": step}, check=False)
    assert crashed.returncode == 137
    soul = open_soul(home)
    status = soul.status()["purge"]
    assert status["pending"] is True and step not in status["state"]["done"]
    assert not {c["name"]: c for c in soul.doctor()}["purge"]["ok"]
    with pytest.raises(Exception, match="half done"):
        _assert_can_push(home)
    # A write between the crash and the rerun is kept.
    soul.remember("keep: written while the purge was half done")

    run_soul("purge", setup["secret"], "--yes", home=home)  # the same command again

    assert not (home / ".soul" / "purge-state.json").exists()
    assert traces(home) == [] and traces(remote) == []
    assert texts(home) == [
        "keep: tea, not coffee",
        "keep: the build uses make",
        "keep: written while the purge was half done",
    ]
    assert len(list((home / "purges").glob("*.toml"))) == 1
    assert git(home, "status", "--porcelain", "--", "memories") == ""
    run_soul("sync", home=home)
    pushed = git(remote, "grep", "-h", "keep:", "main", "--", "memories")
    assert len(pushed.splitlines()) == 3  # every kept memory, committed and synced
    assert traces(remote) == []
    _assert_can_push(home)


def test_offline_push_stays_pending_until_the_remote_is_back(setup: dict[str, Any], tmp_path: Path) -> None:
    home, remote = setup["home"], setup["remote"]
    moved = tmp_path / "elsewhere.git"
    remote.rename(moved)
    offline = run_soul("purge", setup["secret"], "--yes", home=home, check=False)
    assert offline.returncode == 3 and "remote still has the old history" in offline.stderr
    assert traces(home) == []
    assert open_soul(home).status()["purge"]["state"]["done"][-1] == "gc"
    moved.rename(remote)
    run_soul("purge", "--yes", home=home)
    assert traces(remote) == [] and git(home, "rev-parse", "HEAD") == git(remote, "rev-parse", "main")


def test_push_is_refused_when_a_purged_line_comes_back(setup: dict[str, Any]) -> None:
    home = setup["home"]
    log = next((home / "memories" / "alpha").glob("*.jsonl"))
    old_line = next(line for line in log.read_bytes().splitlines(keepends=True) if setup["secret"].encode() in line)
    run_soul("purge", setup["secret"], "--yes", home=home)
    _assert_can_push(home)
    with log.open("ab") as handle:
        handle.write(old_line)
    git(home, "commit", "-qam", "an old history merged back")
    with pytest.raises(Exception, match="purge removed"):
        _assert_can_push(home)


def test_rewrite_is_the_same_on_every_clone(setup: dict[str, Any], tmp_path: Path) -> None:
    """Two replicas applying one record get byte-identical commits: that is how they meet again."""
    from soul.purge import rewrite

    heads = []
    for name in ("one", "two"):
        clone = tmp_path / name
        git(tmp_path, "clone", "-q", str(setup["remote"]), str(clone))
        filt = rewrite.LineFilter([setup["secret"]])
        lines = [ln for ls in rewrite.tip_logs(clone, ["HEAD"]).values() for ln in ls if filt.drops(ln)]
        rule = rewrite.MessageRule(filt, rewrite.needles(lines))
        stats = rewrite.rewrite_history(clone, filt, rule, ["refs/heads/main"], apply=True)
        assert stats.changed >= 2
        again = rewrite.rewrite_history(clone, filt, rule, ["refs/heads/main"], apply=True)
        assert again.rehashed == 0  # idempotent
        heads.append(git(clone, "rev-parse", "main"))
    assert heads[0] == heads[1]


def test_recover_keeps_lines_written_after_an_interrupted_rewrite() -> None:
    from soul.purge import rewrite, worktree

    keep = b'{"op":"memory.add","id":"A","at":"2026-01-01T00:00:00.000Z","by":"x","text":"a"}\n'
    gone = b'{"op":"memory.add","id":"B","at":"2026-01-01T00:00:01.000Z","by":"x","text":"b"}\n'
    late = b'{"op":"memory.add","id":"C","at":"2026-01-01T00:00:02.000Z","by":"x","text":"c"}\n'
    filt = rewrite.LineFilter(["B"])
    assert worktree._recover(keep, late, filt) == keep + late  # truncated, then a writer appended
    assert worktree._recover(keep, keep[:20], filt) == keep  # killed mid-write
    assert worktree._recover(keep, keep + gone + late, filt) == keep + late


def _assert_can_push(home: Path) -> None:
    from soul import purge
    from soul.core import Soul

    purge.assert_can_push(Soul.open(home, "alpha"))


def _cache_vector(state: Path, text: str) -> None:
    import numpy as np

    from soul.embed import LEXICAL_ID, EmbeddingCache, cache_key

    cache = EmbeddingCache(state / "embeddings.sqlite")
    cache.put_many([(cache_key(LEXICAL_ID, text), np.ones(4, dtype=np.float32))])
    cache.close()


def _cached_rows(state: Path) -> int:
    from soul.embed import EmbeddingCache

    cache = EmbeddingCache(state / "embeddings.sqlite")
    try:
        return cache.count()
    finally:
        cache.close()
