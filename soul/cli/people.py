"""Commands: person note|show|list, observe, prefs [accept], conflicts [resolve] (issue 6)."""

from __future__ import annotations

from typing import Any

import typer

from soul.cli.app import app, emit_json, err, open_soul

person_app = typer.Typer(
    help="People you work with: notes, projects, how they like to communicate.", no_args_is_help=True
)
prefs_app = typer.Typer(help="Explicit and inferred preferences.", invoke_without_command=True)
conflicts_app = typer.Typer(help="Settings conflicts found while syncing.", invoke_without_command=True)
app.add_typer(person_app, name="person")
app.add_typer(prefs_app, name="prefs")
app.add_typer(conflicts_app, name="conflicts")


@person_app.command("note")
def person_note(
    name: str = typer.Argument(..., help="The person's name (or one of their aliases)."),
    text: str = typer.Argument(..., help="What to note about them."),
    project: str | None = typer.Option(None, "--project", "-p", help="A project they work on."),
    style: str | None = typer.Option(None, "--style", help="How they like to communicate."),
    alias: list[str] = typer.Option([], "--alias", "-a", help="Another name for them (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the person as JSON."),
) -> None:
    """Note something about a person (also searchable with `soul recall`)."""
    person = open_soul().note_person(name, text, project=project, style=style, aliases=alias)
    if as_json:
        emit_json(person)
    else:
        err(f"noted about {person['name']} ({person['note_count']} note(s))")


@person_app.command("show")
def person_show(
    name: str = typer.Argument(..., help="A name or alias (case does not matter)."),
    as_json: bool = typer.Option(False, "--json", help="Print the person as JSON."),
) -> None:
    """Who someone is: aliases, projects, style and recent notes."""
    person = open_soul().who_is(name)
    if as_json:
        emit_json(person)
        return
    print(person["name"])
    if person["aliases"]:
        print(f"  also: {', '.join(person['aliases'])}")
    if person["projects"]:
        print(f"  works on: {', '.join(person['projects'])}")
    if person.get("style"):
        print(f"  style: {person['style']}")
    for note in person["notes"]:
        print(f"  - {note['text']}  ({note['by']} {note['at'][:10]})")


@person_app.command("list")
def person_list(as_json: bool = typer.Option(False, "--json", help="Print the people as JSON.")) -> None:
    """Everyone noted, most recent first."""
    rows = open_soul().list_people()
    if as_json:
        emit_json(rows)
        return
    if not rows:
        err("nobody noted yet")
    for p in rows:
        print(f"{p['name']:<28} {p['note_count']:>3} note(s)  {', '.join(p['projects'])}")


@app.command()
def observe(
    category: str = typer.Argument(..., help="A settings-style key, e.g. python.test_runner."),
    chose: str = typer.Argument(..., help="The option chosen."),
    over: list[str] = typer.Option([], "--over", help="An alternative not chosen (repeatable)."),
    context: str | None = typer.Option(None, "--context", help="Where the choice was made."),
    as_json: bool = typer.Option(False, "--json", help="Print the observation and the category's inference."),
) -> None:
    """Record a choice as evidence for preference inference."""
    result = open_soul().observe_choice(category, chose, over=over, context=context)
    if as_json:
        emit_json(result)
        return
    inf = result["inference"] or {}
    state = f"inferred {inf['inferred']!r}" if inf.get("inferred") else "no preference inferred yet"
    err(f"observed {category} = {chose} ({inf.get('observations', 0)} observation(s); {state})")


@prefs_app.callback()
def prefs(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the preferences as JSON."),
) -> None:
    """Show explicit settings and inferred preferences with confidence and evidence."""
    if ctx.invoked_subcommand is not None:
        return
    rows = open_soul().preferences()
    if as_json:
        emit_json(rows)
        return
    if not rows:
        err("no settings and no observed choices")
    for row in rows:
        print(_pref_line(row))


def _pref_line(row: dict[str, Any]) -> str:
    line = f"{row['category']} = {row['value']!r}  ({row['source']})"
    if row.get("observations"):
        evidence = ", ".join(f"{k}: {v}" for k, v in row["evidence"].items())
        line += f"  evidence {evidence}; confidence {row['confidence']:.2f}"
        if row.get("inferred") and row["source"] in ("machine", "global") and row["inferred"] != row["value"]:
            line += f"; inferred {row['inferred']!r} is overridden by the setting"
        elif row["source"] == "inferred":
            line += f"; accept with `soul prefs accept {row['category']}`"
    return line


@prefs_app.command("accept")
def prefs_accept(
    category: str = typer.Argument(..., help="The category whose inferred preference to accept."),
    as_json: bool = typer.Option(False, "--json", help="Print the accepted preference as JSON."),
) -> None:
    """Turn an inferred preference into a setting (below explicit settings)."""
    result = open_soul().accept_preference(category)
    if as_json:
        emit_json(result)
    else:
        err(f"accepted {category} = {result['value']!r} (now from: {result['effective_source']})")


@conflicts_app.callback()
def conflicts(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the open conflicts as JSON."),
) -> None:
    """Settings conflicts: both values, the machines and the times."""
    if ctx.invoked_subcommand is not None:
        return
    rows = open_soul().list_conflicts()
    if as_json:
        emit_json(rows)
        return
    if not rows:
        err("no open conflicts")
    for c in rows:
        print(
            f"{c['key']}: kept {c['kept']!r}, dropped {c['dropped']!r} from {c.get('from')} "
            f"({c.get('policy')}; {c['by']} at {c['at'][:19]})  resolve: soul conflicts resolve {c['key']} VALUE"
        )


@conflicts_app.command("resolve")
def conflicts_resolve(
    key: str = typer.Argument(..., help="The settings key in conflict."),
    value: str = typer.Argument(..., help="The value to keep: a TOML literal (42, true, [1, 2]) or plain text."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Settle a conflict: set KEY to VALUE and mark its conflicts resolved."""
    from soul.settings import parse_value

    result = open_soul().resolve_conflict(key, parse_value(value))
    if as_json:
        emit_json(result)
    else:
        err(f"resolved {key} = {result['value']!r} in {result['file']}")
