"""Generate docs/cli.md from the real `--help` of every soul command and sub-command.

    python scripts/gen_cli_docs.py           # (re)write docs/cli.md
    python scripts/gen_cli_docs.py --check   # exit 1 if docs/cli.md is out of date

The command tree is walked from the typer app itself, so a new command appears here the moment it
is registered; tests/test_docs.py fails when a command or option has no help text or the file is
stale. Only the JSON section below is written by hand: keep it in step with the `--json` outputs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "cli.md"
WIDTH = 100

HEADER = """\
# CLI reference

Generated from the real `--help` of every command by `python scripts/gen_cli_docs.py`; do not edit
by hand (`python scripts/gen_cli_docs.py --check` fails when this file is out of date). The ideas
behind the commands are in [concepts.md](concepts.md).

Global options go before the command: `soul --home PATH --instance NAME <command>`. Data goes to
stdout (with `--json`), human messages to stderr. Exit codes: 0 ok, 1 error, 2 usage,
3 offline (local work kept), 4 refused by the secret guard.
"""

JSON_SHAPES = """\
## JSON output

Every read command takes `--json` and prints one JSON document on stdout. These shapes are a
stable contract (scripts and tests depend on them); fields may be added, never renamed or removed.

- `soul remember --json`: `{"id": "<ulid>"}`, plus `"duplicate_of"` when the same fact already existed.
- `soul recall --json`: `[{"id", "text", "score", "kind", "tags", "by", "at", "project"?}]`, best first.
- `soul list --json`, `soul show --json`: memory objects `{"id", "text", "kind", "tags", "by", "at",
  "project"?}`.
- `soul get KEY --json`: `{"key", "value", "source"}`, source = machine | global | preference | default;
  `soul get --json` without a key: `{"dotted.key": value, ...}`, every effective setting.
- `soul status --json`: `{"home", "instance", "memories", "events", "quarantined": [...], "git": {"head",
  "remote", "dirty", "merge_in_progress"}}` plus one section per subsystem (index, sync, daemon, ...).
- `soul doctor --json`: `[{"name", "ok", "message", "fix"}]`; the exit code is 1 when a check fails.
- `soul sync --json`: `{"status", "message", "sent", "received", "committed", "ahead", "behind", "head",
  "conflicts", "errors", "recovered", "duration_ms", "exit_code"}`; status = synced | local | offline |
  attention.
- `soul install links --json`: `{"dry_run", "links": [{"source", "target", "action", "backup", "note"}],
  "operations"}`; action = ok | link | copy | replace (backed up, then linked) | refresh (our copy updated).
- `soul uninstall links --json`: `{"dry_run", "links": [{"target", "remove", "restore", "rmdirs", "note"}],
  "operations"}`.
- `soul install mcp --json`, `soul uninstall mcp --json`: `{"dry_run", "client", "path", "entry"?,
  "changed", "backup", "operations"}`.
- `soul install service --json`: `{"dry_run", "kind", "files": {path: text}, "backups", "commands", "cron",
  "operations"}`; `soul uninstall service --json`: `{"dry_run", "removed", "stopped", "cron", "operations"}`.

`operations` lists each filesystem change as one line (`mkdir P`, `link T -> S`, `move A -> B`,
`write P`, `remove P`, `run CMD`); with `--dry-run` nothing in it has happened.
"""


def load_app() -> Any:
    sys.path.insert(0, str(ROOT))
    from soul.cli import _load_commands
    from soul.cli.app import app

    _load_commands()
    return app


def root_command() -> Any:
    import typer

    return typer.main.get_command(load_app())


def walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every visible command, depth first, sub-commands in registration order."""
    yield path, cmd
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        if not getattr(sub, "hidden", False):
            yield from walk(sub, (*path, name))


def help_text(path: tuple[str, ...]) -> str:
    from typer.testing import CliRunner

    # A fixed width keeps the output identical on every machine and terminal.
    result = CliRunner().invoke(
        load_app(), [*path, "--help"], prog_name="soul", terminal_width=WIDTH, max_content_width=WIDTH
    )
    if result.exit_code != 0:
        raise SystemExit(f"soul {' '.join(path)} --help failed: {result.output}")
    return "\n".join(line.rstrip() for line in result.output.strip().splitlines())


def render() -> str:
    root = root_command()
    commands = list(walk(root))
    toc = "\n".join(f"{'  ' * (len(p) - 1)}- [soul {' '.join(p)}](#{'-'.join(('soul', *p))})" for p, _ in commands if p)
    parts = [HEADER, "## Commands\n\n" + toc + "\n"]
    for path, _ in commands:
        title = " ".join(("soul", *path))
        parts.append(f"{'#' * min(2 + max(len(path) - 1, 0), 4)} {title}\n\n```text\n{help_text(path)}\n```\n")
    parts.append(JSON_SHAPES)
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            sys.stderr.write(f"{DOC.relative_to(ROOT)} is out of date: run `python scripts/gen_cli_docs.py`\n")
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    sys.stderr.write(f"wrote {DOC.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
