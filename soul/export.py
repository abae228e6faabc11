"""`soul export`: the live memories of the view, as JSONL or as one Markdown document.

Invariant: what this module writes, `soul import jsonl|markdown` reads back into the same view
(ids, text, kind, tags, project and source survive; `by` and `at` become the importing
instance's). JSONL is one memory per line, oldest first; Markdown is a note per soul with a bullet
per memory under a heading per kind, each bullet carrying its metadata in an HTML comment so it
survives a round trip and stays readable.
"""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

from soul.errors import UsageError
from soul.ids import now_iso

if TYPE_CHECKING:
    from soul.core import Soul

FORMATS = ("jsonl", "markdown")


def memories(soul: Soul, kind: str | None = None, since: str | None = None) -> list[dict[str, Any]]:
    rows = soul.list_memories(kind=kind, since=since, limit=None)
    rows.sort(key=lambda m: (m["at"], m["id"]))
    return rows


def write(soul: Soul, fmt: str, out: IO[str], kind: str | None = None, since: str | None = None) -> int:
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    if kind:
        from soul.core import _check_kind

        _check_kind(kind)
    rows = memories(soul, kind=kind, since=since)
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    else:
        out.write(render_markdown(rows, soul.instance))
    return len(rows)


def render_markdown(rows: list[dict[str, Any]], instance: str) -> str:
    parts = ["---", "title: soul export", f"exported: {now_iso()}", f"instance: {instance}", "soul-export: 1", "---"]
    parts += ["", "# soul export", ""]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    for kind, group in sorted(by_kind.items()):
        parts += [f"## {kind}", ""]
        for row in group:
            parts += _bullet(row)
        parts.append("")
    return "\n".join(parts) + "\n"


def _bullet(row: dict[str, Any]) -> list[str]:
    meta = {"id": row["id"], "kind": row["kind"], "tags": row["tags"], "project": row.get("project")}
    if row.get("source"):
        meta["source"] = row["source"]
    first, *rest = row["text"].split("\n")
    # Every line of the text is indented under its bullet, so the bullet owns it. A `-->` inside a
    # value would end the comment early: it is written as `--\u003e`, which JSON reads back the same.
    lines = [f"- {first}", *(f"  {line}" for line in rest)]
    lines.append("  <!-- soul " + json.dumps(meta, ensure_ascii=False).replace("-->", "--\\u003e") + " -->")
    return lines
