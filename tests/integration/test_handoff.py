"""Two machines (two clones of one bare remote): session handoff, concurrent offline claims,
instances, tasks, people and accepted preferences travelling through git.

Syncing is plain `git pull --no-rebase` + `git push` here so that these tests exercise this
feature's events and fold, not the sync engine (which has its own tests)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from soul.core import Soul

from conftest import run_soul, soul_json


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def sync(home: Path) -> None:
    _git(home, "pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
    _git(home, "push", "-q", "origin", "HEAD:main")


@pytest.fixture
def pair(tmp_path: Path, bare_remote: Path) -> tuple[Soul, Soul]:
    a = Soul.init(tmp_path / "a", "alpha", remote=str(bare_remote))
    _git(a.home, "push", "-q", "-u", "origin", "main")
    _git(tmp_path, "clone", "-q", str(bare_remote), str(tmp_path / "b"))
    b = Soul.init(tmp_path / "b", "beta")
    return a, b


@pytest.fixture
def work(tmp_path: Path) -> Path:
    repo = tmp_path / "work"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "topic")
    _git(repo, "remote", "add", "origin", "git@example.org:team/gadget.git")
    (repo / "main.py").write_text("print(1)\n")
    _git(repo, "add", "main.py")
    _git(repo, "commit", "-qm", "start")
    (repo / "main.py").write_text("print(2)\n")
    return repo


def test_save_on_a_resume_on_b_then_a_is_told(pair: tuple[Soul, Soul], work: Path) -> None:
    a, b = pair
    saved = soul_json(
        "session", "save", "--title", "Port the gadget", "--summary", "API sketched",
        "--next", "write the adapter", "--question", "sync or async?", "--cwd", str(work), home=a.home,
    )  # fmt: skip
    sync(a.home)
    sync(b.home)
    resumed = soul_json("session", "resume", "--project", "gadget", home=b.home)
    assert resumed["session"]["id"] == saved["id"]
    assert resumed["claimed_by"] == "beta" and resumed["previous_claim"] is None
    brief = resumed["briefing"]
    assert "Port the gadget" in brief and "write the adapter" in brief and "sync or async?" in brief
    assert "`topic`" in brief and saved["repo"]["head"] in brief and "`main.py`" in brief
    sync(b.home)
    sync(a.home)
    assert a.list_sessions()[0]["claimed_by"] == "beta"
    back = run_soul("session", "resume", home=a.home)
    assert "beta claimed this session" in back.stderr
    assert "claimed by **beta**" in back.stdout
    sync(a.home)
    sync(b.home)
    assert b.list_sessions()[0]["claimed_by"] == "alpha"
    assert b.list_sessions()[0]["concurrent_claims"] == []


def test_concurrent_offline_claims_resolve_the_same_on_both(
    pair: tuple[Soul, Soul], work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    saved = a.save_session("Shared work", cwd=str(work))
    sync(a.home)
    sync(b.home)
    # Both resume while offline; beta's clock is a few seconds later, so beta's claim sorts last.
    first = a.resume_session()
    monkeypatch.setenv("SOUL_CLOCK_SKEW", "5")
    second = b.resume_session()
    monkeypatch.delenv("SOUL_CLOCK_SKEW")
    assert first["claimed_by"] == "alpha" and second["claimed_by"] == "beta"
    assert first["previous_claim"] is None and second["previous_claim"] is None  # neither could know
    sync(a.home)
    sync(b.home)
    sync(a.home)
    views = [s.list_sessions()[0] for s in (a, b)]
    assert views[0] == views[1]
    assert views[0]["id"] == saved["id"] and views[0]["claimed_by"] == "beta"  # last claim wins
    assert views[0]["concurrent_claims"] == [
        {"by": "alpha", "at": first["session"]["claimed_at"], "displaced_by": "beta"}
    ]
    # alpha learns it lost the claim on its next resume, and taking it back is not "concurrent"
    again = a.resume_session()
    assert again["previous_claim"]["by"] == "beta" and again["claimed_by"] == "alpha"
    sync(a.home)
    sync(b.home)
    final = b.list_sessions()[0]
    assert final == a.list_sessions()[0]
    # alpha saw beta's claim when taking it back: a knowing takeover wins even though beta's clock
    # was ahead, and nothing unseen remains
    assert final["claimed_by"] == "alpha" and final["concurrent_claims"] == []


def test_instances_tasks_people_prefs_travel(pair: tuple[Soul, Soul]) -> None:
    a, b = pair
    a.register_instance(yes=True)
    task = a.add_task("Write the migration", project="gadget")
    a.note_person("Dana", "Owns the billing service", project="billing", style="prefers calls")
    for _ in range(3):
        a.observe_choice("review.style", "small-prs")
    a.accept_preference("review.style")
    sync(a.home)
    sync(b.home)
    [inst] = b.list_instances()
    assert inst["name"] == "alpha" and inst["state"] == "alive" and inst["this"] is False
    assert not b.is_registered()
    assert b.who_is("dana")["style"] == "prefers calls"
    assert b.get_setting("review.style") == ("small-prs", "preference")
    b.update_task(task["id"], status="done", note="merged on beta")
    b.note_person("dana", "Moved to the payments team")
    sync(b.home)
    sync(a.home)
    [done] = a.list_tasks(project="gadget")
    assert done["status"] == "done" and done["updated_by"] == "beta"
    assert [n["text"] for n in a.who_is("Dana")["notes"]] == ["Moved to the payments team", "Owns the billing service"]
    for home in (a.home, b.home):
        assert _git(home, "status", "--porcelain", "--", "memories/*/*.jsonl", "instances", "settings") == ""
