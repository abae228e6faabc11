"""Run git as a subprocess: never interactive, always bounded in time.

Every call gets a timeout; on timeout the whole process group is killed (git spawns ssh and
helpers that would otherwise outlive it). Credential prompts are disabled so a remote that asks
for a password fails at once instead of hanging, and ssh runs in BatchMode with a connect timeout.
Values that come from users are passed after `--end-of-options` or `--` by callers, so git never
reads them as options.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from soul.errors import GitError, OfflineError

DEFAULT_TIMEOUT = 30.0
NETWORK_TIMEOUT = 20.0

# Messages git prints when the network, not the repository, is the problem.
_OFFLINE_MARKERS = (
    "could not resolve host",
    "could not read from remote repository",
    "connection refused",
    "connection timed out",
    "operation timed out",
    "network is unreachable",
    "no route to host",
    "unable to access",
    "failed to connect",
    "connection reset",
    "terminal prompts disabled",
    "could not read username",
    "could not read password",
    "authentication failed",
    "host key verification failed",
    "permission denied (publickey",
    "does not appear to be a git repository",
    "operation too slow",
    "early eof",
    "the remote end hung up",
)


@dataclass(frozen=True)
class GitResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false" if os.path.exists("/bin/false") else "false",
            "SSH_ASKPASS": "/bin/false" if os.path.exists("/bin/false") else "false",
            "GCM_INTERACTIVE": "never",
            "LC_ALL": "C",
            "LANG": "C",
        }
    )
    if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5"
    if extra:
        env.update(extra)
    return env


_NETWORK_CONFIG = (
    "-c", "http.lowSpeedLimit=1000",
    "-c", "http.lowSpeedTime=10",
    "-c", "credential.interactive=never",
    "-c", "core.askPass=",
)  # fmt: skip


def run(
    args: list[str],
    cwd: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    network: bool = False,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
) -> GitResult:
    """Run `git <args>` in `cwd`. A network call that fails for network reasons or times out
    raises OfflineError; any other failure raises GitError when `check`."""
    cmd = ["git", *(_NETWORK_CONFIG if network else ()), *args]
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=git_env(env),
        start_new_session=True,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    try:
        out, err = proc.communicate(input_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        what = " ".join(args[:2])
        if network:
            raise OfflineError(f"git {what} timed out after {timeout:.0f}s", hint="check the remote") from None
        raise GitError(f"git {what} timed out after {timeout:.0f}s") from None
    result = GitResult(tuple(args), proc.returncode, out, err)
    if result.ok or not check:
        return result
    if network and looks_offline(err):
        raise OfflineError(f"remote unreachable: {first_line(err)}")
    raise GitError(f"git {' '.join(args[:2])} failed: {first_line(err) or first_line(out)}")


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=5)


def looks_offline(stderr: str) -> bool:
    low = stderr.lower()
    return any(marker in low for marker in _OFFLINE_MARKERS)


def first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:300]
    return ""


def commit_env() -> dict[str, str] | None:
    """Commits carry soul's clock, so `SOUL_CLOCK_SKEW` reaches "newest" decisions in tests."""
    if not os.environ.get("SOUL_CLOCK_SKEW"):
        return None
    from soul.ids import now_ms

    stamp = f"@{now_ms() // 1000} +0000"
    return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}


def clear_stale_index_lock(repo: Path, older_than: float = 10.0) -> bool:
    """git leaves .git/index.lock behind after a kill -9; remove it only when it is old enough
    that no live git process can still be holding it."""
    lock = repo / ".git" / "index.lock"
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < older_than:
        return False
    try:
        lock.unlink()
    except FileNotFoundError:
        return False
    return True


def head(repo: Path) -> str | None:
    result = run(["rev-parse", "--verify", "-q", "HEAD"], repo, check=False)
    return result.stdout.strip() or None if result.ok else None
