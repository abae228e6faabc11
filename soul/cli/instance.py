"""Commands: instance register|list|unregister|heartbeat (issue 6)."""

from __future__ import annotations

import sys

import typer

from soul.cli.app import app, emit_json, err, open_soul

instance_app = typer.Typer(
    help="Opt this machine in to (or out of) the list of instances other machines can see.",
    no_args_is_help=True,
)
app.add_typer(instance_app, name="instance")


@instance_app.command()
def register(
    yes: bool = typer.Option(False, "--yes", "-y", help="Consent without asking."),
    as_json: bool = typer.Option(False, "--json", help="Print the instance record as JSON."),
) -> None:
    """Publish this instance (name, hostname, platform, last seen) to every clone of the soul."""
    soul = open_soul()
    if not yes and sys.stdin.isatty():
        err(
            f"Registering writes instances/{soul.instance}.toml with this machine's hostname and platform,\n"
            "and updates its last-seen time at most every 15 minutes. Every clone of the soul will see it."
        )
        yes = typer.confirm("Register this instance?", default=False, err=True)
        if not yes:
            err("not registered")
            raise typer.Exit(1)
    record = soul.register_instance(yes=yes)
    if as_json:
        emit_json(record)
    else:
        err(f"registered {record['name']} ({record['hostname']}, {record['platform']})")


@instance_app.command()
def unregister(as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Remove this instance from the list and stop its heartbeats."""
    result = open_soul().unregister_instance()
    if as_json:
        emit_json(result)
    else:
        err(f"unregistered {result['name']}")


@instance_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print the instances as JSON.")) -> None:
    """Registered instances: alive, stale or offline, with when each was last seen."""
    rows = open_soul().list_instances()
    if as_json:
        emit_json(rows)
        return
    if not rows:
        err("no registered instances (opt in with `soul instance register`)")
        return
    for row in rows:
        mark = "*" if row.get("this") else " "
        print(
            f"{mark} {row['name']:<24} {row['state']:<8} last seen {row.get('last_seen', '-')}  "
            f"{row.get('hostname', '')} {row.get('platform', '')}"
        )


@instance_app.command()
def heartbeat(as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Record that this instance is alive (only if registered; commits at most every 15 minutes)."""
    result = open_soul().heartbeat()
    if as_json:
        emit_json(result)
    elif not result["registered"]:
        err("not registered: nothing recorded")
    else:
        err(f"last seen {result['last_seen']}" + ("" if result["updated"] else " (unchanged: too recent)"))
