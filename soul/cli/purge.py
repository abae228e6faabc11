"""Commands: purge (issue 12). Parse, call `Soul.purge`, render the plan or the result."""

from __future__ import annotations

from typing import Any

import typer

from soul.cli.app import app, emit_json, err, open_soul


@app.command()
def purge(
    ids: list[str] = typer.Argument(None, help="Ids of memories (or events, sessions, tasks) to remove for good."),
    match: str | None = typer.Option(
        None, "--match", help="Also remove every event whose text contains TEXT (case-insensitive)."
    ),
    yes: bool = typer.Option(False, "--yes", help="Apply: rewrite history, prune, push. Without it nothing changes."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan (and result) as JSON."),
) -> None:
    """Remove memories from history on this replica, the remote, and (at their next sync) every other replica.

    Without --yes, shows what would be removed and from where. Copies outside soul's reach (other
    clones, backups, a forge's caches) are not touched: see docs/purge.md.
    """
    result = open_soul().purge(list(ids or []), match=match, yes=yes)
    if as_json:
        emit_json(result)
        return
    _render(result, yes)


def _render(result: dict[str, Any], yes: bool) -> None:
    if result.get("finished"):
        err(f"finished the interrupted purge {result['finished']['purge']}")
    if "lines" not in result:
        if result.get("pending"):
            p = result["pending"]
            err(f"purge {p['purge']} is half done (done: {', '.join(p['done']) or 'nothing'}); run `soul purge --yes`")
        return
    if not result["lines"]:
        err("nothing to purge: no event line matches")
        return
    err(f"{'purged' if result['applied'] else 'would purge'} {len(result['lines'])} event line(s):")
    for line in result["lines"]:
        err(f"  {line['id']}  {line['op']:<14} {line['by']} {line['at'][:16]}  {line['preview']!r}")
    err("from log file(s):")
    for name, count in sorted(result["files"].items()):
        err(f"  {name} ({count} line(s))")
    commits = result["commits"]
    err(f"history: {commits['rewritten']} of {commits['total']} commit(s) rewritten ({commits['changed']} changed)")
    if result["remote"]:
        err(f"remote: {result['remote']} (force-pushed with lease; old objects: {result['remote_cleanup']})")
    else:
        err("remote: none")
    err(".soul/: index, duplicate index and cached vectors of these texts deleted; logs scrubbed")
    if result["applied"]:
        err(f"done: purge {result['purge_id']} recorded in purges/; other replicas follow at their next `soul sync`")
    elif not yes:
        err("nothing changed; run again with --yes to purge")
