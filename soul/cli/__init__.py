"""The `soul` command: a thin adapter over `soul.core.Soul`.

`main` is the single error handler: a `SoulError` prints `soul: <message>` and its hint and exits
with its code; anything unexpected prints one line, saves the traceback under `.soul/logs/`, and
exits 1.
"""

from __future__ import annotations

import sys

from soul.errors import SoulError


def _load_commands() -> None:
    # Importing a module registers its commands on the app.
    from soul.cli import (  # noqa: F401
        daemon,
        hygiene,
        index,
        install,
        instance,
        memory,
        people,
        purge,
        serve,
        session,
        settings,
        store,
        sync,
    )


def main(argv: list[str] | None = None) -> None:
    from soul.cli import fast

    args = sys.argv[1:] if argv is None else argv
    try:
        if not fast.run(args):
            _run_full(args)
    except SoulError as exc:
        sys.stderr.write(f"soul: {exc.message}\n")
        if exc.hint:
            sys.stderr.write(f"  hint: {exc.hint}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("soul: interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:
        path = _save_traceback(args)
        sys.stderr.write(f"soul: unexpected error: {type(exc).__name__}: {exc}\n")
        if path:
            sys.stderr.write(f"  traceback saved to {path}\n")
        sys.exit(1)


def _run_full(args: list[str]) -> None:
    """The whole typer CLI; click's own exceptions become exit codes here."""
    from soul.cli.app import app, click_exceptions

    click = click_exceptions()
    _load_commands()
    try:
        code = app(args=args, prog_name="soul", standalone_mode=False)
    except click.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.stderr.write("soul: aborted\n")
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    # With standalone_mode off, click returns the code of a typer.Exit instead of exiting.
    if isinstance(code, int) and code:
        sys.exit(code)


def _save_traceback(args: list[str]) -> str | None:
    import traceback
    from pathlib import Path

    from soul.config import default_home
    from soul.ids import now_iso

    home = default_home()
    for i, arg in enumerate(args):
        if arg == "--home" and i + 1 < len(args):
            home = Path(args[i + 1]).expanduser()
        elif arg.startswith("--home="):
            home = Path(arg.split("=", 1)[1]).expanduser()
    logs = home / ".soul" / "logs"
    if not (home / "soul.toml").exists():
        return None
    try:
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / f"error-{now_iso().replace(':', '')}.log"
        path.write_text(traceback.format_exc(), encoding="utf-8")
        return str(path)
    except OSError:
        return None
