"""Sync faults: an unreachable remote, a hanging ssh, a credential prompt, a rewritten remote.

Each ends in bounded time with a clear status (`soul sync --json`) and every local memory kept.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliability.conftest import Ledger
from reliability.helpers import SOUL_BIN, init_soul, memory_events, run_soul, soul_env

BOUND = 45.0  # seconds; `--timeout 10` plus process start-up on a loaded machine


def _sync(home: Path, env: dict[str, str] | None = None, timeout: float = 10) -> tuple[dict[str, object], int, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [SOUL_BIN, "--home", str(home), "--instance", "alpha", "sync", "--json", "--timeout", str(timeout)],
        capture_output=True,
        text=True,
        env=env or soul_env(),
        stdin=subprocess.DEVNULL,
        timeout=BOUND * 2,
    )
    elapsed = time.monotonic() - start
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout), proc.returncode, elapsed


def _soul_with_work(tmp_path: Path, remote: str) -> tuple[Path, set[str]]:
    home = init_soul(tmp_path / "soul")
    run_soul("init", "--instance", "alpha", "--remote", remote, home=home)
    ids = {json.loads(run_soul("remember", "--json", f"local work {i}", home=home, env=soul_env()).stdout)["id"]
           for i in range(2)}  # fmt: skip
    return home, ids


def _kept(home: Path, ids: set[str]) -> None:
    assert ids <= {e["id"] for e in memory_events(home)}, "local work was lost"
    logged = subprocess.run(["git", "log", "--format=%s"], cwd=home, capture_output=True, text=True, check=True)
    assert logged.stdout.count("remember local work") >= len(ids), "local work is not committed"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_remote_is_offline_and_keeps_work(tmp_path: Path, ledger: Ledger) -> None:
    for remote in (f"http://127.0.0.1:{_closed_port()}/soul.git", str(tmp_path / "no-such-remote.git")):
        home, ids = _soul_with_work(tmp_path / remote[-8:].replace("/", "_"), remote)
        result, code, elapsed = _sync(home)
        assert code == 3 and result["status"] == "offline", result
        assert result["message"], "offline without a message"
        assert elapsed < BOUND
        _kept(home, ids)
    ledger.add("test_sync_faults", faults=2, acknowledged=4, data_lost=0)


def test_hanging_ssh_is_killed_in_bounded_time(tmp_path: Path, ledger: Ledger) -> None:
    pids = tmp_path / "ssh.pids"
    script = tmp_path / "hang-ssh"
    script.write_text(f"#!/bin/sh\necho $$ >> {pids}\nexec sleep 600\n")
    script.chmod(0o755)
    home, ids = _soul_with_work(tmp_path, "ssh://git@soul.invalid/soul.git")
    result, code, elapsed = _sync(home, soul_env(GIT_SSH_COMMAND=str(script)), timeout=5)
    assert code == 3 and result["status"] == "offline", result
    assert "timed out" in str(result["message"]) or result["message"]
    assert elapsed < BOUND, f"sync took {elapsed:.0f}s against a hanging ssh"
    _kept(home, ids)
    time.sleep(0.5)
    for pid in pids.read_text().split():
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower(), (
            "the hanging ssh outlived the sync"
        )
    ledger.add("test_sync_faults", faults=1, acknowledged=2, data_lost=0)


class _Ask401(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="soul"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def asks_for_password() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ask401)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/soul.git"
    server.shutdown()
    server.server_close()


def test_credential_prompt_fails_fast_without_prompting(tmp_path: Path, asks_for_password: str,
                                                        ledger: Ledger) -> None:  # fmt: skip
    home, ids = _soul_with_work(tmp_path, asks_for_password)
    # Even with a terminal-prompting askpass configured globally, soul must not wait for input.
    env = soul_env(GIT_ASKPASS=str(tmp_path / "never-called"), SSH_ASKPASS="")
    result, code, elapsed = _sync(home, env)
    assert code in (1, 3) and result["status"] in ("offline", "attention"), result
    assert result["message"]
    assert elapsed < BOUND
    _kept(home, ids)
    ledger.add("test_sync_faults", faults=1, acknowledged=2, data_lost=0)


def test_force_pushed_unrelated_history_keeps_local_work(tmp_path: Path, bare_remote: Path, ledger: Ledger) -> None:
    home, ids = _soul_with_work(tmp_path, str(bare_remote))
    result, code, _ = _sync(home)
    assert code == 0, result
    # Someone else replaces the remote's branch with an unrelated history.
    other = tmp_path / "other"
    subprocess.run(["git", "init", "-q", "-b", "main", str(other)], check=True)
    (other / "README").write_text("not a soul\n")
    subprocess.run(["git", "add", "README"], cwd=other, check=True)
    subprocess.run(["git", "commit", "-qm", "unrelated"], cwd=other, check=True)
    subprocess.run(["git", "push", "-q", "--force", str(bare_remote), "main:main"], cwd=other, check=True)
    ids.add(json.loads(run_soul("remember", "--json", "local work after", home=home, env=soul_env()).stdout)["id"])
    result, code, elapsed = _sync(home)
    assert elapsed < BOUND
    assert result["message"], result
    _kept(home, ids)
    if code == 0:  # merged: the remote must now hold our memories too
        shown = subprocess.run(["git", "log", "--format=%s", "main"], cwd=bare_remote, capture_output=True, text=True)
        assert "remember local work after" in shown.stdout
    else:
        assert code in (1, 3) and result["status"] in ("attention", "offline"), result
    ledger.add("test_sync_faults", faults=1, acknowledged=3, data_lost=0)
    ledger.note("test_sync_faults", f"force-pushed unrelated remote: sync status {result['status']!r}")


def test_sync_json_never_leaks_credentials_in_urls(tmp_path: Path, ledger: Ledger) -> None:
    secret = "hunter2-" + os.urandom(4).hex()
    home, ids = _soul_with_work(tmp_path, f"http://user:{secret}@127.0.0.1:{_closed_port()}/soul.git")
    result, code, _ = _sync(home)
    assert code == 3
    assert secret not in json.dumps(result)
    _kept(home, ids)
    ledger.add("test_sync_faults", faults=1, acknowledged=2, data_lost=0)
