"""Instances: the opt-in registry `instances/<instance>.toml` and its heartbeats.

Invariants: nothing about a machine is written until it registers (explicit consent); an instance
writes only its own file, atomically, and commits it; `last_seen` moves at most once per
`HEARTBEAT_INTERVAL` so heartbeats cannot flood git history. Liveness is derived from `last_seen`
on read (alive / stale / offline), never stored.
"""

from __future__ import annotations

import platform
import socket
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soul.errors import NotFound, UsageError
from soul.ids import iso_from_ms, now_ms, parse_iso
from soul.store import valid_instance

if TYPE_CHECKING:
    from soul.core import Soul

INSTANCES_DIR = "instances"
HEARTBEAT_INTERVAL = 15 * 60  # seconds between two commits of last_seen
# Alive: seen within two heartbeat intervals plus slack for a sync period; stale: within a day.
ALIVE_WITHIN = 2 * HEARTBEAT_INTERVAL + 5 * 60
STALE_WITHIN = 24 * 3600
_FIELDS = ("name", "hostname", "platform", "registered_at", "last_seen")


def instance_path(home: Path, name: str) -> Path:
    return home / INSTANCES_DIR / f"{name}.toml"


def read_instance(path: Path) -> dict[str, Any] | None:
    """One registry file, or None when it does not parse (another vessel's or a hand edit)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    out = {key: str(data[key]) for key in _FIELDS if isinstance(data.get(key), str)}
    out.setdefault("name", path.stem)
    return out


def is_registered(soul: Soul) -> bool:
    return instance_path(soul.home, soul.instance).is_file()


def _write(soul: Soul, record: dict[str, Any], message: str) -> None:
    import tomlkit

    from soul import fsutil, secrets

    secrets.check_value(record, what="instance record")
    doc = tomlkit.document()
    doc.add(tomlkit.comment("written by `soul instance register`; only this instance edits this file"))
    for key in _FIELDS:
        doc[key] = record[key]
    path = instance_path(soul.home, soul.instance)
    fsutil.atomic_write(path, tomlkit.dumps(doc))
    soul.commit_if_enabled([path], message)


def register(soul: Soul, yes: bool = False) -> dict[str, Any]:
    """Opt this instance in. Idempotent: registering again keeps `registered_at`."""
    if not yes:
        raise UsageError(
            "registering publishes this machine's hostname and platform to every clone of the soul",
            hint="run `soul instance register` in a terminal to confirm, or pass --yes",
        )
    now = iso_from_ms(now_ms())
    existing = read_instance(instance_path(soul.home, soul.instance)) or {}
    record = {
        "name": soul.instance,
        "hostname": socket.gethostname(),
        "platform": f"{platform.system()} {platform.release()} ({platform.machine()})".strip(),
        "registered_at": existing.get("registered_at") or now,
        "last_seen": now,
    }
    _write(soul, record, f"instance: register {soul.instance}")
    return {**record, "registered": True, "state": "alive"}


def unregister(soul: Soul) -> dict[str, Any]:
    path = instance_path(soul.home, soul.instance)
    if not path.is_file():
        raise NotFound(f"instance {soul.instance} is not registered", hint="nothing to do")
    path.unlink()
    soul.commit_if_enabled([path], f"instance: unregister {soul.instance}")
    return {"name": soul.instance, "registered": False}


def heartbeat(soul: Soul) -> dict[str, Any]:
    """Move `last_seen` forward if the last one is older than HEARTBEAT_INTERVAL (then commit)."""
    path = instance_path(soul.home, soul.instance)
    record = read_instance(path) if path.is_file() else None
    if record is None:
        return {"registered": False, "name": soul.instance}
    now = now_ms()
    last = _ms(record.get("last_seen"))
    if last is not None and 0 <= now - last < HEARTBEAT_INTERVAL * 1000:
        return {"registered": True, "name": soul.instance, "updated": False, "last_seen": record["last_seen"]}
    for key in _FIELDS:
        record.setdefault(key, "")
    record["last_seen"] = iso_from_ms(now)
    record["registered_at"] = record["registered_at"] or record["last_seen"]
    _write(soul, record, f"instance: heartbeat {soul.instance}")
    return {"registered": True, "name": soul.instance, "updated": True, "last_seen": record["last_seen"]}


def list_instances(soul: Soul) -> list[dict[str, Any]]:
    """Every registered instance with its state, most recently seen first."""
    root = soul.home / INSTANCES_DIR
    now = now_ms()
    out: list[dict[str, Any]] = []
    for path in sorted(root.glob("*.toml")) if root.is_dir() else []:
        if not valid_instance(path.stem):
            continue
        record = read_instance(path)
        if record is None:
            continue
        record["state"] = state_of(record.get("last_seen"), now)
        record["this"] = path.stem == soul.instance
        out.append(record)
    out.sort(key=lambda r: (r.get("last_seen") or "", r["name"]), reverse=True)
    return out


def state_of(last_seen: str | None, now: int) -> str:
    last = _ms(last_seen)
    if last is None:
        return "offline"
    age = (now - last) / 1000
    if age <= ALIVE_WITHIN:
        return "alive"
    return "stale" if age <= STALE_WITHIN else "offline"


def _ms(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(parse_iso(value).timestamp() * 1000)
    except ValueError:
        return None
