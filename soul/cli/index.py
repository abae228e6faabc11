"""Commands: index status|rebuild|serve (issue 3)."""

from __future__ import annotations

from typing import Any

import typer

from soul.cli.app import app, emit_json, err, open_soul

index_app = typer.Typer(help="The semantic search index (derived, in .soul/index).", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print the status as JSON.")) -> None:
    """Rows, fragments, embedder and whether the index is behind the logs (cheap: loads no model)."""
    info = open_soul().index_status()
    if as_json:
        emit_json(info)
        return
    if not info["built"]:
        err(f"index: not built yet (model {info['model']}); it is built on the first recall")
        return
    err(f"index: {info['rows']} rows, {info['fragments']} fragments, embedder {info['embedder']}")
    if info.get("fallback"):
        err(f"  WARNING: lexical fallback in use: {info.get('fallback_reason')}")
    if info["stale"]:
        err("  behind the logs: caught up on the next recall (or `soul index rebuild`)")
    if not info.get("snapshot"):
        err("  no current snapshot: the next recall saves one (cold recalls then skip LanceDB)")


@index_app.command("rebuild")
def rebuild(as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Re-embed (from the cache where possible) and rewrite the whole index."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from soul.cli.app import console

    soul = open_soul()
    index = soul.index()
    with Progress(
        TextColumn("embedding"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("embed", total=None)

        def step(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result: dict[str, Any] = index.rebuild(step)
    info = soul.index_status()
    if as_json:
        emit_json({**result, **info})
    else:
        err(f"index rebuilt: {info['rows']} rows, embedder {info['embedder']}")


@index_app.command("serve")
def serve() -> None:
    """Keep the model and index loaded and answer `soul recall` over .soul/warm.sock (until Ctrl-C)."""
    from soul import warm

    warm.serve_forever(open_soul())
