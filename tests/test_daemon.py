"""soul.daemon: debounced auto-commit, periodic sync, backoff, single instance, clean stop."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from soul import daemon as daemon_mod
from soul.core import Soul

from conftest import git, run_soul, wait_for


def remote_log(remote: Path, soul: Soul) -> str:
    """The newest event log of `soul` as the remote has it ("" while it has none)."""
    rel = _log_rel(soul)
    return subprocess.run(["git", "show", f"main:{rel}"], cwd=remote, capture_output=True, text=True).stdout


def no_commit_on_write(home: Path) -> None:
    path = home / "soul.toml"
    path.write_text(path.read_text().replace("commit_on_write = true", "commit_on_write = false"))


@pytest.fixture
def synced(tmp_path: Path, bare_remote: Path) -> Soul:
    soul = Soul.init(tmp_path / "alpha", "alpha", remote=str(bare_remote))
    no_commit_on_write(soul.home)
    soul.commit_all()
    assert soul.sync().status == "synced"
    return Soul.open(soul.home, "alpha")


@pytest.fixture
def running(synced: Soul) -> Iterator[daemon_mod.Daemon]:
    daemon = daemon_mod.Daemon(synced, interval=30.0, warm=False)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    assert wait_for(lambda: daemon.state.get("syncs", 0) >= 1, timeout=20)
    yield daemon
    daemon.request_stop()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the daemon did not stop"


def test_ignored_paths(tmp_path: Path) -> None:
    home = tmp_path
    assert daemon_mod.ignored(home, str(home / ".git" / "index"))
    assert daemon_mod.ignored(home, str(home / ".soul" / "daemon.json"))
    assert daemon_mod.ignored(home, str(home / "settings" / ".global.toml.abc123.tmp"))
    assert daemon_mod.ignored(home, str(home / "dotfiles" / "x.md~"))
    assert daemon_mod.ignored(home, "/elsewhere/file")
    assert not daemon_mod.ignored(home, str(home / "memories" / "a" / "2026-01.jsonl"))
    assert not daemon_mod.ignored(home, str(home / "settings" / "global.toml"))


def test_backoff_grows_is_bounded_and_jittered() -> None:
    first = [daemon_mod.backoff(60, 1) for _ in range(50)]
    later = [daemon_mod.backoff(60, 4) for _ in range(50)]
    assert all(30 <= d <= 65 for d in first)
    assert min(later) > max(first)
    assert len(set(first)) > 1, "no jitter"
    assert all(d <= daemon_mod.MAX_BACKOFF + 5 for d in (daemon_mod.backoff(60, 50) for _ in range(20)))


def test_autocommit_after_quiet_then_sync(running: daemon_mod.Daemon, bare_remote: Path) -> None:
    soul = running.soul
    memory_id = soul.remember("written while the daemon watches").id
    assert wait_for(lambda: "auto-commit" in git(soul.home, "log", "-1", "--format=%s"), timeout=20)
    assert git(soul.home, "status", "--porcelain") == ""
    # Pushed right after the commit, not at the next interval (30 s away).
    assert wait_for(lambda: memory_id in remote_log(bare_remote, soul), timeout=15)
    state = json.loads((soul.state_dir / daemon_mod.STATUS_FILE).read_text())
    assert state["last_result"] == "synced" and state["commits"] >= 1


def test_write_storm_gives_bounded_commits(
    running: daemon_mod.Daemon, monkeypatch: pytest.MonkeyPatch, bare_remote: Path
) -> None:
    monkeypatch.setattr(daemon_mod, "QUIET", 0.5)
    monkeypatch.setattr(daemon_mod, "MAX_WAIT", 1.5)
    soul = running.soul
    before = running.state["commits"]
    count = 0
    end = time.monotonic() + 4.0
    while time.monotonic() < end:
        soul.remember(f"storm {count}", allow_duplicate=True)
        count += 1
        time.sleep(0.01)
    assert wait_for(lambda: git(soul.home, "status", "--porcelain") == "", timeout=20)
    made = running.state["commits"] - before
    assert 1 <= made <= 4.0 / 1.5 + 2, f"{made} commits for {count} writes"
    running.request_sync()
    assert wait_for(lambda: git(soul.home, "rev-parse", "HEAD") == git(bare_remote, "rev-parse", "main"), 30)
    assert len(Soul.open(soul.home).list_memories(limit=0)) == count


def test_offline_daemon_keeps_running_and_recovers(running: daemon_mod.Daemon, bare_remote: Path) -> None:
    soul = running.soul
    away = bare_remote.with_name("away.git")
    bare_remote.rename(away)
    soul.remember("while the server is away")
    running.request_sync()
    assert wait_for(lambda: running.state.get("last_result") == "offline", timeout=30)
    assert running.state["offline_since"]
    assert json.loads((soul.state_dir / daemon_mod.STATUS_FILE).read_text())["offline_since"]
    away.rename(bare_remote)
    running.request_sync()
    assert wait_for(lambda: running.state.get("last_result") == "synced", timeout=30)
    assert running.state["offline_since"] is None
    assert "while the server is away" in remote_log(bare_remote, soul)


def test_cli_start_status_single_instance_and_stop(synced: Soul) -> None:
    home = synced.home
    info = json.loads(run_soul("daemon", "start", "--json", home=home).stdout)
    try:
        assert info["running"] and info["pid"]
        again = json.loads(run_soul("daemon", "start", "--json", home=home).stdout)
        assert again["already_running"] and again["pid"] == info["pid"]
        proc = run_soul("daemon", "run", home=home, check=False, timeout=30)
        assert proc.returncode == 1 and "already running" in proc.stderr
        status = json.loads(run_soul("status", "--json", home=home).stdout)
        assert status["daemon"]["running"] and status["daemon"]["pid"] == info["pid"]
    finally:
        run_soul("daemon", "stop", home=home)
    assert not json.loads(run_soul("daemon", "status", "--json", home=home).stdout)["running"]
    assert not (home / ".soul" / daemon_mod.PID_FILE).exists()
    assert "daemon stopped" in (home / ".soul" / daemon_mod.LOG_FILE).read_text()
    assert "not running" in run_soul("daemon", "stop", home=home).stderr


def _log_rel(soul: Soul) -> str:
    from soul import store

    return store.log_files(soul.home)[-1].relative_to(soul.home).as_posix()
