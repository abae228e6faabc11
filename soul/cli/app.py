"""The typer application, its global options, and the helpers every command module shares.

Command modules stay thin: parse, call one `Soul` method, render. Human messages go to stderr,
data to stdout, and `--json` output is the stable contract documented in docs/cli.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    name="soul",
    help="One memory for every AI assistant you run, on every machine you own.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state: dict[str, Any] = {"home": None, "instance": None}


@app.callback()
def _global(
    home: Path | None = typer.Option(
        None, "--home", help="The soul repository (default: $SOUL_HOME or ~/.soul).", envvar="SOUL_HOME"
    ),
    instance: str | None = typer.Option(
        None, "--instance", help="This instance's name (default: $SOUL_INSTANCE, stored name, hostname)."
    ),
) -> None:
    """One memory for every AI assistant you run, on every machine you own."""
    _state["home"] = home
    _state["instance"] = instance


def click_exceptions() -> Any:
    """The click exception classes typer raises (typer >= 0.16 vendors click as typer._click)."""
    import types

    try:
        from typer._click import exceptions as vendored
    except ImportError:  # typer releases that depend on the click package
        from click import exceptions as vendored  # type: ignore[no-redef]
    return types.SimpleNamespace(Exit=typer.Exit, Abort=typer.Abort, ClickException=vendored.ClickException)


def home_arg() -> Path | None:
    home = _state["home"]
    return Path(home) if home is not None else None


def open_soul() -> Any:
    from soul.core import Soul

    return Soul.open(home_arg(), _state["instance"])


def instance_arg() -> str | None:
    value = _state["instance"]
    return str(value) if value else None


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def err(message: str) -> None:
    """A human message on stderr (kept plain: rich costs start-up time on the write path)."""
    sys.stderr.write(message + "\n")


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def read_text_arg(text: str) -> str:
    """TEXT or `-` for stdin; undecodable bytes are refused, not mangled."""
    from soul.cli.fast import read_arg

    return read_arg(text)
