"""`soul import`: bring memories in from another memory tool, idempotently and in bounded memory.

Formats: `mcp-memory` (the JSONL file of `@modelcontextprotocol/server-memory`), `markdown` (a note
or a folder of notes: basic-memory, Obsidian, or `soul export --format markdown`), `jsonl` (soul's
own `soul export --format jsonl`).

Invariants: every memory id is derived from the source and the content (a ULID whose time part is
zero and whose random part is a hash; jsonl keeps the exported id), so importing the same thing
twice adds nothing; sources are read a line at a time and written a batch at a time (one append,
one commit per batch), so memory stays bounded whatever the file size; every item goes through
the secret guard, and a refused or malformed item is reported with its line and skipped, never
fatal. `--dry-run` runs the same code against a writer that only records.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soul.errors import SecretRefused, UsageError
from soul.ids import is_ulid
from soul.view import KINDS, fact_key

if TYPE_CHECKING:
    from soul.core import Soul

FORMATS = ("mcp-memory", "markdown", "jsonl")
# Batches start small (a short import shows up at once) and double up to MAX_BATCH: each commit
# stores the whole month's log as a new git blob, so a commit per 2,000 memories made a 200k
# import write O(n^2) bytes (measured: 470 s, see bench/bench_import.py); doubling keeps a
# 100 MB import to about twenty commits while a batch stays small enough to hold in memory.
BATCH = 2000
MAX_BATCH = 25_000
MAX_BATCH_BYTES = 16 * 2**20  # and at most this much text, whatever the count
MAX_LISTED = 1000
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
Progress = Callable[[int, int], None]


@dataclass
class Item:
    """One memory to import, with where it came from (for reports and for its id)."""

    where: str
    line: int
    id: str
    text: str
    kind: str = "note"
    tags: list[str] = field(default_factory=list)
    project: str | None = None
    source: str | None = None
    person: tuple[str, str] | None = None  # (name, observation): also feeds a people note
    multiline: bool = False  # the text spans source lines (Markdown), so a finding's line adds up


@dataclass
class Problem:
    where: str
    line: int
    error: str
    rule: str | None = None


@dataclass
class ImportReport:
    format: str
    path: str
    dry_run: bool
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    batches: int = 0
    refused: list[Problem] = field(default_factory=list)
    malformed: list[Problem] = field(default_factory=list)
    problems_not_listed: int = 0  # past MAX_LISTED: a file of garbage must not fill memory

    def problem(self, kind: str, problem: Problem) -> None:
        listed = self.refused if kind == "refused" else self.malformed
        if len(self.refused) + len(self.malformed) < MAX_LISTED:
            listed.append(problem)
        else:
            self.problems_not_listed += 1

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["refused"] = [p.__dict__ for p in self.refused]
        out["malformed"] = [p.__dict__ for p in self.malformed]
        return out


def derived_id(*parts: str) -> str:
    """A valid ULID fixed by `parts`: time part zero, 80-bit random part from sha256."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    value = int.from_bytes(digest[:10], "big")
    chars = [_CROCKFORD[(value >> (5 * i)) & 31] for i in range(16)]
    return "0" * 10 + "".join(reversed(chars))


# ---------------------------------------------------------------------- the pipeline


def run(
    soul: Soul,
    fmt: str,
    path: Path,
    dry_run: bool = False,
    progress: Progress | None = None,
    batch: int | None = None,
) -> ImportReport:
    """Import `path`; `batch` fixes the batch size (tests), else batches grow from BATCH to MAX_BATCH."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown import format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    report = ImportReport(fmt, str(path), dry_run)
    writer: _Writer = _DryRun(soul) if dry_run else _Writer(soul)
    pending: list[Item] = []
    size = batch or BATCH
    held = 0
    for entry in _SOURCES[fmt](path, progress or (lambda done, total: None)):
        if isinstance(entry, Problem):
            report.problem("malformed", entry)
            continue
        report.read += 1
        item = _validate(entry, report)
        if item is not None:
            pending.append(item)
            held += len(item.text)
        if len(pending) >= size or held >= MAX_BATCH_BYTES:
            _flush(soul, writer, pending, report, fmt)
            pending, held = [], 0
            size = batch or min(size * 2, MAX_BATCH)
    if pending:
        _flush(soul, writer, pending, report, fmt)
    return report


def _validate(item: Item, report: ImportReport) -> Item | None:
    """Check one item as `soul remember` would; a failure is reported with its line, never raised."""
    from soul.core import _check_kind, _clean_label, _clean_text

    try:
        item.text = _clean_text(item.text)
        item.kind = _check_kind(item.kind)
        item.tags = list(dict.fromkeys(_clean_label(t, "tag") for t in item.tags if t.strip()))
        item.project = _clean_label(item.project, "project") if item.project else None
    except UsageError as exc:
        report.problem("malformed", Problem(item.where, item.line, exc.message))
        return None
    return item


def _blob(item: Item) -> str:
    return "\n".join([item.text, *item.tags, item.project or "", item.source or ""])


def _guard(items: list[Item], report: ImportReport) -> list[Item]:
    """The secret guard over a batch: one scan of all items (scanning is linear, and a call per
    item costs more than the scan), then an exact per-item check of every item a finding touches,
    so a match that only exists across two items' boundary refuses neither."""
    from bisect import bisect_right

    from soul import secrets

    starts: list[int] = []
    pos = 0
    blobs = [_blob(item) for item in items]
    for blob in blobs:
        starts.append(pos)
        pos += len(blob) + 2
    touched: set[int] = set()
    for finding in secrets.scan("\n\n".join(blobs)):
        first, last = bisect_right(starts, finding.start) - 1, bisect_right(starts, max(finding.end - 1, 0)) - 1
        touched.update(range(first, last + 1))
    kept: list[Item] = []
    for index, item in enumerate(items):
        if index in touched:
            try:
                secrets.check(blobs[index], what="imported memory")
            except SecretRefused as exc:
                line = item.line
                if item.multiline:
                    line += min(max(exc.line, 1), item.text.count("\n") + 1) - 1
                report.problem("refused", Problem(item.where, line, exc.message, exc.rule))
                continue
        kept.append(item)
    return kept


def _flush(soul: Soul, writer: _Writer, items: list[Item], report: ImportReport, fmt: str) -> None:
    keys = [fact_key(i.text, i.kind, i.project) for i in items]
    known, held = writer.lookup([i.id for i in items], keys)
    fresh: list[Item] = []
    batch_keys: set[str] = set()
    for item, key in zip(items, keys, strict=True):
        if item.id in known or key in held or key in batch_keys:
            report.duplicates += 1
            continue
        batch_keys.add(key)
        fresh.append(item)
    # Guarded after the duplicate check: what is already in the soul is not written again, so a
    # re-import pays only for what is new (a refused item is never known, so it is refused again).
    fresh = _guard(fresh, report)
    batch_keys = {fact_key(i.text, i.kind, i.project) for i in fresh}
    if not fresh:
        return
    fields_list = []
    for item in fresh:
        fields: dict[str, Any] = {"id": item.id, "text": item.text, "kind": item.kind, "tags": item.tags}
        if item.project:
            fields["project"] = item.project
        if item.source:
            fields["source"] = item.source
        fields_list.append(fields)
    report.batches += 1
    writer.write(fields_list, keys=batch_keys, message=f"import {fmt}: {len(fresh)} memories (batch {report.batches})")
    report.imported += len(fresh)
    for item in fresh:
        if item.person is not None:
            writer.note_person(*item.person)


class _Writer:
    """Writes a batch: one append of all its events, one commit."""

    def __init__(self, soul: Soul) -> None:
        self.soul = soul

    def lookup(self, ids: list[str], keys: list[str]) -> tuple[set[str], set[str]]:
        """Those `ids` already used, and those fact `keys` a live memory holds."""
        from soul import dupes

        return dupes.lookup(self.soul, ids, keys)

    def write(self, fields_list: list[dict[str, Any]], keys: set[str], message: str) -> None:
        self.soul.append_many("memory.add", fields_list, message=message)

    def note_person(self, name: str, text: str) -> None:
        note = getattr(self.soul, "note_person", None)
        if note is not None:
            try:
                note(name, text)
            except UsageError:
                return  # a name people notes refuse (e.g. too long) still has its memory


class _DryRun(_Writer):
    """Records instead of writing; remembers what it would have written so later batches agree
    (as 64-bit digests: a dry run of a huge file must not hold every id and key)."""

    def __init__(self, soul: Soul) -> None:
        super().__init__(soul)
        self.seen: set[int] = set()

    def lookup(self, ids: list[str], keys: list[str]) -> tuple[set[str], set[str]]:
        known, held = super().lookup(ids, keys)
        known |= {i for i in ids if _digest(i) in self.seen}
        held |= {k for k in keys if _digest(k) in self.seen}
        return known, held

    def write(self, fields_list: list[dict[str, Any]], keys: set[str], message: str) -> None:
        self.seen.update(_digest(f["id"]) for f in fields_list)
        self.seen.update(_digest(k) for k in keys)

    def note_person(self, name: str, text: str) -> None:
        return


def _digest(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


# ---------------------------------------------------------------------- sources


def _lines(path: Path, progress: Progress) -> Iterator[tuple[int, str | None]]:
    """(line number, text) for each line, read one at a time; text None when not UTF-8."""
    if path.is_dir():
        raise UsageError(f"{path} is a folder; this format reads one file")
    total = path.stat().st_size
    done = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            done += len(raw)
            if number % 256 == 0:
                progress(done, total)
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, None
    progress(total, total)


def _json_lines(path: Path, progress: Progress) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    where = path.name
    for number, text in _lines(path, progress):
        if text is None:
            yield number, Problem(where, number, "line is not valid UTF-8")
            continue
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, Problem(where, number, f"not JSON: {exc.msg}")
            continue
        except RecursionError:
            yield number, Problem(where, number, "not JSON: nested too deeply")
            continue
        if not isinstance(data, dict):
            yield number, Problem(where, number, "not a JSON object")
            continue
        yield number, data


def _mcp_memory_items(path: Path, progress: Progress) -> Iterator[Item | Problem]:
    where = path.name
    for number, data in _json_lines(path, progress):
        if isinstance(data, Problem):
            yield data
            continue
        try:
            yield from _mcp_record(where, number, data)
        except (KeyError, TypeError, ValueError) as exc:
            yield Problem(where, number, f"not an mcp-memory entity or relation: {exc}")


def _mcp_record(where: str, number: int, data: dict[str, Any]) -> Iterator[Item]:
    kind = data.get("type")
    if kind == "entity":
        name, etype, observations = _str(data["name"]), _str(data.get("entityType", "")), data["observations"]
        if not isinstance(observations, list):
            raise TypeError("observations is not a list")
        person = etype.casefold() == "person"
        for obs in observations:
            obs = _str(obs).strip()
            if not obs:
                continue
            yield Item(
                where=where,
                line=number,
                id=derived_id("mcp-memory", name, obs),
                text=f"{name}: {obs}",
                kind="person" if person else "fact",
                tags=[name],
                source="mcp-memory",
                person=(name, obs) if person else None,
            )
    elif kind == "relation":
        src, rel, dst = _str(data["from"]), _str(data["relationType"]), _str(data["to"])
        yield Item(
            where=where,
            line=number,
            id=derived_id("mcp-memory-relation", src, rel, dst),
            text=f"{src} {rel.replace('_', ' ')} {dst}",
            kind="fact",
            tags=[src, dst],
            source="mcp-memory",
        )
    else:
        raise ValueError(f"unknown type {kind!r}")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _jsonl_items(path: Path, progress: Progress) -> Iterator[Item | Problem]:
    where = path.name
    for number, data in _json_lines(path, progress):
        if isinstance(data, Problem):
            yield data
            continue
        if "op" in data and data.get("op") != "memory.add":
            continue  # a raw event log may be imported too; only its memories matter here
        text, tags = data.get("text"), data.get("tags", [])
        if not isinstance(text, str) or not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            yield Problem(where, number, "not a soul memory (needs text and a list of tags)")
            continue
        kind = data.get("kind") if data.get("kind") in KINDS else "note"
        project = data.get("project") if isinstance(data.get("project"), str) else None
        source = data.get("source") if isinstance(data.get("source"), str) else None
        original = data.get("id")
        memory_id = original if isinstance(original, str) and is_ulid(original) else None
        yield Item(
            where=where,
            line=number,
            id=(memory_id or derived_id("jsonl", text, str(kind), project or "")).upper(),
            text=text,
            kind=str(kind),
            tags=list(tags),
            project=project,
            source=source,
        )


def _markdown_items(path: Path, progress: Progress) -> Iterator[Item | Problem]:
    root = path if path.is_dir() else path.parent
    files = sorted(p for p in path.rglob("*.md") if _visible(p, root)) if path.is_dir() else [path]
    total = sum(p.stat().st_size for p in files) or 1
    done = 0
    for file in files:
        rel = file.relative_to(root).as_posix()
        try:
            text = file.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as exc:
            yield Problem(rel, 0, f"cannot read: {exc}")
            continue
        for note in parse_note(text, default_title=file.stem):
            yield Item(
                where=rel,
                line=note.line,
                id=note.id or derived_id("markdown", rel, note.text),
                text=note.text,
                kind=note.kind,
                tags=note.tags,
                project=note.project,
                source=note.source if note.exported else f"markdown:{rel}",
                multiline=True,
            )
        done += file.stat().st_size
        progress(done, total)


def _visible(path: Path, root: Path) -> bool:
    """Skip hidden folders (.obsidian, .git, .trash) and anything under them."""
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


_SOURCES: dict[str, Callable[[Path, Progress], Iterator[Item | Problem]]] = {
    "mcp-memory": _mcp_memory_items,
    "markdown": _markdown_items,
    "jsonl": _jsonl_items,
}


# ---------------------------------------------------------------------- Markdown notes

_BULLET = re.compile(r"^([-*+]|\d{1,3}[.)])\s+(.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CHECKBOX = re.compile(r"^\[[ xX]\]\s+")
_CATEGORY = re.compile(r"^\[([^\]\n]{1,60})\]\s+")
_TRAILING_TAGS = re.compile(r"(?:\s+#[\w/-]+)+\s*$")
_WIKILINK = re.compile(r"\[\[([^\]|\n]+)(?:\|([^\]\n]+))?\]\]")
_SOUL_META = re.compile(r"^\s*<!-- soul (\{.*\}) -->\s*$")
_OBSERVATION_SECTIONS = ("observations", "relations")


@dataclass
class NoteItem:
    line: int
    text: str
    kind: str
    tags: list[str]
    project: str | None
    id: str | None = None
    source: str | None = None
    exported: bool = False  # from `soul export --format markdown`: its metadata is the truth


@dataclass
class _Bullet:
    line: int
    section: str
    lines: list[str]


def parse_note(text: str, default_title: str) -> list[NoteItem]:
    """The memories in one note: one per bullet when the note is a list (or a basic-memory note's
    Observations/Relations), else one for the whole note."""
    lines = text.replace("\r\n", "\n").split("\n")
    meta, start = _front_matter(lines)
    title = str(meta.get("title") or "").strip()
    kind = _note_kind(meta)
    tags = _tag_list(meta.get("tags"))
    project = meta.get("project") if isinstance(meta.get("project"), str) else None
    bullets, prose, h1 = _scan(lines, start)
    title = title or h1 or default_title
    base = NoteItem(0, "", kind, tags, project or None)
    if bullets and (not prose or any(b.section in _OBSERVATION_SECTIONS for b in bullets)):
        items = [_bullet_item(b, title, base, exported="soul-export" in meta) for b in bullets]
        if prose:
            items.append(_with(base, prose[0][0], f"{title}\n\n" + "\n".join(p for _, p in prose).strip()))
        return items
    body = "\n".join(lines[start:]).strip()
    if not body:
        return []
    first = next((n for n, raw in enumerate(lines[start:], start=start + 1) if raw.strip()), start + 1)
    return [_with(base, first, _links(body if h1 else f"{title}\n\n{body}"))]


def _with(base: NoteItem, line: int, text: str, **changes: Any) -> NoteItem:
    values = {**base.__dict__, "line": line, "text": text, "tags": list(base.tags), **changes}
    return NoteItem(**values)


def _note_kind(meta: dict[str, Any]) -> str:
    for key in ("kind", "type"):
        value = str(meta.get(key) or "").casefold()
        if value in KINDS:
            return value
    return "note"


def _scan(lines: list[str], start: int) -> tuple[list[_Bullet], list[tuple[int, str]], str | None]:
    """Top-level bullets (nested lines belong to their parent), prose lines, and the first H1."""
    bullets: list[_Bullet] = []
    prose: list[tuple[int, str]] = []
    section, h1, current = "", None, None
    for number, raw in enumerate(lines[start:], start=start + 1):
        heading = _HEADING.match(raw)
        bullet = _BULLET.match(raw)
        if heading:
            current = None
            section = heading.group(2).strip().casefold()
            if len(heading.group(1)) == 1 and h1 is None:
                h1 = heading.group(2).strip()
        elif bullet:
            current = _Bullet(number, section, [bullet.group(2)])
            bullets.append(current)
        elif current is not None and raw.startswith("  "):
            current.lines.append(raw[2:])
        elif raw.strip():
            current = None
            prose.append((number, raw))
        else:
            current = None
    return bullets, prose, h1


def _bullet_item(bullet: _Bullet, title: str, base: NoteItem, exported: bool) -> NoteItem:
    lines = list(bullet.lines)
    meta: dict[str, Any] = {}
    if lines and (found := _SOUL_META.match(lines[-1])):
        try:
            meta = json.loads(found.group(1))
        except ValueError:
            meta = {}
        lines.pop()
    text = "\n".join(lines).strip()
    if meta or exported:
        kind = (
            meta.get("kind") if meta.get("kind") in KINDS else (bullet.section if bullet.section in KINDS else "note")
        )
        raw_tags = meta.get("tags")
        tags: list[Any] = raw_tags if isinstance(raw_tags, list) else []
        memory_id = meta.get("id") if isinstance(meta.get("id"), str) and is_ulid(meta["id"]) else None
        project, source = meta.get("project"), meta.get("source")
        return NoteItem(
            bullet.line,
            text,
            str(kind),
            [str(t) for t in tags],
            project if isinstance(project, str) else None,
            memory_id,
            source if isinstance(source, str) else None,
            exported=True,
        )
    text = _CHECKBOX.sub("", text)
    tags = list(base.tags)
    if bullet.section == "relations":
        return _with(base, bullet.line, f"{title} {_links(text).replace('_', ' ')}")
    if (category := _CATEGORY.match(text)) is not None:
        tags.append(category.group(1).strip())
        text = text[category.end() :]
    if (trailing := _TRAILING_TAGS.search(text)) is not None and trailing.start() > 0:
        tags += [t.lstrip("#") for t in trailing.group(0).split()]
        text = text[: trailing.start()]
    return _with(base, bullet.line, f"{title}: {_links(text).strip()}", tags=tags)


def _links(text: str) -> str:
    return _WIKILINK.sub(lambda m: m.group(2) or m.group(1), text)


def _front_matter(lines: list[str]) -> tuple[dict[str, Any], int]:
    """A small YAML subset: `key: value`, `key: [a, b]`, and `key:` followed by `- item` lines."""
    if not lines or lines[0].strip() != "---":
        return {}, 0
    meta: dict[str, Any] = {}
    last: str | None = None
    for number, raw in enumerate(lines[1:], start=1):
        if raw.strip() in ("---", "..."):
            return meta, number + 1
        item = re.match(r"^\s*-\s+(.*)$", raw)
        if item and last is not None:
            existing = meta.get(last)
            meta[last] = [*(existing if isinstance(existing, list) else []), _unquote(item.group(1))]
            continue
        pair = re.match(r"^([\w.-]+)\s*:\s*(.*)$", raw)
        if pair:
            last, value = pair.group(1).casefold(), pair.group(2).strip()
            if value.startswith("[") and value.endswith("]"):
                meta[last] = [_unquote(v) for v in value[1:-1].split(",") if v.strip()]
            else:
                meta[last] = _unquote(value) if value else None
    return {}, 0  # no closing line: not front matter after all


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _tag_list(value: Any) -> list[str]:
    raw = value if isinstance(value, list) else re.split(r"[,\s]+", value) if isinstance(value, str) else []
    return [str(t).strip().lstrip("#") for t in raw if str(t).strip().lstrip("#")]
