"""Commands on settings: get, set, unset."""

from __future__ import annotations

import typer

from soul.cli.app import app, emit_json, err, open_soul


@app.command("get")
def get_(
    key: str = typer.Argument("", help="Dotted key, e.g. editor.tab_width (empty: all settings)."),
    resolve: bool = typer.Option(False, "--resolve", help="Replace ${env:NAME} with the environment's value."),
    as_json: bool = typer.Option(False, "--json", help="Print {key, value, source} as JSON."),
) -> None:
    """Read a setting (machine override > global > accepted preference > default)."""
    soul = open_soul()
    if not key:
        values = soul.all_settings()
        if as_json:
            emit_json(values)
        else:
            for name, value in sorted(values.items()):
                print(f"{name} = {_render(value)}")
        return
    value, source = soul.get_setting(key, resolve=resolve)
    if as_json:
        emit_json({"key": key, "value": value, "source": source})
    else:
        print(value if isinstance(value, str) else _render(value))


@app.command("set")
def set_(
    key: str = typer.Argument(..., help="Dotted key."),
    value: str = typer.Argument(..., help="A TOML literal (42, true, [1, 2]) or plain text."),
    machine: bool = typer.Option(False, "--machine", help="Only for this machine (settings/machines/)."),
) -> None:
    """Set a setting (comments and order in the TOML file are kept)."""
    from soul.settings import parse_value

    soul = open_soul()
    path = soul.set_setting(key, parse_value(value), machine=machine)
    err(f"set {key} in {path.relative_to(soul.home)}")


@app.command()
def unset(
    key: str = typer.Argument(..., help="Dotted key."),
    machine: bool = typer.Option(False, "--machine", help="Remove this machine's override."),
) -> None:
    """Remove a setting."""
    open_soul().unset_setting(key, machine=machine)
    err(f"unset {key}")


def _render(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=str)
