"""Commands: import, export, dedupe, unmerge (issue 11). Thin: parse, call one `Soul` method, render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from soul.cli.app import app, emit_json, err, open_soul


@app.command("import")
def import_(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="mcp-memory | markdown | jsonl"),
    path: Path = typer.Argument(..., help="The file (mcp-memory, jsonl) or note / folder of notes (markdown)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Read and check everything, write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the import report as JSON."),
) -> None:
    """Import memories from another memory tool (idempotent: a second import adds nothing)."""
    soul = open_soul()
    with _progress(f"importing {path.name}") as progress:
        report = soul.import_memories(fmt, path, dry_run=dry_run, progress=progress)
    data = report.to_dict()
    if as_json:
        emit_json(data)
    verb = "would import" if dry_run else "imported"
    err(f"{verb} {report.imported} of {report.read} item(s); {report.duplicates} already present")
    for problem in report.refused:
        err(f"  refused {problem.where}:{problem.line}: {problem.rule} ({problem.error})")
    for problem in report.malformed:
        err(f"  skipped {problem.where}:{problem.line}: {problem.error}")
    if report.problems_not_listed:
        err(f"  ... and {report.problems_not_listed} more problem(s) not listed")


@app.command()
def export(
    fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl | markdown"),
    kind: str | None = typer.Option(None, "--kind", help="Only memories of this kind."),
    since: str | None = typer.Option(None, "--since", help="Only memories since this date (ISO-8601)."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write to this file (default: stdout)."),
) -> None:
    """Export the live memories (import them anywhere with `soul import jsonl|markdown`)."""
    import sys

    soul = open_soul()
    if output is None:
        count = soul.export_memories(fmt, sys.stdout, kind=kind, since=since)
    else:
        tmp = output.with_name(f".{output.name}.tmp")
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            count = soul.export_memories(fmt, handle, kind=kind, since=since)
        tmp.replace(output)
    err(f"exported {count} memories" + (f" to {output}" if output else ""))


@app.command()
def dedupe(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the clusters, merge nothing."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Cosine similarity to merge at (default: [index] duplicate_threshold)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the clusters as JSON."),
) -> None:
    """Fold near-duplicate memories into one (reversible with `soul unmerge`; history is kept)."""
    result = open_soul().dedupe(threshold=threshold, apply=not dry_run)
    if as_json:
        emit_json(result)
    if not result["semantic"]:
        err("the index uses the lexical fallback: only exact duplicates are merged (see `soul doctor`)")
    _show_clusters(result, quiet=as_json)
    n = sum(len(c["sources"]) for c in result["clusters"])
    if dry_run:
        err(f"{len(result['clusters'])} cluster(s), {n} memory(ies) would merge at threshold {result['threshold']}")
    else:
        err(f"merged {result['merged']} memory(ies) into {len(result['clusters'])} cluster(s)")


@app.command()
def unmerge(
    memory_id: str = typer.Argument(..., help="A merged memory, or the memory others were merged into."),
) -> None:
    """Undo a `soul dedupe` merge."""
    for source in open_soul().unmerge(memory_id):
        err(f"unmerged {source}")


def _show_clusters(result: dict[str, Any], quiet: bool) -> None:
    if quiet:
        return
    for cluster in result["clusters"]:
        err(f"{cluster['target']['id']}  {cluster['target']['text'][:100]}")
        for source in cluster["sources"]:
            err(f"  <- {source['id']} ({source['score']:.3f})  {source['text'][:100]}")


class _progress:
    """A rich progress bar on stderr, fed (done, total) in bytes; silent when stderr is no terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Any:
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        from soul.cli.app import console

        self.bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console(stderr=True),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=None)
        return self.update

    def update(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()
