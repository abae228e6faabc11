"""Several machines, one soul: a bare remote on disk and three clones (three instances) synced by
the real `soul sync`, through split brains, races, crashes, dead remotes and write storms."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from soul.core import Soul

from conftest import SOUL_BIN, git, run_soul, wait_for


def sync_json(home: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    proc = run_soul("sync", "--json", *extra, home=home, env=env, check=False)
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def trio(tmp_path: Path, bare_remote: Path) -> list[Soul]:
    a = Soul.init(tmp_path / "alpha", "alpha", remote=str(bare_remote))
    assert a.sync().status == "synced"
    b = Soul.join(str(bare_remote), tmp_path / "beta", "beta")
    c = Soul.join(str(bare_remote), tmp_path / "gamma", "gamma")
    for soul in (a, b, c):
        assert soul.sync().status == "synced"
    return [a, b, c]


def converge(souls: list[Soul], rounds: int = 4) -> None:
    for _ in range(rounds):
        results = [s.sync() for s in souls]
        assert all(r.status == "synced" for r in results), [r.errors for r in results]
        heads = {git(s.home, "rev-parse", "HEAD") for s in souls}
        if len(heads) == 1 and all(r.sent == 0 and r.received == 0 for r in results[1:]):
            return
    pytest.fail("replicas did not converge")


def all_files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and ".git" not in p.parts and ".soul" not in p.parts]


def test_offline_split_brain_converges(trio: list[Soul], bare_remote: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    away = bare_remote.with_name("unreachable.git")
    bare_remote.rename(away)
    expected: list[str] = ["everyone knows this"]
    for soul in trio:
        skew = soul.instance == "gamma"  # one machine's clock is a day ahead
        if skew:
            monkeypatch.setenv("SOUL_CLOCK_SKEW", "86400")
        for i in range(3):
            soul.remember(f"{soul.instance} memory {i}")
            expected.append(f"{soul.instance} memory {i}")
        soul.remember("everyone knows this")
        soul.set_setting("editor.theme", f"theme-of-{soul.instance}")
        soul.set_setting(f"only.{soul.instance}", True)
        code, out = sync_json(soul.home, "--timeout", "10", env={"SOUL_CLOCK_SKEW": "86400"} if skew else None)
        assert code == 3 and out["status"] == "offline", out
        monkeypatch.delenv("SOUL_CLOCK_SKEW", raising=False)
    away.rename(bare_remote)
    converge(trio)
    trees = {git(s.home, "rev-parse", "HEAD^{tree}") for s in trio}
    assert len(trees) == 1, "replicas hold different trees"
    for soul in trio:
        fresh = Soul.open(soul.home, soul.instance)
        memories = [m["text"] for m in fresh.list_memories(limit=0)]
        assert sorted(memories) == sorted(expected), soul.instance
        assert fresh.get_setting("editor.theme") == Soul.open(trio[0].home).get_setting("editor.theme")
        for other in trio:
            assert fresh.get_setting(f"only.{other.instance}")[0] is True
        conflicts = json.loads(run_soul("conflicts", "--json", home=soul.home).stdout)
        theme = [c for c in conflicts if c["key"] == "editor.theme"]
        assert len(theme) == 2, theme
        agreed = fresh.get_setting("editor.theme")[0]
        assert {c["dropped"] for c in theme} | {agreed} == {f"theme-of-{s.instance}" for s in trio}
        for path in all_files(soul.home):
            assert b"<<<<<<<" not in path.read_bytes(), path


def test_push_race_remote_moves_between_fetch_and_push(trio: list[Soul], tmp_path: Path) -> None:
    a, b, _ = trio
    flag = tmp_path / "race-once"
    flag.write_text("")
    hook = a.home / ".git" / "hooks" / "pre-push"
    env = " ".join(f"{k}={os.environ[k]!s}" for k in ("PATH", "HOME", "GIT_CONFIG_GLOBAL") if k in os.environ)
    hook.write_text(
        "#!/bin/sh\n"
        f'[ -e "{flag}" ] || exit 0\nrm -f "{flag}"\n'
        f'env -i {env} GIT_CONFIG_NOSYSTEM=1 {SOUL_BIN} --home "{b.home}" remember "raced in by beta" >/dev/null 2>&1\n'
        f'env -i {env} GIT_CONFIG_NOSYSTEM=1 {SOUL_BIN} --home "{b.home}" sync >/dev/null 2>&1\n'
        "exit 0\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    a.remember("alpha pushes")
    result = a.sync()
    assert result.status == "synced", result.errors
    assert not flag.exists(), "the racing hook did not run"
    assert result.received >= 1 and result.sent >= 1
    assert git(a.home, "rev-parse", "HEAD") == git(a.home, "rev-parse", "origin/main")
    converge([a, b])
    texts = {m["text"] for m in Soul.open(b.home).list_memories(limit=0)}
    assert {"alpha pushes", "raced in by beta"} <= texts


def _hang_hook(soul: Soul, name: str, flag: Path, started: Path, condition: str = "true") -> None:
    """A hook that, once, records its process group and sleeps: the moment to pull the plug."""
    hook = soul.home / ".git" / "hooks" / name
    hook.write_text(
        "#!/bin/sh\n"
        f'if [ -e "{flag}" ] && {condition}; then\n'
        f'  rm -f "{flag}"\n'
        f"  ps -o pgid= $$ | tr -d ' ' > \"{started}\"\n"
        "  sleep 60\n"
        "fi\nexit 0\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)


def _sync_and_kill(soul: Soul, started: Path) -> None:
    """Run `soul sync`, wait for the hook, then kill -9 soul and git's whole process group."""
    proc = subprocess.Popen(
        [SOUL_BIN, "--home", str(soul.home), "sync"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_for(lambda: started.exists() and started.read_text().strip() != "", timeout=60)
        os.killpg(int(started.read_text().strip()), signal.SIGKILL)
        proc.kill()
    finally:
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    "moment", [pytest.param("commit", marks=pytest.mark.slow), "merge", pytest.param("push", marks=pytest.mark.slow)]
)
def test_kill_9_then_recover(trio: list[Soul], tmp_path: Path, moment: str) -> None:
    a, b, _ = trio
    flag, started = tmp_path / "hang-once", tmp_path / "hook-started"
    flag.write_text("")
    b.remember("beta before the crash")
    b.set_setting("shared.key", "beta")
    assert b.sync().status == "synced"
    path = a.home / "soul.toml"
    path.write_text(path.read_text().replace("commit_on_write = true", "commit_on_write = false"))
    a.remember("alpha uncommitted before the crash")
    if moment == "merge":
        a.commit_all()
    hook, condition = {
        "commit": ("pre-commit", "true"),
        "merge": ("pre-commit", "[ -e .git/MERGE_HEAD ]"),
        "push": ("pre-push", "true"),
    }[moment]
    _hang_hook(a, hook, flag, started, condition)
    _sync_and_kill(a, started)
    if moment == "merge":
        assert (a.home / ".git" / "MERGE_HEAD").exists(), "the crash was meant to interrupt a merge"
    again = Soul.open(a.home, "alpha")
    again.remember("alpha after the crash")
    result = again.sync()
    assert result.status == "synced", result.errors
    converge([again, b])
    want = {"beta before the crash", "alpha uncommitted before the crash", "alpha after the crash"}
    for soul in (again, b):
        fresh = Soul.open(soul.home)
        assert {m["text"] for m in fresh.list_memories(limit=0)} == want
        assert git(soul.home, "status", "--porcelain") == ""
    assert git(a.home, "rev-parse", "HEAD^{tree}") == git(b.home, "rev-parse", "HEAD^{tree}")
    assert not (a.home / ".git" / "index.lock").exists()


# ---------------------------------------------------------------------- remotes that never answer


def _timed_sync(
    home: Path, timeout: str = "4", env: dict[str, str] | None = None
) -> tuple[int, float, dict[str, object]]:
    start = time.monotonic()
    code, out = sync_json(home, "--timeout", timeout, env=env)
    return code, time.monotonic() - start, out


def test_ssh_remote_that_never_answers_exits_3_in_time(trio: list[Soul], tmp_path: Path) -> None:
    a = trio[0]
    pidfile = tmp_path / "ssh.pid"
    script = tmp_path / "hang-ssh"
    script.write_text(f'#!/bin/sh\necho $$ > "{pidfile}"\nexec sleep 600\n')
    script.chmod(0o755)
    git(a.home, "remote", "set-url", "origin", "ssh://soul-test.invalid/soul.git")
    a.remember("waiting for a dead server")
    code, took, out = _timed_sync(a.home, env={"GIT_SSH_COMMAND": str(script)})
    assert code == 3 and out["status"] == "offline", out
    assert took < 15, f"took {took:.1f}s"
    pid = int(pidfile.read_text())
    assert wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), timeout=5), "ssh left running"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = server.accept()
                held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


@pytest.mark.slow
def test_http_remote_that_accepts_and_never_answers_exits_3(trio: list[Soul]) -> None:
    a = trio[0]
    with silent_listener() as port:
        git(a.home, "remote", "set-url", "origin", f"http://127.0.0.1:{port}/soul.git")
        code, took, out = _timed_sync(a.home)
    assert code == 3 and out["status"] == "offline", out
    assert took < 15, f"took {took:.1f}s"


class _Unauthorized(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="soul"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def test_credential_prompt_never_hangs(trio: list[Soul]) -> None:
    a = trio[0]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        git(a.home, "remote", "set-url", "origin", f"http://127.0.0.1:{server.server_port}/soul.git")
        code, took, out = _timed_sync(a.home, timeout="20")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 3 and out["status"] == "offline", out
    assert took < 15, f"took {took:.1f}s"


# ---------------------------------------------------------------------- write storm + daemon


@pytest.mark.slow
def test_write_storm_then_daemon(trio: list[Soul], bare_remote: Path) -> None:
    a, b, _ = trio
    path = a.home / "soul.toml"
    path.write_text(path.read_text().replace("commit_on_write = true", "commit_on_write = false"))
    a.commit_all()
    a.sync()
    storm = Soul.open(a.home, "alpha")
    count = 2000
    for i in range(count):
        storm.remember(f"storm memory number {i}", allow_duplicate=True)
    before = int(git(a.home, "rev-list", "--count", "HEAD"))
    run_soul("daemon", "start", home=a.home)
    try:
        # Both at once: the remote equals HEAD already before the daemon's first commit, so
        # checking one after the other can pass with the storm committed but not yet pushed.
        assert wait_for(
            lambda: (
                git(a.home, "status", "--porcelain") == ""
                and git(bare_remote, "rev-parse", "main") == git(a.home, "rev-parse", "HEAD")
            ),
            90,
        )
    finally:
        run_soul("daemon", "stop", home=a.home)
    assert int(git(a.home, "rev-list", "--count", "HEAD")) - before <= 2
    assert b.sync().received >= 1
    assert len(Soul.open(b.home).list_memories(limit=0)) == count
