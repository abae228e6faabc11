"""Which event lines a purge removes, found from the ids and `--match` text a person gave.

Invariant: the removed set is closed. It holds every line linked to a removed id (an update, forget
or merge of a purged memory; every save of a purged session) and every line carrying the same text
(a duplicate remembered twice), so once these lines are gone the text is nowhere in the logs, and
the purge record's id list alone reproduces the same removal on every other replica.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soul import store
from soul.errors import NotFound, UsageError
from soul.purge.rewrite import LINK_FIELDS
from soul.view import normalize_text

_META = ("op", "at", "by", "v")


@dataclass
class Line:
    raw: bytes
    event: dict[str, Any]
    files: set[str] = field(default_factory=set)


def collect(home: Path, tips: dict[str, list[bytes]]) -> dict[bytes, Line]:
    """Every event line at the tips of the refs and in the working tree, once, with its files."""
    lines: dict[bytes, Line] = {}

    def add(name: str, raw: bytes) -> None:
        if not raw.endswith(b"\n"):
            raw += b"\n"
        found = lines.get(raw)
        if found is None:
            event = store.parse_line(raw.strip())
            if event is None:
                return
            found = lines[raw] = Line(raw, event)
        found.files.add(name)

    for name, raws in tips.items():
        for raw in raws:
            add(name, raw)
    for path in store.log_files(home):
        name = path.relative_to(home).as_posix()
        for raw in path.read_bytes().splitlines(keepends=True):
            add(name, raw)
    return lines


def select(lines: dict[bytes, Line], ids: list[str], match: str | None) -> set[str]:
    """The closed set of removed ids (the given ids included)."""
    removed = {i.strip() for i in ids if i.strip()}
    events = [line.event for line in lines.values()]
    missing = [i for i in removed if not any(e.get(f) == i for e in events for f in LINK_FIELDS)]
    if missing:
        raise NotFound(f"no event with id {', '.join(sorted(missing))}", hint="see `soul list` for memory ids")
    if match is not None:
        needle = match.casefold()
        if not needle.strip():
            raise UsageError("--match needs some text")
        removed |= {e["id"] for e in events if any(needle in s.casefold() for s in _strings(e))}
    texts: set[str] = set()
    # Each pass adds at least one id or text, so this ends within len(events) + 1 passes.
    for _ in range(len(events) + 1):
        grew = False
        for e in events:
            text = e.get("text")
            norm = normalize_text(text) if isinstance(text, str) else None
            linked = any(isinstance(e.get(f), str) and e[f] in removed for f in LINK_FIELDS)
            if not linked and norm is not None and norm in texts:
                linked = True
            if linked and e["id"] not in removed:
                removed.add(e["id"])
                grew = True
            if linked and norm is not None and norm not in texts:
                texts.add(norm)
                grew = True
        if not grew:
            break
    return removed


def _strings(value: Any, key: str | None = None) -> list[str]:
    if key in _META:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, str(k))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def describe(line: Line) -> dict[str, Any]:
    """How the plan shows a removed line: where it is and a short preview for the person to check."""
    e = line.event
    text = e.get("text") or e.get("title") or e.get("summary") or ""
    preview = str(text).splitlines()[0][:50] if text else ""
    return {
        "id": e["id"],
        "op": e["op"],
        "by": e["by"],
        "at": e["at"],
        "files": sorted(line.files),
        "preview": preview,
    }
