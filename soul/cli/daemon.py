"""Commands: daemon run|start|stop|status (issue 4). Thin: the daemon lives in soul.daemon."""

from __future__ import annotations

import typer

from soul.cli.app import app, emit_json, err, open_soul

daemon_app = typer.Typer(help="The background daemon: auto-commit, periodic sync, warm recall.", no_args_is_help=True)
app.add_typer(daemon_app, name="daemon")


@daemon_app.command("run")
def run() -> None:
    """Run the daemon in the foreground (for systemd/launchd); stops on SIGTERM."""
    from soul import daemon

    daemon.run(open_soul())


@daemon_app.command("start")
def start(as_json: bool = typer.Option(False, "--json", help="Print the daemon's status as JSON.")) -> None:
    """Start the daemon in the background; returns once it is up."""
    from soul import daemon

    info = daemon.start(open_soul())
    if as_json:
        emit_json(info)
    elif info.get("already_running"):
        err(f"daemon already running (pid {info['pid']})")
    else:
        err(f"daemon started (pid {info['pid']})")


@daemon_app.command("stop")
def stop() -> None:
    """Stop the daemon (SIGTERM; it finishes its current step first)."""
    from soul import daemon

    err("daemon stopped" if daemon.stop(open_soul()) else "daemon was not running")


@daemon_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print the status as JSON.")) -> None:
    """Is the daemon running; its last sync, last error, offline since."""
    from soul import daemon

    info = daemon.status(open_soul())
    if as_json:
        emit_json(info)
        return
    if not info["running"]:
        err("daemon not running (start it with `soul daemon start`)")
    else:
        err(f"daemon running (pid {info['pid']}, since {info['started']})")
    for key in ("last_sync", "last_result", "offline_since", "last_error"):
        if info.get(key):
            err(f"  {key.replace('_', ' ')}: {info[key]}")
