"""Sessions (save, resume with claims, close) and tasks, through the core API and the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from soul import sessions
from soul.core import Soul
from soul.errors import NotFound, SecretRefused, UsageError
from soul.view import fold

from conftest import run_soul, soul_json


@pytest.fixture
def soul_home(tmp_path: Path) -> Path:
    """The conftest soul (instance alpha), created in-process: `soul init` as a subprocess costs
    about a second per test on a loaded machine, and init is tested elsewhere."""
    home = tmp_path / "soul"
    Soul.init(home, "alpha")
    return home


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A work repository on branch `feature` with a remote holding a password, one commit, one dirty file."""
    repo = tmp_path / "code" / "checkout-dir"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "feature")
    _git(repo, "remote", "add", "origin", "https://bob:hunter22@git.example.org/acme/widget.git")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "commit", "-qm", "first")
    (repo / "a.py").write_text("x = 2\n")
    (repo / "new.txt").write_text("new\n")
    return repo


def _events(home: Path, op: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted((home / "memories").glob("*/*.jsonl")):
        out += [e for e in map(json.loads, path.read_text().splitlines()) if e["op"] == op]
    return out


def test_save_captures_work_repo_without_credentials(core: Soul, work: Path) -> None:
    s = core.save_session(
        "Parser refactor", "half done", ["write tests"], ["which API?"], cwd=str(work), files=["a.py"]
    )
    repo = s["repo"]
    assert repo["remote"] == "https://git.example.org/acme/widget.git"
    assert repo["branch"] == "feature"
    assert repo["head"] == _git(work, "rev-parse", "HEAD").strip()
    assert sorted(repo["dirty"]) == ["a.py", "new.txt"]
    assert s["project"] == "widget"  # from the remote, not the folder name
    assert s["status"] == "open" and s["by"] == "alpha"
    assert s["next_steps"] == ["write tests"] and s["open_questions"] == ["which API?"] and s["files"] == ["a.py"]
    assert all("hunter22" not in p.read_text() for p in (core.home / "memories").glob("*/*.jsonl"))
    assert _git(core.home, "status", "--porcelain") == ""


def test_save_outside_a_repo_uses_folder_name(core: Soul, tmp_path: Path) -> None:
    plain = tmp_path / "notes-dir"
    plain.mkdir()
    s = core.save_session("Plain", cwd=str(plain))
    assert s["repo"] is None and s["project"] == "notes-dir"


def test_save_refuses_secrets_and_writes_nothing(core: Soul, work: Path) -> None:
    with pytest.raises(SecretRefused):
        core.save_session("t", summary="use ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", cwd=str(work))
    assert _events(core.home, "session.save") == []


def test_save_needs_a_title(core: Soul) -> None:
    with pytest.raises(UsageError):
        core.save_session("   ")


def test_resume_latest_open_and_briefing(core: Soul, work: Path) -> None:
    core.save_session("Older", cwd=str(work))
    newest = core.save_session("Newest", "did X", ["do Y"], ["why Z?"], cwd=str(work), files=["a.py"])
    core.add_task("open task", project="widget")
    result = core.resume_session(project=str(work))
    assert result["session"]["id"] == newest["id"]
    assert result["claimed_by"] == "alpha" and result["previous_claim"] is None
    brief = result["briefing"]
    for part in ("# Resuming: Newest", "## Next steps", "1. do Y", "why Z?", "`feature`", newest["repo"]["head"],
                 "`a.py`", "open task"):  # fmt: skip
        assert part in brief
    again = core.resume_session(project="widget")
    assert again["previous_claim"] is None
    assert len(_events(core.home, "session.claim")) == 1  # already ours: no second claim


def test_second_instance_is_told_who_claimed(core: Soul, work: Path) -> None:
    saved = core.save_session("Handoff", cwd=str(work))
    core.resume_session()
    beta = Soul.open(core.home, "beta")
    result = beta.resume_session(saved["id"][:10])
    assert result["claimed_by"] == "beta"
    assert result["previous_claim"]["by"] == "alpha"
    assert "claimed by **alpha**" in result["briefing"]
    assert [c["by"] for c in result["session"]["claims"]] == ["alpha", "beta"]
    assert result["session"]["concurrent_claims"] == []  # beta saw alpha's claim


def test_resume_without_sessions_and_unknown_ids(core: Soul) -> None:
    with pytest.raises(NotFound):
        core.resume_session()
    with pytest.raises(NotFound):
        core.resume_session("01ZZZZ")
    with pytest.raises(NotFound):
        core.close_session("nope")


def test_close_hides_from_resume_and_status_filter(core: Soul, work: Path) -> None:
    s = core.save_session("Done soon", cwd=str(work))
    closed = core.close_session(s["id"])
    assert closed["status"] == "closed" and closed["closed_by"] == "alpha"
    assert core.list_sessions(status="open") == []
    assert [x["id"] for x in core.list_sessions(status="closed")] == [s["id"]]
    with pytest.raises(NotFound):
        core.resume_session()
    assert core.resume_session(s["id"])["claimed_by"] is None  # a closed session is shown, never claimed
    with pytest.raises(UsageError):
        core.list_sessions(status="paused")


def test_saving_after_resume_continues_the_session(core: Soul, work: Path, tmp_path: Path) -> None:
    first = core.save_session("Step 1", cwd=str(work))
    other = core.save_session("Other project", cwd=str(tmp_path))
    beta = Soul.open(core.home, "beta")
    beta.resume_session(project="widget")
    second = beta.save_session("Step 2", cwd=str(work))
    old = beta.list_sessions(status="closed")
    assert [s["id"] for s in old] == [first["id"]] and old[0]["continued_in"] == second["id"]
    assert {s["id"] for s in beta.list_sessions(status="open")} == {second["id"], other["id"]}


def _ev(op: str, at: str, by: str, eid: str, **fields: Any) -> dict[str, Any]:
    return {"op": op, "id": eid, "at": at, "by": by, "v": 1, **fields}


def test_fold_concurrent_claims_last_wins_and_is_recorded() -> None:
    save = _ev("session.save", "2026-01-01T00:00:00.000Z", "a", "01A", session="S", title="t")
    c1 = _ev("session.claim", "2026-01-01T01:00:00.000Z", "b", "01B", session="S", after=None)
    c2 = _ev("session.claim", "2026-01-01T01:00:05.000Z", "c", "01C", session="S", after=None)
    s = fold([save, c1, c2]).sessions["S"]
    assert s["claimed_by"] == "c"
    assert s["concurrent_claims"] == [{"by": "b", "at": c1["at"], "displaced_by": "c"}]
    informed = _ev("session.claim", "2026-01-01T01:00:05.000Z", "c", "01C", session="S", after="01B")
    assert fold([save, c1, informed]).sessions["S"]["concurrent_claims"] == []


def test_fold_a_knowing_takeover_wins_over_a_clock_that_runs_ahead() -> None:
    save = _ev("session.save", "2026-01-01T00:00:00.000Z", "a", "01A", session="S", title="t")
    ahead = _ev("session.claim", "2026-01-01T05:00:00.000Z", "b", "01B", session="S", after=None)
    takeover = _ev("session.claim", "2026-01-01T01:00:00.000Z", "a", "01C", session="S", after="01B")
    for order in ([save, takeover, ahead], [save, ahead, takeover]):
        s = fold(order).sessions["S"]
        assert s["claimed_by"] == "a" and s["claim_id"] == "01C" and s["concurrent_claims"] == []


def test_fold_keeps_a_claim_folded_before_its_save() -> None:
    claim = _ev("session.claim", "2026-01-01T00:00:00.000Z", "b", "01B", session="S")
    save = _ev("session.save", "2026-01-01T00:00:09.000Z", "a", "01A", session="S", title="t")
    s = fold([claim, save]).sessions["S"]
    assert s["title"] == "t" and s["claimed_by"] == "b"


def test_cli_save_stdin_json_resume_list_close(soul_home: Path, work: Path) -> None:
    payload = {"title": "From MCP", "summary": "s", "next_steps": ["n1"], "cwd": str(work), "files": ["a.py"]}
    saved = soul_json("session", "save", "--stdin-json", home=soul_home, input=json.dumps(payload))
    assert saved["title"] == "From MCP" and saved["next_steps"] == ["n1"] and saved["project"] == "widget"
    brief = run_soul("session", "resume", "--project", "widget", home=soul_home).stdout
    assert brief.startswith("# Resuming: From MCP")
    taken = run_soul("session", "resume", home=soul_home, instance="beta")
    assert "alpha claimed this session" in taken.stderr
    listed = soul_json("session", "list", "--status", "open", home=soul_home)
    assert listed[0]["claimed_by"] == "beta"
    run_soul("session", "close", saved["id"], home=soul_home)
    assert Soul.open(soul_home, "alpha").list_sessions(status="open") == []
    bad = run_soul("session", "save", "--stdin-json", home=soul_home, input='{"title": "x", "oops": 1}', check=False)
    assert bad.returncode == 2 and "oops" in bad.stderr


def test_project_path_resolves_to_the_same_name(core: Soul, work: Path) -> None:
    assert sessions.resolve_project(str(work)) == "widget"
    assert sessions.resolve_project("widget") == "widget"
    assert sessions.resolve_project("team/gadget") == "team/gadget"
    with pytest.raises(UsageError):
        sessions.resolve_project("/no/such/dir")


# ---------------------------------------------------------------------- tasks


def test_tasks_add_update_list(core: Soul) -> None:
    a = core.add_task("write docs", project="soul", note="start with concepts")
    b = core.add_task("fix bug", project="soul")
    c = core.add_task("elsewhere")
    assert a["status"] == "todo" and a["notes"][0]["text"] == "start with concepts"
    core.update_task(b["id"][-26:], status="doing")
    done = core.update_task(a["id"], status="done", note="shipped")
    assert done["status"] == "done" and [n["text"] for n in done["notes"]] == ["start with concepts", "shipped"]
    assert [t["id"] for t in core.list_tasks(project="soul")] == [b["id"], a["id"]]
    assert [t["id"] for t in core.list_tasks(status="todo")] == [c["id"]]
    assert core.update_task(c["id"], note="just a note")["status"] == "todo"


def test_task_errors(core: Soul) -> None:
    t = core.add_task("x")
    with pytest.raises(UsageError):
        core.update_task(t["id"], status="blocked")
    with pytest.raises(UsageError):
        core.update_task(t["id"])
    with pytest.raises(NotFound):
        core.update_task("01NOPE", status="done")
    with pytest.raises(UsageError):
        core.add_task("  ")
    with pytest.raises(UsageError):
        core.list_tasks(status="later")


def test_task_concurrent_updates_fold_deterministically() -> None:
    add = _ev("task.add", "2026-01-01T00:00:00.000Z", "a", "01A", task="T", title="t")
    u1 = _ev("task.update", "2026-01-01T00:00:01.000Z", "a", "01B", task="T", status="done", note="a done")
    u2 = _ev("task.update", "2026-01-01T00:00:01.000Z", "b", "01C", task="T", status="doing", note="b doing")
    t = fold([add, u1, u2]).tasks["T"]
    assert t["status"] == "doing" and [n["text"] for n in t["notes"]] == ["a done", "b doing"]


def test_cli_tasks(soul_home: Path) -> None:
    task = soul_json("task", "add", "Ship it", "--project", "soul", home=soul_home)
    soul_json("task", "update", task["id"], "--status", "doing", home=soul_home)
    rows = soul_json("task", "list", "--project", "soul", home=soul_home)
    assert [(r["title"], r["status"]) for r in rows] == [("Ship it", "doing")]
    assert run_soul("task", "update", task["id"], "--status", "nah", home=soul_home, check=False).returncode == 2
