"""soul.sync against real git: a bare remote on disk and clones made by `init` and `join`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from soul import sync as sync_mod
from soul.core import Soul

from conftest import SOUL_BIN, git, run_soul


def first(tmp_path: Path, remote: Path, name: str = "alpha") -> Soul:
    soul = Soul.init(tmp_path / name, name, remote=str(remote))
    assert soul.sync().status == "synced"
    return soul


def joined(tmp_path: Path, remote: Path, name: str) -> Soul:
    return Soul.join(str(remote), tmp_path / name, name)


def texts(soul: Soul) -> list[str]:
    return sorted(m["text"] for m in Soul.open(soul.home, soul.instance).list_memories())


def tree(soul: Soul) -> str:
    return git(soul.home, "rev-parse", "HEAD^{tree}").strip()


def test_no_remote_is_nothing_to_do_exit_0(soul_home: Path) -> None:
    run_soul("remember", "a local thing", home=soul_home)
    proc = run_soul("sync", "--json", home=soul_home)
    out = json.loads(proc.stdout)
    assert out["status"] == "local" and out["exit_code"] == 0
    assert "no remote" in out["message"]


def test_first_sync_join_and_fast_forward(tmp_path: Path, bare_remote: Path) -> None:
    a = first(tmp_path, bare_remote)
    a.remember("the deploy key lives in the vault")
    assert a.sync().sent >= 1
    b = joined(tmp_path, bare_remote, "beta")
    assert texts(b) == ["the deploy key lives in the vault"]
    assert (b.home / ".soul" / "instance").read_text().strip() == "beta"
    b.remember("beta was here")
    result = b.sync()
    assert result.status == "synced" and result.sent >= 1
    result = a.sync()
    assert result.received >= 1 and result.sent == 0 and result.conflicts == []
    assert texts(a) == texts(b) == ["beta was here", "the deploy key lives in the vault"]
    assert tree(a) == tree(b)


def test_diverged_merge_resolves_settings_and_records_conflict(
    tmp_path: Path, bare_remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = first(tmp_path, bare_remote)
    b = joined(tmp_path, bare_remote, "beta")
    a.remember("from alpha")
    a.set_setting("editor.tab", 2)
    monkeypatch.setenv("SOUL_CLOCK_SKEW", "86400")  # beta's commits are a day ahead: newest wins
    b.remember("from beta")
    b.set_setting("editor.tab", 8)
    b.commit_all()
    monkeypatch.delenv("SOUL_CLOCK_SKEW")
    assert a.sync().status == "synced"
    result = b.sync()
    assert result.status == "synced", result.errors
    assert a.sync().received >= 1
    for soul in (a, b):
        assert soul.get_setting("editor.tab")[0] in (2, 8)
    assert a.get_setting("editor.tab") == b.get_setting("editor.tab")
    assert len(result.conflicts) == 1
    conflict = result.conflicts[0]
    assert conflict["key"] == "editor.tab" and conflict["file"] == "settings/global.toml"
    assert {conflict["kept"], conflict["dropped"]} == {2, 8}
    events = [e for e in _events(a) if e["op"] == "conflict"]
    assert len(events) == 1 and events[0]["by"] == "beta"
    assert {"key", "kept", "dropped", "from", "policy", "file"} <= set(events[0])
    assert tree(a) == tree(b)
    assert texts(a) == ["from alpha", "from beta"]
    assert "<<<<<<<" not in (a.home / "settings" / "global.toml").read_text()


def test_policy_local_keeps_own_value(tmp_path: Path, bare_remote: Path) -> None:
    a = first(tmp_path, bare_remote)
    b = joined(tmp_path, bare_remote, "beta")
    _set_policy(b, "local")
    a.set_setting("x", "alpha-value")
    b.set_setting("x", "beta-value")
    a.sync()
    result = b.sync()
    assert b.get_setting("x")[0] == "beta-value"
    assert result.conflicts[0]["dropped"] == "alpha-value" and result.conflicts[0]["policy"] == "local"


def test_offline_keeps_local_work_and_exits_3(tmp_path: Path, bare_remote: Path) -> None:
    a = first(tmp_path, bare_remote)
    bare_remote.rename(tmp_path / "away.git")
    run_soul("remember", "written while offline", home=a.home)
    proc = run_soul("sync", "--json", home=a.home, check=False)
    assert proc.returncode == 3, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "offline" and out["errors"]
    status = Soul.open(a.home).status()["sync"]
    assert status["offline_since"] and status["ahead"] >= 1
    assert git(a.home, "status", "--porcelain") == ""
    (tmp_path / "away.git").rename(bare_remote)
    again = json.loads(run_soul("sync", "--json", home=a.home).stdout)
    assert again["status"] == "synced" and again["sent"] >= 1
    assert Soul.open(a.home).status()["sync"]["offline_since"] is None


def test_secret_and_never_sync_paths_are_refused_the_rest_syncs(tmp_path: Path, bare_remote: Path) -> None:
    a = first(tmp_path, bare_remote)
    (a.home / "dotfiles").mkdir()
    (a.home / "dotfiles" / ".env").write_text("HELLO=1\n")
    (a.home / "dotfiles" / "notes.md").write_text("token = 'ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8'\n")
    (a.home / "dotfiles" / "fine.md").write_text("just notes\n")
    proc = run_soul("sync", "--json", home=a.home, check=False)
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    joined_errors = " ".join(out["errors"])
    assert "dotfiles/.env" in joined_errors and "dotfiles/notes.md" in joined_errors
    tracked = git(a.home, "ls-files", "dotfiles")
    assert "dotfiles/fine.md" in tracked and ".env" not in tracked and "notes.md" not in tracked
    assert "dotfiles/fine.md" in git(bare_remote, "ls-tree", "-r", "--name-only", "main")


def test_stale_index_lock_is_recovered(tmp_path: Path, bare_remote: Path) -> None:
    a = first(tmp_path, bare_remote)
    a.remember("before the crash", commit=False)
    (a.home / ".git" / "index.lock").write_text("")
    result = a.sync()
    assert result.status == "synced", result.errors
    assert any("index.lock" in note for note in result.recovered)
    assert not (a.home / ".git" / "index.lock").exists()


def test_foreign_merge_in_progress_is_left_alone(tmp_path: Path, bare_remote: Path) -> None:
    a = first(tmp_path, bare_remote)
    b = joined(tmp_path, bare_remote, "beta")
    b.set_setting("k", 1)
    b.sync()
    a.set_setting("k", 2)
    git(a.home, "fetch", "-q", "origin")
    subprocess.run(["git", "merge", "--no-commit", "origin/main"], cwd=a.home, capture_output=True)
    assert (a.home / ".git" / "MERGE_HEAD").exists()
    head = git(a.home, "rev-parse", "HEAD")
    result = a.sync()
    assert result.status == "attention" and "merge" in result.message
    assert git(a.home, "rev-parse", "HEAD") == head
    assert a.commit_all() is False


def test_interrupted_merge_of_ours_is_undone_and_redone(tmp_path: Path, bare_remote: Path) -> None:
    a = first(tmp_path, bare_remote)
    b = joined(tmp_path, bare_remote, "beta")
    b.remember("beta memory")
    b.set_setting("k", "b")
    b.sync()
    a.remember("alpha memory")
    a.set_setting("k", "a")
    git(a.home, "fetch", "-q", "origin")
    head = git(a.home, "rev-parse", "HEAD").strip()
    target = git(a.home, "rev-parse", "origin/main").strip()
    # What a crash mid-merge leaves: our marker, MERGE_HEAD, conflicted files, and an event
    # remembered meanwhile (not committed: commits are refused during a merge).
    (a.state_dir / sync_mod.MERGE_MARKER).write_text(json.dumps({"head": head, "target": target}))
    subprocess.run(["git", "merge", "--no-commit", "--no-ff", target], cwd=a.home, capture_output=True)
    assert (a.home / ".git" / "MERGE_HEAD").exists()
    a.remember("remembered during the merge")
    result = a.sync()
    assert result.status == "synced", result.errors
    assert any("interrupted" in note for note in result.recovered)
    b.sync()
    assert texts(a) == texts(b) == ["alpha memory", "beta memory", "remembered during the merge"]
    assert tree(a) == tree(b)
    assert not (a.state_dir / sync_mod.MERGE_MARKER).exists()


def test_interrupted_fast_forward_is_finished_not_committed(tmp_path: Path, bare_remote: Path) -> None:
    a = first(tmp_path, bare_remote)
    b = joined(tmp_path, bare_remote, "beta")
    b.remember("beta memory")
    b.sync()
    git(a.home, "fetch", "-q", "origin")
    head = git(a.home, "rev-parse", "HEAD").strip()
    target = git(a.home, "rev-parse", "origin/main").strip()
    (a.state_dir / sync_mod.MERGE_MARKER).write_text(json.dumps({"head": head, "target": target, "ff": True}))
    rel = next(p for p in git(a.home, "diff", "--name-only", head, target).split() if p.endswith(".jsonl"))
    half = (a.home / rel).parent
    half.mkdir(parents=True, exist_ok=True)
    (a.home / rel).write_text(git(a.home, "show", f"{target}:{rel}")[:40])  # a file cut short by the crash
    result = a.sync()
    assert result.status == "synced", result.errors
    assert any("interrupted" in note for note in result.recovered)
    assert git(a.home, "rev-parse", "HEAD").strip() == target, "the half-written file became a local commit"
    assert texts(a) == ["beta memory"]


def test_unparseable_toml_stops_the_merge_and_loses_nothing(tmp_path: Path, bare_remote: Path) -> None:
    a = first(tmp_path, bare_remote)
    b = joined(tmp_path, bare_remote, "beta")
    b.set_setting("k", "b")
    b.sync()
    a.remember("kept through a failed merge")
    (a.home / "settings" / "global.toml").write_text("k = = broken\n")
    a.commit_all()
    head = git(a.home, "rev-parse", "HEAD")
    result = a.sync()
    assert result.status == "attention" and "global.toml" in result.message
    assert not (a.home / ".git" / "MERGE_HEAD").exists()
    assert git(a.home, "rev-parse", "HEAD") == head
    assert git(a.home, "status", "--porcelain") == ""
    assert "kept through a failed merge" in texts(a)


def test_join_refuses_non_empty_dir_and_cleans_up_when_offline(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    assert run_soul("--home", str(busy), "join", str(tmp_path / "nope.git"), check=False).returncode == 2
    target = tmp_path / "fresh"
    proc = run_soul("--home", str(target), "join", str(tmp_path / "nope.git"), check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    assert not target.exists()
    # Nothing listens on port 1: the network, not the soul, is the problem.
    proc = run_soul("--home", str(target), "join", "http://127.0.0.1:1/soul.git", check=False)
    assert proc.returncode == 3, proc.stderr
    assert not target.exists()


def test_join_an_empty_remote_starts_a_soul(tmp_path: Path, bare_remote: Path) -> None:
    b = joined(tmp_path, bare_remote, "beta")
    assert (b.home / "soul.toml").is_file()
    assert git(b.home, "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert b.sync().sent >= 1
    assert "soul.toml" in git(bare_remote, "ls-tree", "--name-only", "main")


def test_status_and_doctor_sections(tmp_path: Path, bare_remote: Path) -> None:
    a = first(tmp_path, bare_remote)
    a.remember("one")
    info = a.status()
    assert info["sync"]["ahead"] == 1 and info["sync"]["behind"] == 0
    assert info["sync"]["last_result"] == "synced"
    assert info["daemon"]["running"] is False
    checks = {c["name"]: c for c in a.doctor()}
    assert checks["remote"]["ok"] and checks["daemon"]["ok"]
    bare_remote.rename(tmp_path / "gone.git")
    checks = {c["name"]: c for c in a.doctor()}
    assert not checks["remote"]["ok"]


def test_concurrent_syncs_are_serialised(tmp_path: Path, bare_remote: Path) -> None:
    a = first(tmp_path, bare_remote)
    for i in range(5):
        a.remember(f"memory {i}", commit=False)
    procs = [
        subprocess.Popen([SOUL_BIN, "--home", str(a.home), "sync", "--json"], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(o["status"] == "synced" for o in outs)
    assert sum(o["sent"] for o in outs) == 1
    assert git(a.home, "rev-parse", "HEAD") == git(bare_remote, "rev-parse", "main")


def _events(soul: Soul) -> list[dict[str, object]]:
    from soul import store

    return store.read_all(soul.home)


def _set_policy(soul: Soul, policy: str) -> None:
    path = soul.home / "soul.toml"
    path.write_text(path.read_text().replace('settings_policy = "newest"', f'settings_policy = "{policy}"'))
    soul._config = None
