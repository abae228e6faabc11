"""Commands: join, sync (issue 4). Thin: parse, call one `Soul` method, render."""

from __future__ import annotations

from typing import Any

import typer

from soul.cli.app import app, emit_json, err, home_arg, instance_arg, open_soul


@app.command()
def join(
    url: str = typer.Argument(..., help="The soul's git remote: an ssh or https URL, or a path."),
    instance: str | None = typer.Option(None, "--instance", help="This instance's name (default: the hostname)."),
) -> None:
    """Clone an existing soul onto this machine and set it up (like `soul init`)."""
    from soul.core import Soul

    soul = Soul.join(url, home_arg(), instance or instance_arg())
    logs = sorted((soul.home / "memories" / soul.instance).glob("*.jsonl"))
    if logs:
        err(f"note: instance {soul.instance} already has memories in this soul; if another machine still uses")
        err("      that name, pick a different one (soul join ... --instance NAME) to keep their logs apart")
    err(f"joined: soul ready at {soul.home} (instance {soul.instance})")


@app.command("sync")
def sync_(
    as_json: bool = typer.Option(False, "--json", help="Print what happened as JSON (sent, received, conflicts)."),
    timeout: float = typer.Option(60.0, "--timeout", min=1.0, help="Give up on the network after this many seconds."),
) -> None:
    """Commit local changes, pull, merge, push. Exit 0 synced, 3 offline (work kept), 1 needs attention."""
    from soul.errors import OfflineError, SyncAttention

    result = open_soul().sync(timeout=timeout)
    if as_json:
        emit_json(result.to_dict())
    else:
        _render(result)
    if result.status == "offline":
        raise OfflineError(result.message, hint="local work is committed and kept; sync again when the remote answers")
    if result.status == "attention":
        raise SyncAttention(result.message)


def _render(result: Any) -> None:
    for note in result.recovered:
        err(f"recovered: {note}")
    for c in result.conflicts:
        err(f"conflict: {c['key']} in {c['file']}: kept {c['kept']!r}, dropped {c['dropped']!r} ({c['policy']})")
    if result.conflicts:
        err("  the dropped values are listed by `soul conflicts`")
    if result.status in ("synced", "local"):
        err(result.message)
