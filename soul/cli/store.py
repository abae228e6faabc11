"""Commands on the soul itself: init, status, doctor."""

from __future__ import annotations

from typing import Any

import typer

from soul.cli.app import app, console, emit_json, err, home_arg, instance_arg, open_soul


@app.command()
def init(
    remote: str | None = typer.Option(None, "--remote", help="A git remote URL to sync with."),
    instance: str | None = typer.Option(None, "--instance", help="This instance's name."),
) -> None:
    """Create a soul (a git repository) here or at --home; safe to run again."""
    from soul.core import Soul

    soul = Soul.init(home_arg(), instance or instance_arg(), remote=remote)
    err(f"soul ready at {soul.home} (instance {soul.instance})")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print status as JSON.")) -> None:
    """Show the soul: instance, counts, git, sync, index, daemon, problems."""
    info = open_soul().status()
    if as_json:
        emit_json(info)
        return
    out = console()
    out.print(f"[bold]soul[/bold] {info['home']}  instance [bold]{info['instance']}[/bold]")
    out.print(f"memories {info['memories']}  events {info['events']}")
    git = info["git"]
    out.print(f"git head {(git['head'] or '-')[:12]}  remote {git['remote'] or '(none)'}  dirty files {git['dirty']}")
    index = info.get("index")
    if isinstance(index, dict) and index.get("fallback"):
        out.print(
            f"[bold yellow]search: LEXICAL FALLBACK (exact words only)[/bold yellow]: {index.get('fallback_reason')}"
        )
    for key, value in info.items():
        if key in ("home", "instance", "memories", "events", "git", "quarantined"):
            continue
        out.print(f"{key}: {_short(value)}", highlight=False)
    if info["quarantined"]:
        out.print(f"[yellow]{len(info['quarantined'])} bad line(s) quarantined[/yellow] (see `soul doctor`)")


@app.command()
def doctor(
    fix: bool = typer.Option(False, "--fix", help="Apply the safe fixes."),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Check git, settings, logs, index, daemon, links and services; say how to fix each problem."""
    soul = open_soul()
    checks = soul.doctor(fix=fix)
    if as_json:
        emit_json(checks)
    else:
        out = console()
        for check in checks:
            mark = "[green]ok[/green]  " if check["ok"] else "[red]FAIL[/red]"
            out.print(f"{mark} {check['name']}: {check['message']}")
            if not check["ok"] and check.get("fix"):
                out.print(f"      fix: {check['fix']}")
    if not all(c["ok"] for c in checks):
        raise typer.Exit(1)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        # Unset fields (None, empty lists) are noise in a human summary; --json has them all.
        return ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, [], {}, "")) or "-"
    return str(value)
