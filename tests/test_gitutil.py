"""git subprocesses: bounded in time, never interactive, the whole process group killed."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from soul import gitutil
from soul.errors import GitError, OfflineError


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path / "r")], check=True)
    marker = tmp_path / "child.pid"
    # An ssh stand-in that spawns a grandchild and hangs, like a stuck ssh ProxyCommand.
    script = tmp_path / "hang.sh"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {marker}\nwait\n")
    script.chmod(0o755)
    start = time.monotonic()
    with pytest.raises(OfflineError):
        gitutil.run(
            ["ls-remote", "ssh://example.invalid/x"],
            tmp_path / "r",
            timeout=2,
            network=True,
            env={"GIT_SSH_COMMAND": str(script)},
        )
    assert time.monotonic() - start < 15
    pid = int(marker.read_text())
    time.sleep(0.2)
    assert not _alive(pid), "the grandchild of git outlived the timeout"


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for a reaper (containers may lack one)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            state = next(line for line in handle if line.startswith("State:"))
    except (FileNotFoundError, StopIteration):
        return False
    return "Z" not in state.split()[1]


def test_credential_prompt_fails_fast_instead_of_hanging(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path / "r")], check=True)
    with pytest.raises(OfflineError):
        gitutil.run(["ls-remote", "http://127.0.0.1:9/x.git"], tmp_path / "r", timeout=20, network=True)


def test_failure_is_git_error_with_first_line(tmp_path: Path) -> None:
    with pytest.raises(GitError) as info:
        gitutil.run(["rev-parse", "--verify", "nope"], tmp_path)
    assert "git rev-parse" in info.value.message


def test_stale_index_lock_is_cleared_only_when_old(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    lock = tmp_path / ".git" / "index.lock"
    lock.write_text("")
    assert gitutil.clear_stale_index_lock(tmp_path, older_than=60) is False
    old = time.time() - 120
    os.utime(lock, (old, old))
    assert gitutil.clear_stale_index_lock(tmp_path, older_than=60) is True
    assert not lock.exists()
