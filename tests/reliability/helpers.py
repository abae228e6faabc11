"""Helpers shared by the reliability modules (real subprocesses, real git; no mocks)."""

from __future__ import annotations

import json
import os
import subprocess
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


__all__ = ["SOUL_BIN", "all_lines", "git_fsck", "init_soul", "memory_events", "run_soul", "soul_env"]
