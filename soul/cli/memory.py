"""Commands on memories: remember, recall, forget, list, show."""

from __future__ import annotations

from typing import Any

import typer

from soul.cli.app import app, emit_json, err, open_soul, read_text_arg


@app.command()
def remember(
    text: str = typer.Argument(..., help="What to remember, or - to read it from stdin."),
    kind: str = typer.Option("note", "--kind", help="fact|preference|decision|event|person|note"),
    tag: list[str] = typer.Option([], "--tag", "-t", help="A tag (repeatable)."),
    project: str | None = typer.Option(None, "--project", "-p", help="The project this belongs to."),
    redact: bool = typer.Option(False, "--redact", help="Store detected secrets as [REDACTED:<rule>]."),
    allow_duplicate: bool = typer.Option(False, "--allow-duplicate", help="Store even if the same fact exists."),
    as_json: bool = typer.Option(False, "--json", help='Print {"id": ...} on stdout.'),
) -> None:
    """Remember a fact, preference, decision or note (appended to this instance's log)."""
    soul = open_soul()
    result = soul.remember(
        read_text_arg(text), kind=kind, tags=tag, project=project, redact=redact, allow_duplicate=allow_duplicate
    )
    if as_json:
        emit_json(result.to_dict())
    elif result.duplicate_of:
        err(f"already remembered as {result.id}")
    else:
        err(f"remembered {result.id}")


@app.command()
def recall(
    query: str = typer.Argument(..., help="What to look for (- reads stdin)."),
    k: int = typer.Option(10, "-k", "--limit", help="How many results.", min=1, max=1000),
    kind: str | None = typer.Option(None, "--kind", help="Only this kind."),
    tag: str | None = typer.Option(None, "--tag", "-t", help="Only memories with this tag."),
    project: str | None = typer.Option(None, "--project", "-p", help="Only this project."),
    since: str | None = typer.Option(None, "--since", help="Only memories since this date (ISO-8601)."),
    as_json: bool = typer.Option(False, "--json", help="Print the hits as JSON."),
) -> None:
    """Find memories by meaning and keywords."""
    soul = open_soul()
    hits = soul.recall(read_text_arg(query), k=k, kind=kind, tag=tag, project=project, since=since)
    if as_json:
        emit_json(hits)
        return
    if not hits:
        err("no memories match")
        return
    _table(hits, score=True)


@app.command()
def forget(memory_id: str = typer.Argument(..., help="The id of the memory to forget.")) -> None:
    """Hide a memory (a tombstone; the text stays in git history: see `soul purge`)."""
    soul = open_soul()
    err(f"forgot {soul.forget(memory_id)}")


@app.command("list")
def list_(
    kind: str | None = typer.Option(None, "--kind", help="Only this kind."),
    tag: str | None = typer.Option(None, "--tag", "-t", help="Only memories with this tag."),
    project: str | None = typer.Option(None, "--project", "-p", help="Only this project."),
    since: str | None = typer.Option(None, "--since", help="Only memories since this date (ISO-8601)."),
    limit: int = typer.Option(50, "--limit", "-n", help="At most this many (0 = all)."),
    as_json: bool = typer.Option(False, "--json", help="Print the memories as JSON."),
) -> None:
    """List memories, newest first."""
    soul = open_soul()
    mems = soul.list_memories(kind=kind, tag=tag, project=project, since=since, limit=limit)
    if as_json:
        emit_json(mems)
    elif not mems:
        err("no memories")
    else:
        _table(mems, score=False)


@app.command()
def show(
    memory_id: str = typer.Argument(..., help="The memory id."),
    as_json: bool = typer.Option(False, "--json", help="Print the memory as JSON."),
) -> None:
    """Show one memory."""
    mem = open_soul().get_memory(memory_id)
    if as_json:
        emit_json(mem)
        return
    _table([mem], score=False)


def _table(rows: list[dict[str, Any]], score: bool) -> None:
    from rich import box
    from rich.table import Table

    from soul.cli.app import console

    # A light box: ids are 26 characters, and the text column must still fit an 80-column terminal.
    table = Table(show_header=True, header_style="bold", expand=False, box=box.SIMPLE_HEAD)
    table.add_column("id", style="dim", no_wrap=True)
    if score:
        table.add_column("score", justify="right")
    table.add_column("kind")
    table.add_column("text", overflow="fold", ratio=1, min_width=16)
    table.add_column("tags")
    table.add_column("by / at", style="dim", min_width=10)
    for row in rows:
        cells = [row["id"]]
        if score:
            cells.append(f"{row.get('score', 0):.2f}")
        also = f" (+{len(row['also'])} similar)" if row.get("also") else ""
        cells += [
            row["kind"],
            row["text"] + also,
            ", ".join(row["tags"]) + (f" [{row['project']}]" if row.get("project") else ""),
            f"{row['by']}\n{row['at'][:10]}",
        ]
        table.add_row(*cells)
    console().print(table)
