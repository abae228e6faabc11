"""Helpers shared by the reliability modules (real subprocesses, real git; no mocks)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from conftest import SOUL_BIN, run_soul


def soul_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["SOUL_EMBEDDER"] = "lexical"
    env.update(extra)
    return env


def all_lines(home: Path) -> list[bytes]:
    """Every raw line of every event log (without judging them)."""
    out: list[bytes] = []
    for path in sorted((home / "memories").glob("*/*.jsonl")):
        out += path.read_bytes().splitlines(keepends=True)
    return out


def memory_events(home: Path) -> list[dict[str, Any]]:
    """Every `memory.add` event, duplicates kept, from lines that parse."""
    events = []
    for raw in all_lines(home):
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("op") == "memory.add":
            events.append(event)
    return events


def git_fsck(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "fsck", "--full", "--no-progress"], cwd=home, capture_output=True, text=True, timeout=120
    )


def init_soul(path: Path, instance: str = "alpha") -> Path:
    run_soul("init", "--instance", instance, home=path)
    return path


__all__ = [
    "SOUL_BIN",
    "all_lines",
    "free_locks",
    "git_fsck",
    "init_soul",
    "mcp_client",
    "memory_events",
    "run_soul",
    "soul_env",
]


@contextlib.asynccontextmanager
async def mcp_client(home: Path, instance: str = "alpha") -> AsyncIterator[Any]:
    """The official SDK client driving a real `soul mcp` over stdio (lexical embedder: fast)."""
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters, get_default_environment

    env = get_default_environment()
    env["SOUL_EMBEDDER"] = "lexical"
    params = StdioServerParameters(command=SOUL_BIN, args=["--home", str(home), "--instance", instance, "mcp"], env=env)
    async with Client(params, mode="legacy", read_timeout_seconds=120) as client:
        yield client


def free_locks(home: Path) -> list[str]:
    """Lock files someone still holds (flock), and git's index.lock if left behind."""
    import fcntl

    held = []
    candidates = [*(home / "memories").glob("*/*.jsonl"), *(home / ".soul").glob("*.lock")]
    for path in candidates:
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(str(path.relative_to(home)))
        finally:
            os.close(fd)
    if (home / ".git" / "index.lock").exists():
        held.append(".git/index.lock")
    return held
