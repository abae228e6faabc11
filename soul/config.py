"""Where the soul lives and who this instance is; `soul.toml` defaults.

Home: `--home`, else `$SOUL_HOME`, else `~/.soul`. Instance: `--instance`, else `$SOUL_INSTANCE`,
else the name stored in `.soul/instance` at init/join, else derived from the hostname.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from soul import settings as settings_mod
from soul.errors import UsageError
from soul.store import valid_instance

FORMAT_VERSION = 1

SOUL_TOML = """\
# soul repository settings (shared by every machine of this soul)
format = 1

[index]
# fastembed model; model_path may point to a local ONNX folder
model = "BAAI/bge-small-en-v1.5"
# model_path = "/path/to/onnx-folder"

[sync]
# seconds between background syncs of the daemon
interval = 60
# a settings key changed on two machines: newest | local | remote (the loser is kept as a conflict)
settings_policy = "newest"
# make a local git commit after every write
commit_on_write = true
# server = "http://127.0.0.1:8765"  (soul serve; daemons subscribe to its /events)

[links]
# "dotfiles/CLAUDE.md" = "~/.claude/CLAUDE.md"
"""

GLOBAL_TOML = """\
# Shared settings: edit by hand or with `soul set KEY VALUE`. Comments are kept.
"""

GITATTRIBUTES = "memories/**/*.jsonl merge=union\n"
GITIGNORE = ".soul/\n"

CONFIG_DEFAULTS: dict[str, Any] = {
    # duplicate_threshold: measured on tests/data/dup_pairs.json (docs/duplicates.md), issue 11
    "index": {"model": "BAAI/bge-small-en-v1.5", "model_path": None, "duplicate_threshold": 0.63},
    "sync": {"interval": 60, "settings_policy": "newest", "commit_on_write": True, "server": None},
    "links": {},
}


def default_home() -> Path:
    env = os.environ.get("SOUL_HOME")
    return Path(env).expanduser() if env else Path.home() / ".soul"


def hostname_instance() -> str:
    import socket

    raw = socket.gethostname().split(".")[0].lower()
    name = re.sub(r"[^a-z0-9._-]+", "-", raw).strip("-._") or "instance"
    return name[:63]


def check_instance(name: str) -> str:
    if not valid_instance(name):
        raise UsageError(
            f"invalid instance name {name!r}",
            hint="use lowercase letters, digits, '.', '_' or '-' (at most 63), e.g. work-laptop",
        )
    return name


def resolve_instance(home: Path, explicit: str | None) -> str:
    if explicit:
        return check_instance(explicit)
    env = os.environ.get("SOUL_INSTANCE")
    if env:
        return check_instance(env)
    stored = home / ".soul" / "instance"
    if stored.exists():
        name = stored.read_text(encoding="utf-8").strip()
        if name:
            return check_instance(name)
    return hostname_instance()


def load_config(home: Path) -> dict[str, Any]:
    """soul.toml merged over the defaults (one level deep)."""
    data = settings_mod.read(home / "soul.toml")
    merged: dict[str, Any] = {}
    for section, defaults in CONFIG_DEFAULTS.items():
        value = data.get(section, {})
        merged[section] = {**defaults, **value} if isinstance(value, dict) else dict(defaults)
    for key, value in data.items():
        if key not in merged:
            merged[key] = value
    return merged
