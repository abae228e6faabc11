"""A purge across three replicas and a bare remote, with real git and the real `soul` command.

alpha purges a memory while beta is offline with unpushed memories of its own; gamma is online.
After everyone syncs, the text is nowhere: not in `git log -p --all --reflog`, not in any object,
not in any file of `.git/`, the working tree or `.soul/`, on every replica and on the remote; and
every other memory is on every replica exactly once, beta's offline ones included.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from soul import purge
from soul.errors import SyncAttention

from conftest import run_soul, soul_json

SECRET = "Zanzibar biopsy results for Aunt Mirela"
NEEDLE = b"zanzibar"


def traces(repo: Path) -> list[str]:
    found = []
    for args in (["log", "-p", "--all", "--reflog"], ["cat-file", "--batch-all-objects", "--batch"]):
        out = subprocess.run(["git", *args], cwd=repo, capture_output=True, check=True).stdout
        if NEEDLE in out.lower():
            found.append("git " + " ".join(args))
    for path in repo.rglob("*"):
        if path.is_file() and "objects" not in path.relative_to(repo).parts and NEEDLE in path.read_bytes().lower():
            found.append(str(path.relative_to(repo)))
    return found


def sync(home: Path) -> dict[str, object]:
    return dict(soul_json("sync", home=home))


# Setup and reading go through the core API in-process (cheap); sync and purge, the things under
# test, run as the real `soul` command.


def soul(home: Path) -> Any:
    from soul.core import Soul

    return Soul.open(home, home.name)


def remember(home: Path, text: str, duplicate: bool = False) -> str:
    return str(soul(home).remember(text, allow_duplicate=duplicate).id)


def memories(home: Path) -> list[tuple[str, str]]:
    return sorted((m["id"], m["text"]) for m in soul(home).list_memories())


def create(home: Path, remote: Path, first: bool) -> None:
    from soul.core import Soul

    if first:
        Soul.init(home, home.name, remote=str(remote))
    else:
        Soul.join(str(remote), home, home.name)


@pytest.mark.parametrize("with_index", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_purge_reaches_every_replica_and_keeps_offline_work(
    tmp_path: Path, bare_remote: Path, with_index: bool
) -> None:
    alpha, beta, gamma = (tmp_path / name for name in ("alpha", "beta", "gamma"))
    create(alpha, bare_remote, first=True)
    remember(alpha, "alpha: the build uses make")
    sync(alpha)
    create(beta, bare_remote, first=False)
    create(gamma, bare_remote, first=False)
    secret = remember(beta, SECRET)
    remember(beta, "beta: pushed before the purge")
    sync(beta)
    sync(gamma)
    remember(gamma, "gamma: tea, not coffee")
    remember(gamma, SECRET.lower(), duplicate=True)  # the same text again, under another id
    for home in (gamma, alpha, beta):
        sync(home)
    if with_index:
        for home in (alpha, beta, gamma):
            assert soul_json("recall", "zanzibar biopsy", home=home)
    # gamma's .soul holds the text the way derived state does (a traceback, a quarantined line).
    (gamma / ".soul" / "logs").mkdir(exist_ok=True)
    (gamma / ".soul" / "logs" / "error.log").write_text(f"KeyError: {SECRET!r}\n", encoding="utf-8")
    assert all(traces(home) for home in (alpha, beta, gamma, bare_remote))

    # beta goes offline and keeps working: two new memories and a forget of the secret.
    offline = [remember(beta, "beta: offline memory one"), remember(beta, "beta: offline memory two")]
    soul(beta).forget(secret)

    plan = soul_json("purge", secret, home=alpha)
    assert len(plan["lines"]) == 2 and plan["remote"] == str(bare_remote)
    result = soul_json("purge", secret, "--yes", home=alpha)
    assert result["applied"] and traces(alpha) == [] and traces(bare_remote) == []

    sync(gamma)  # online replica: follows the purge
    assert traces(gamma) == []
    # beta comes back online; its first sync is killed in the middle of following the purge.
    crashed = run_soul("sync", home=beta, env={"SOUL_PURGE_CRASH_AT": "worktree"}, check=False)
    assert crashed.returncode == 137
    assert soul(beta).status()["purge"]["pending"] is True
    with pytest.raises(SyncAttention, match="half done"):
        purge.assert_can_push(soul(beta))
    sync(beta)  # finishes following the purge, then pushes its offline work
    assert traces(beta) == []
    for home in (alpha, gamma):
        sync(home)

    expected = sorted(memories(alpha))
    assert {text for _, text in expected} == {
        "alpha: the build uses make",
        "beta: pushed before the purge",
        "gamma: tea, not coffee",
        "beta: offline memory one",
        "beta: offline memory two",
    }
    assert set(offline) <= {mid for mid, _ in expected}
    for home in (alpha, beta, gamma):
        assert memories(home) == expected  # exactly once each, everywhere
        assert traces(home) == []
        assert soul(home).status()["purge"]["pending"] is False
        if with_index:
            hits = soul_json("recall", "zanzibar biopsy", home=home)
            assert all(NEEDLE not in json.dumps(h).lower().encode() for h in hits)
            assert traces(home) == []
    assert traces(bare_remote) == []
    heads = {
        subprocess.run(["git", "rev-parse", "HEAD"], cwd=h, capture_output=True, text=True).stdout
        for h in (
            alpha,
            beta,
            gamma,
        )
    }
    assert len(heads) == 1


@pytest.mark.slow
def test_a_replica_that_never_had_the_line_follows_without_a_rewrite(tmp_path: Path, bare_remote: Path) -> None:
    """gamma joined before the secret existed and never synced it: the purge record still reaches it,
    sync keeps working, and nothing it wrote is lost."""
    alpha, gamma = tmp_path / "alpha", tmp_path / "gamma"
    create(alpha, bare_remote, first=True)
    remember(alpha, "alpha: first")
    sync(alpha)
    create(gamma, bare_remote, first=False)
    mine = remember(gamma, "gamma: written offline")
    secret = remember(alpha, SECRET)
    sync(alpha)
    soul_json("purge", secret, "--yes", home=alpha)
    sync(gamma)
    sync(alpha)
    assert mine in {mid for mid, _ in memories(alpha)}
    assert memories(alpha) == memories(gamma)
    assert traces(alpha) == traces(gamma) == traces(bare_remote) == []


def test_commits_pushed_to_the_old_history_during_a_purge_are_purged_and_kept(
    tmp_path: Path, bare_remote: Path
) -> None:
    """alpha's purge stops before its push (killed); meanwhile gamma, which has not seen the purge,
    pushes new work on the old history. alpha's rerun takes gamma's commits in, purged, rather than
    force-pushing them away."""
    alpha, gamma = tmp_path / "alpha", tmp_path / "gamma"
    create(alpha, bare_remote, first=True)
    secret = remember(alpha, SECRET)
    sync(alpha)
    create(gamma, bare_remote, first=False)
    crashed = run_soul("purge", secret, "--yes", home=alpha, env={"SOUL_PURGE_CRASH_AT": "gc"}, check=False)
    assert crashed.returncode == 137
    late = remember(gamma, "gamma: pushed while alpha was purging")
    sync(gamma)  # the remote still has the old history: an ordinary push
    run_soul("purge", "--yes", home=alpha)
    assert traces(alpha) == [] and traces(bare_remote) == []
    on_remote = subprocess.run(
        ["git", "grep", "-c", "pushed while alpha", "main", "--", "memories"], cwd=bare_remote, capture_output=True
    )
    assert on_remote.returncode == 0  # taken in by the purge, not force-pushed away
    sync(gamma)
    sync(alpha)
    assert late in {mid for mid, _ in memories(alpha)}
    assert memories(alpha) == memories(gamma) and len(memories(alpha)) == 1
    assert traces(gamma) == []


@pytest.mark.slow
def test_two_purges_while_a_replica_is_offline(tmp_path: Path, bare_remote: Path) -> None:
    """beta misses two purges; applying both records at once gives the same commits as alpha's two
    rewrites one after the other, so beta's offline work still merges as an ordinary merge."""
    alpha, beta = tmp_path / "alpha", tmp_path / "beta"
    create(alpha, bare_remote, first=True)
    first = remember(alpha, SECRET)
    second = remember(alpha, "Zanzibar: the second thing to take back")
    remember(alpha, "alpha: stays")
    sync(alpha)
    create(beta, bare_remote, first=False)
    mine = remember(beta, "beta: offline work")
    soul_json("purge", first, "--yes", home=alpha)
    remember(alpha, "alpha: between the purges")
    sync(alpha)
    soul_json("purge", second, "--yes", home=alpha)
    before = _count(alpha)
    sync(beta)
    sync(alpha)
    texts = {text for _, text in memories(alpha)}
    assert texts == {"alpha: stays", "alpha: between the purges", "beta: offline work"}
    assert mine in {mid for mid, _ in memories(beta)} and memories(alpha) == memories(beta)
    assert traces(alpha) == traces(beta) == traces(bare_remote) == []
    # The histories met: beta added its own few commits and one merge, not a second copy of alpha's.
    assert _count(beta) - before <= 4 < before


def _count(repo: Path) -> int:
    out = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=repo, capture_output=True, text=True)
    return int(out.stdout)
