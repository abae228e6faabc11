"""The purge journal `.soul/purge-state.json`: which purge is under way and which steps are done.

Written atomically (temp + fsync + rename) before the first change and after every step, and
deleted when the purge is complete, so a purge killed at any point is found and finished by the next
`soul purge --yes` (or, on a replica following a purge, by the next sync). It holds the removed
texts while the purge runs (the scrub needs them) and therefore has mode 0600 and goes last.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from soul import fsutil
from soul.purge.scrub import JOURNAL

VERSION = 1


def path(state_dir: Path) -> Path:
    return state_dir / JOURNAL


def load(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path(state_dir).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        # An unreadable journal still means a purge started: never let sync push as if none had.
        return {"version": VERSION, "role": "unknown", "done": [], "broken": True}
    return data if isinstance(data, dict) else {"version": VERSION, "role": "unknown", "done": [], "broken": True}


def save(state_dir: Path, state: dict[str, Any]) -> None:
    fsutil.atomic_write(path(state_dir), json.dumps(state, ensure_ascii=False, indent=1), mode=0o600)


def clear(state_dir: Path) -> None:
    try:
        os.unlink(path(state_dir))
    except FileNotFoundError:
        return
    fsutil.fsync_dir(state_dir)


def crash_point(step: str) -> None:
    """Fault injection for the kill -9 tests: `SOUL_PURGE_CRASH_AT=<step>` dies right after <step>
    did its work and before the journal records it, as a power cut would."""
    if os.environ.get("SOUL_PURGE_CRASH_AT") == step:
        os._exit(137)
