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

from conftest import soul_json

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
    sync(beta)  # back online: follows the purge and pushes its offline work
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
