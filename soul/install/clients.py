"""`soul install mcp --client X` / `soul uninstall mcp`: soul's entry in an MCP client's JSON config.

Where the clients keep their servers (all under a top-level `mcpServers` object):
- claude-code: `~/.claude.json` (user scope; entries carry `"type": "stdio"`)
- claude-desktop: `~/Library/Application Support/Claude/claude_desktop_config.json` on macOS,
  `$XDG_CONFIG_HOME/Claude/claude_desktop_config.json` (default `~/.config`) on Linux
- cursor: `~/.cursor/mcp.json`

Invariants: a file that is not valid JSON is never rewritten; everything except the `soul` entry
is kept (order and values; indentation is detected and reused); the file is backed up (into the
soul's `.soul/backups/`) before every change and replaced atomically with its mode kept; an
install that changes nothing writes nothing. The entry runs the absolute soul executable with
explicit `--home`/`--instance`, because MCP clients start servers with a minimal environment.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soul.errors import UsageError
from soul.install import (
    Writer,
    backup_path,
    missing_parents,
    read_state,
    soul_args,
    soul_command,
    user_home,
)

if TYPE_CHECKING:
    from soul.core import Soul

CLIENTS = ("claude-code", "claude-desktop", "cursor")
SERVER_NAME = "soul"
MANIFEST = "mcp-clients.json"


def config_path(client: str) -> Path:
    home = user_home()
    if client == "claude-code":
        return home / ".claude.json"
    if client == "claude-desktop":
        if sys.platform == "darwin":
            return home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
        base = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        return base / "Claude" / "claude_desktop_config.json"
    if client == "cursor":
        return home / ".cursor" / "mcp.json"
    raise UsageError(f"unknown MCP client {client!r}", hint=f"use one of: {', '.join(CLIENTS)}")


def server_entry(soul: Soul, client: str) -> dict[str, Any]:
    command = soul_command()
    entry: dict[str, Any] = {"type": "stdio"} if client == "claude-code" else {}
    entry["command"] = command[0]
    entry["args"] = [*command[1:], *soul_args(soul.home, soul.instance), "mcp"]
    return entry


def _load(path: Path) -> tuple[dict[str, Any], str | None]:
    """The parsed config and its raw text (None when the file does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if not text.strip():
        return {}, text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); refusing to overwrite it",
            hint="fix or move the file, then run the command again",
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} does not hold a JSON object; refusing to overwrite it")
    servers = data.get("mcpServers")
    if servers is not None and not isinstance(servers, dict):
        raise UsageError(f'{path}: "mcpServers" is not an object; refusing to overwrite it')
    return data, text


def _render(data: dict[str, Any], original: str | None) -> str:
    """JSON in the file's own style: its indentation, and a final newline if it had one."""
    indent: str | int = 2
    if original:
        match = re.search(r"^\{\s*?\n([ \t]+)\S", original)
        if match:
            indent = match.group(1)
    newline = "\n" if original is None or original.endswith("\n") or not original.strip() else ""
    return json.dumps(data, indent=indent, ensure_ascii=False) + newline


def backups_dir(soul: Soul) -> Path:
    """Backups live in the soul's local state, so uninstall leaves the client's folder as it was."""
    return soul.state_dir / "backups"


def _write(soul: Soul, path: Path, data: dict[str, Any], original: str | None, w: Writer) -> Path | None:
    """Back up (if the file exists) and atomically replace; a symlinked config is written through."""
    real = Path(os.path.realpath(path))
    backup = None
    mode = 0o600
    if original is not None:
        mode = real.stat().st_mode & 0o7777
        backup = backup_path(real, backups_dir(soul))
        w.copy(real, backup)
    w.write(real, _render(data, original), mode=mode)
    return backup


def _manifest(soul: Soul) -> dict[str, Any]:
    return read_state(soul, MANIFEST)


def install(soul: Soul, client: str, w: Writer) -> dict[str, Any]:
    path = config_path(client)
    data, original = _load(path)
    entry = server_entry(soul, client)
    report: dict[str, Any] = {"client": client, "path": str(path), "entry": entry, "changed": False, "backup": None}
    if isinstance(data.get("mcpServers"), dict) and data["mcpServers"].get(SERVER_NAME) == entry:
        return report
    manifest = _manifest(soul)
    real = Path(os.path.realpath(path))
    created_dirs = missing_parents(real)
    if client not in manifest:
        # Remember what we created, so uninstall can put the file back exactly as it was.
        manifest[client] = {
            "created_file": original is None,
            "created_key": "mcpServers" not in data,
            "created_dirs": [str(d) for d in created_dirs],
        }
    for directory in created_dirs:
        w.mkdir(directory)
    data.setdefault("mcpServers", {})[SERVER_NAME] = entry
    backup = _write(soul, path, data, original, w)
    w.write(soul.state_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    report.update(changed=True, backup=str(backup) if backup else None)
    return report


def uninstall(soul: Soul, client: str, w: Writer) -> dict[str, Any]:
    path = config_path(client)
    data, original = _load(path)
    report: dict[str, Any] = {"client": client, "path": str(path), "changed": False, "backup": None}
    servers = data.get("mcpServers")
    if not isinstance(servers, dict) or SERVER_NAME not in servers:
        return report
    manifest = _manifest(soul)
    created = manifest.pop(client, {})
    del servers[SERVER_NAME]
    if not servers and created.get("created_key"):
        del data["mcpServers"]
    if not data and created.get("created_file"):
        real = Path(os.path.realpath(path))
        w.remove(real)
        gone = {real}
        for directory in reversed([Path(d) for d in created.get("created_dirs", [])]):
            if directory.is_dir() and set(directory.iterdir()) <= gone:
                w.rmdir(directory)
                gone.add(directory)
        report.update(changed=True, removed=True)
    else:
        backup_made = _write(soul, path, data, original, w)
        report.update(changed=True, backup=str(backup_made) if backup_made else None)
    w.write(soul.state_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return report


def check(soul: Soul, fix: bool, w: Writer) -> tuple[bool, str, str | None]:
    """For `soul doctor`: every client that has our entry must run an existing soul executable."""
    found: list[str] = []
    broken: list[str] = []
    for client in CLIENTS:
        try:
            data, _ = _load(config_path(client))
        except UsageError as exc:
            broken.append(f"{client}: {exc.message}")
            continue
        entry = (data.get("mcpServers") or {}).get(SERVER_NAME)
        if not isinstance(entry, dict):
            continue
        found.append(client)
        command = Path(str(entry.get("command", "")))
        if not command.is_file() or not os.access(command, os.X_OK):
            if fix:
                install(soul, client, w)
                continue
            broken.append(f"{client}: {command} does not exist or is not executable")
    if broken:
        return False, "; ".join(broken), "run `soul install mcp --client <client>` again (or `soul doctor --fix`)"
    if not found:
        return True, "no MCP client registered (optional: `soul install mcp --client claude-code`)", None
    return True, f"registered with {', '.join(found)}", None
