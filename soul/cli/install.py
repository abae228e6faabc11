"""Commands: install/uninstall links|mcp|service (issue 7). Each one plans, then applies the plan
to the filesystem, or with --dry-run to a recorder that only lists what would change."""

from __future__ import annotations

from typing import Any

import typer

from soul.cli.app import app, emit_json, err, open_soul

install_app = typer.Typer(
    help="Install soul into this machine: dotfile links, MCP client entries, background services.",
    no_args_is_help=True,
)
uninstall_app = typer.Typer(
    help="Undo `soul install`: remove what it added and restore what it replaced.",
    no_args_is_help=True,
)
app.add_typer(install_app, name="install")
app.add_typer(uninstall_app, name="uninstall")

DRY_RUN = typer.Option(False, "--dry-run", help="Show what would change; change nothing.")
AS_JSON = typer.Option(False, "--json", help="Print the result as JSON.")
CLIENT = typer.Option(..., "--client", help="The MCP client: claude-code | claude-desktop | cursor.")


def _ops(ops: list[str], dry_run: bool) -> None:
    for op in ops:
        err(("would " if dry_run else "") + op)


@install_app.command("links")
def install_links(dry_run: bool = DRY_RUN, as_json: bool = AS_JSON) -> None:
    """Symlink files from the soul's dotfiles/ into place, per soul.toml [links] (backs up what is there)."""
    from soul.install import writer

    soul = open_soul()
    w = writer(dry_run)
    report = soul.install_links(w)
    if as_json:
        emit_json({"dry_run": dry_run, "links": report, "operations": w.done})
        return
    _ops(w.done, dry_run)
    for item in report:
        if item["note"] and item["action"] != "ok":
            err(f"{item['target']}: {item['note']}")
    changed = sum(1 for r in report if r["action"] != "ok")
    err(f"{len(report)} link(s), {changed} {'to change' if dry_run else 'changed'}")


@uninstall_app.command("links")
def uninstall_links(dry_run: bool = DRY_RUN, as_json: bool = AS_JSON) -> None:
    """Remove the links soul installed and move the backed-up originals back."""
    from soul.install import writer

    w = writer(dry_run)
    report = open_soul().uninstall_links(w)
    if as_json:
        emit_json({"dry_run": dry_run, "links": report, "operations": w.done})
        return
    _ops(w.done, dry_run)
    for item in report:
        if item["note"]:
            err(f"{item['target']}: {item['note']}")
    if not report:
        err("no links installed by soul")


@install_app.command("mcp")
def install_mcp(client: str = CLIENT, dry_run: bool = DRY_RUN, as_json: bool = AS_JSON) -> None:
    """Register soul's MCP server (stdio, explicit --home/--instance) in an MCP client's config."""
    from soul.install import writer

    w = writer(dry_run)
    report = open_soul().install_mcp(client, w)
    _report(report, w.done, dry_run, as_json, "already registered in")


@uninstall_app.command("mcp")
def uninstall_mcp(client: str = CLIENT, dry_run: bool = DRY_RUN, as_json: bool = AS_JSON) -> None:
    """Remove soul's entry (only that) from an MCP client's config."""
    from soul.install import writer

    w = writer(dry_run)
    report = open_soul().uninstall_mcp(client, w)
    _report(report, w.done, dry_run, as_json, "no soul entry in")


def _report(report: dict[str, Any], ops: list[str], dry_run: bool, as_json: bool, unchanged: str) -> None:
    if as_json:
        emit_json({"dry_run": dry_run, **report, "operations": ops})
        return
    _ops(ops, dry_run)
    if not report["changed"]:
        err(f"{unchanged} {report['path']}")
    elif report.get("backup"):
        err(f"backup: {report['backup']}")
    if report["changed"] and not dry_run:
        err(f"restart {report['client']} to pick up the change")


@install_app.command("service")
def install_service(
    systemd: bool = typer.Option(False, "--systemd", help="A systemd user unit (default on Linux)."),
    launchd: bool = typer.Option(False, "--launchd", help="A launchd agent (default on macOS)."),
    cron: bool = typer.Option(False, "--cron", help="A crontab line running `soul sync`."),
    timer: bool = typer.Option(False, "--timer", help="Run `soul sync` periodically instead of the daemon."),
    start: bool = typer.Option(False, "--start", help="Also enable and start it (systemctl/launchctl)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the generated unit(s); change nothing."),
    as_json: bool = AS_JSON,
) -> None:
    """Run soul in the background: a daemon with Restart=always, or a periodic `soul sync`."""
    from soul.errors import UsageError
    from soul.install import services, writer

    chosen = [k for k, flag in (("systemd", systemd), ("launchd", launchd), ("cron", cron)) if flag]
    if len(chosen) > 1:
        raise UsageError("choose one of --systemd, --launchd, --cron")
    w = writer(dry_run)
    report = open_soul().install_service(chosen[0] if chosen else services.default_kind(), timer, start, w)
    if as_json:
        emit_json({"dry_run": dry_run, **report, "operations": w.done})
        return
    if dry_run:
        for path, text in report["files"].items():
            typer.echo(f"# {path}\n{text}")
        if report["cron"]:
            typer.echo(report["cron"])
    _ops(w.done, dry_run)
    if not start and report["commands"] and not dry_run:
        err("to start it now: " + " && ".join(" ".join(c) for c in report["commands"]))


@uninstall_app.command("service")
def uninstall_service(dry_run: bool = DRY_RUN, as_json: bool = AS_JSON) -> None:
    """Stop (if soul started it) and remove the units, agents or crontab line soul installed."""
    from soul.install import writer

    w = writer(dry_run)
    report = open_soul().uninstall_service(w)
    if as_json:
        emit_json({"dry_run": dry_run, **report, "operations": w.done})
        return
    _ops(w.done, dry_run)
    if not w.done:
        err("no service installed by soul")
