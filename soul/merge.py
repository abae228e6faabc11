"""In-process resolution of the paths a sync merge touched on both sides.

Pure functions over three versions of a file (base, ours, theirs; `None` = absent), chosen by
file type, so `soul.sync` never leaves a conflict for a person to untangle:

- `*.jsonl` event logs: a three-way set merge by line, deduplicated by event id. Ours' surviving
  lines keep their order and bytes (an incremental reader's byte offsets stay valid); lines only
  theirs has follow in fold order (at, by, id). A line one side deleted (a purge) stays deleted.
- `*.toml` (settings, soul.toml, instance and purge records): a key-wise three-way merge. A key
  changed on one side takes that change; a key changed differently on both sides is decided by
  `[sync] settings_policy` (newest | local | remote) and the losing value is returned as a
  `Conflict`, which sync records as a `conflict` event. Comments and layout of ours are kept.
- anything else: the whole file by the same policy, the loser recorded by blob id (still in git).

`resolve_merge(soul, ...)` applies these to a `git merge --no-commit` in progress: it reads the
three versions from git, writes and stages each result, records the conflicts as events, and
verifies the outcome before sync commits it.

Invariant: the result never contains conflict markers, a merged TOML file always parses and
equals the key-wise merge of the parsed inputs, and no event present on either side is lost
unless the other side deleted it.
"""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from soul.core import Soul

POLICIES = ("newest", "local", "remote")
MISSING: Any = object()
CONFLICT_MARKER = re.compile(rb"^(<<<<<<<|>>>>>>>|=======|\|\|\|\|\|\|\|)( |$)", re.MULTILINE)

# side_time(side, key) -> when that side last changed `key` (seconds); side is "ours" or "theirs".
SideTime = Callable[[str, str], float]


class MergeError(Exception):
    """A file cannot be merged in-process (it does not parse); sync stops and asks for a person."""


@dataclass(frozen=True)
class Conflict:
    """A key changed on both sides: `kept` won by `policy`, `dropped` came from `from_`."""

    key: str
    kept: Any
    dropped: Any
    from_: str
    policy: str
    file: str

    def to_fields(self) -> dict[str, Any]:
        """The body of a `conflict` event (folded into view.conflicts, listed by `soul conflicts`)."""
        return {
            "key": self.key,
            "kept": _jsonable(self.kept),
            "dropped": _jsonable(self.dropped),
            "from": self.from_,
            "policy": self.policy,
            "file": self.file,
        }


@dataclass(frozen=True)
class Sides:
    """How to decide a conflict: the policy, when each side changed a key, and who each side is."""

    policy: str = "newest"
    side_time: SideTime | None = None
    ours_name: str = "local"
    theirs_name: str = "remote"

    def winner(self, key: str, ours: Any, theirs: Any) -> str:
        if self.policy == "local":
            return "ours"
        if self.policy == "remote":
            return "theirs"
        if self.side_time is not None:
            t_ours, t_theirs = self.side_time("ours", key), self.side_time("theirs", key)
            if t_ours != t_theirs:
                return "ours" if t_ours > t_theirs else "theirs"
        # Same time (or unknown): a rule both replicas compute alike, so they agree.
        return "ours" if _order_key(ours) >= _order_key(theirs) else "theirs"


# ---------------------------------------------------------------------- JSONL


def merge_jsonl(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes:
    """Three-way union of event-log lines, deduplicated by event id (see module docstring)."""
    base_keys = {key for key, _ in _jsonl_lines(base or b"")}
    ours_lines = _dedupe(_jsonl_lines(ours or b""))
    theirs_lines = _dedupe(_jsonl_lines(theirs or b""))
    ours_keys = {key for key, _ in ours_lines}
    theirs_keys = {key for key, _ in theirs_lines}
    # A line that was in base and is gone from one side was deleted there on purpose (purge).
    deleted = (base_keys - ours_keys) | (base_keys - theirs_keys)
    out = [line for key, line in ours_lines if key not in deleted]
    extra = [(key, line) for key, line in theirs_lines if key not in ours_keys and key not in deleted]
    extra.sort(key=lambda item: _fold_key(item[1]))
    out.extend(line for _, line in extra)
    return b"".join(out)


def _jsonl_lines(data: bytes) -> list[tuple[str, bytes]]:
    """(dedupe key, line with newline) for each non-blank line; key = event id or the raw bytes."""
    out: list[tuple[str, bytes]] = []
    for raw in data.splitlines():
        if not raw.strip():
            continue
        out.append((_line_key(raw), raw + b"\n"))
    return out


def _line_key(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"]:
        return "id:" + str(data["id"])
    return "raw:" + raw.decode("utf-8", "surrogateescape")


def _dedupe(lines: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    seen: set[str] = set()
    out: list[tuple[str, bytes]] = []
    for key, line in lines:
        if key not in seen:
            seen.add(key)
            out.append((key, line))
    return out


def _fold_key(line: bytes) -> tuple[str, str, str, bytes]:
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        return (str(data.get("at", "")), str(data.get("by", "")), str(data.get("id", "")), line)
    # Lines that are not events sort last, in byte order, so every replica orders them alike.
    return ("\uffff", "", "", line)


# ---------------------------------------------------------------------- TOML


def merge_toml(
    base: str | None, ours: str | None, theirs: str | None, file: str, sides: Sides
) -> tuple[str | None, list[Conflict]]:
    """Key-wise three-way merge. Returns the merged text (None: the file is deleted) and conflicts."""
    if sides.policy not in POLICIES:
        raise MergeError(f"unknown [sync] settings_policy {sides.policy!r}; use one of {', '.join(POLICIES)}")
    b, o, t = (_parse_toml(text, file, label) for text, label in ((base, "base"), (ours, "ours"), (theirs, "theirs")))
    conflicts: list[Conflict] = []
    changes: list[tuple[list[str], Any]] = []
    result = _merge_node(b, o, t, [], file, sides, conflicts, changes)
    if result is MISSING or (not result and (ours is None or theirs is None)):
        return None, conflicts
    return _render(ours or "", result, changes), conflicts


def _parse_toml(text: str | None, file: str, label: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MergeError(f"{file} ({label} side) is not valid TOML: {exc}") from None


def _merge_node(
    base: Any,
    ours: Any,
    theirs: Any,
    path: list[str],
    file: str,
    sides: Sides,
    conflicts: list[Conflict],
    changes: list[tuple[list[str], Any]],
) -> Any:
    """Merge one node; record in `changes` every path whose result differs from ours.

    Tables are merged key by key (a table one side lacks counts as empty, so deleting a table is
    deleting its keys); anything else is compared as a whole value."""
    if any(isinstance(v, dict) for v in (ours, theirs)) and all(_table_or_missing(v) for v in (ours, theirs)):
        b, o, t = (v if isinstance(v, dict) else {} for v in (base, ours, theirs))
        out: dict[str, Any] = {}
        for key in [*o, *(k for k in t if k not in o)]:
            merged = _merge_node(
                b.get(key, MISSING),
                o.get(key, MISSING),
                t.get(key, MISSING),
                [*path, key],
                file,
                sides,
                conflicts,
                changes,
            )
            if merged is not MISSING:
                out[key] = merged
        if out or not path or _table_present(base, ours, theirs):
            if not out and ours is MISSING:
                changes.append((path, {}))
            return out
        if ours is not MISSING:
            changes.append((path, MISSING))
        return MISSING
    if _same(ours, theirs) or _same(base, theirs):
        return ours
    if _same(base, ours):
        changes.append((path, theirs))
        return theirs
    key = ".".join(path)
    if sides.winner(key, ours, theirs) == "ours":
        conflicts.append(Conflict(key, _plain(ours), _plain(theirs), sides.theirs_name, sides.policy, file))
        return ours
    conflicts.append(Conflict(key, _plain(theirs), _plain(ours), sides.ours_name, sides.policy, file))
    changes.append((path, theirs))
    return theirs


def _table_or_missing(value: Any) -> bool:
    return value is MISSING or isinstance(value, dict)


def _table_present(base: Any, ours: Any, theirs: Any) -> bool:
    """Whether an emptied table stays: the three-way merge of "this table exists"."""
    b, o, t = (isinstance(v, dict) for v in (base, ours, theirs))
    if o == t:
        return o
    return t if b == o else o


def _same(a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return a is b
    return bool(type(a) is type(b) and a == b)


def _plain(value: Any) -> Any:
    return None if value is MISSING else value


def _render(ours_text: str, result: dict[str, Any], changes: list[tuple[list[str], Any]]) -> str:
    """Apply `changes` to ours with tomlkit (keeping its comments); fall back to a fresh dump if
    tomlkit cannot express the edit faithfully, because correctness beats formatting."""
    import tomlkit

    try:
        doc = tomlkit.parse(ours_text)
        for path, value in sorted(changes, key=lambda c: len(c[0])):
            _apply(doc, path, value, result)
        text = tomlkit.dumps(doc)
        if tomllib.loads(text) == result:
            return text
    except Exception:  # any tomlkit quirk falls back to the exact plain rendering
        pass
    return tomlkit.dumps(result)


def _apply(doc: Any, path: list[str], value: Any, result: dict[str, Any]) -> None:
    import tomlkit

    node = doc
    for depth, part in enumerate(path[:-1]):
        if part not in node:
            if value is MISSING:
                return
            node[part] = tomlkit.table()
        node = node[part]
        if not isinstance(node, dict):
            raise MergeError(f"{'.'.join(path[: depth + 1])} is a value, not a table")
    if value is MISSING:
        if path[-1] in node:
            del node[path[-1]]
        _prune(doc, path[:-1], result)
    else:
        node[path[-1]] = value


def _prune(doc: Any, path: list[str], result: dict[str, Any]) -> None:
    """Remove tables emptied by a deletion when the merged result has no such table."""
    while path:
        node = doc
        for part in path[:-1]:
            if not isinstance(node, dict) or part not in node:
                return
            node = node[part]
        if _lookup(result, path) is MISSING and path[-1] in node and len(node[path[-1]]) == 0:
            del node[path[-1]]
        path = path[:-1]


def _lookup(data: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return MISSING
        data = data[part]
    return data


# ---------------------------------------------------------------------- any file


def resolve(
    path: str, base: bytes | None, ours: bytes | None, theirs: bytes | None, sides: Sides, blob_ids: tuple[str, str]
) -> tuple[bytes | None, list[Conflict]]:
    """The merged content of `path` (None: delete it) and the conflicts decided on the way.

    `blob_ids` (ours, theirs) name the versions in git, so a file decided as a whole records
    where the dropped version can still be read (`git cat-file -p <id>`)."""
    if ours == theirs:
        return ours, []
    if base == ours:
        return theirs, []
    if base == theirs:
        return ours, []
    if path.endswith(".jsonl"):
        return merge_jsonl(base, ours, theirs), []
    if path.endswith(".toml"):
        texts = [_decode(v, path) for v in (base, ours, theirs)]
        merged, conflicts = merge_toml(texts[0], texts[1], texts[2], path, sides)
        return (None if merged is None else merged.encode("utf-8")), conflicts
    return _whole_file(path, ours, theirs, sides, blob_ids)


def _whole_file(
    path: str, ours: bytes | None, theirs: bytes | None, sides: Sides, blob_ids: tuple[str, str]
) -> tuple[bytes | None, list[Conflict]]:
    # A file deleted on one side and edited on the other keeps the edit: losing data is worse.
    if ours is None or theirs is None:
        return (ours if theirs is None else theirs), []
    ours_ref, theirs_ref = (f"git:{blob}" if blob else None for blob in blob_ids)
    if sides.winner(path, ours, theirs) == "ours":
        return ours, [Conflict(path, ours_ref, theirs_ref, sides.theirs_name, sides.policy, path)]
    return theirs, [Conflict(path, theirs_ref, ours_ref, sides.ours_name, sides.policy, path)]


def _decode(data: bytes | None, path: str) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MergeError(f"{path} is not valid UTF-8 (byte {exc.start})") from None


# ---------------------------------------------------------------------- verification


def verify(path: str, data: bytes, parents: tuple[bytes | None, ...] = ()) -> str | None:
    """Why a merged file is not acceptable, or None. JSONL lines must parse unless a parent had
    the same bad line already (pre-existing damage is quarantined by the store, not ours)."""
    if CONFLICT_MARKER.search(data) and not any(p and CONFLICT_MARKER.search(p) for p in parents):
        return f"{path} contains conflict markers"
    if path.endswith(".toml"):
        try:
            tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            return f"{path} does not parse as TOML: {exc}"
    elif path.endswith(".jsonl"):
        known = {line for p in parents if p for line in p.splitlines()}
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip() or line in known:
                continue
            try:
                json.loads(line)
            except (ValueError, UnicodeDecodeError):
                return f"{path}:{number} is not valid JSON"
    return None


# ---------------------------------------------------------------------- helpers


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _order_key(value: Any) -> str:
    return json.dumps(_jsonable(_plain(value)), sort_keys=True, ensure_ascii=False, default=str)


# ---------------------------------------------------------------------- applying to a git merge


def resolve_merge(
    soul: Soul, base: str | None, head: str, target: str, policy: str
) -> tuple[list[str], list[Conflict]]:
    """Resolve, write and stage every path the merge in progress changed on both sides (and every
    unmerged one). Returns the paths resolved and the conflicts decided; raises MergeError when a
    result would not verify, leaving the caller to abort the merge."""
    from soul import gitutil

    repo = soul.home
    both = set(_changed(repo, base, head)) & set(_changed(repo, base, target))
    unmerged = gitutil.run(["diff", "--name-only", "-z", "--diff-filter=U"], repo).stdout.split("\0")
    paths = sorted(both | {p for p in unmerged if p})
    if not paths:
        return [], []
    trees = {rev: _tree_entries(repo, rev, paths) for rev in (base, head, target) if rev}
    history = _History(repo, base, {"ours": head, "theirs": target})
    conflicts: list[Conflict] = []
    for path in paths:
        # Event logs never conflict, so they need no history walk to name the other side.
        theirs_name = "remote" if path.endswith(".jsonl") else history.author("theirs", path)
        sides = Sides(policy, _side_time(history, path), soul.instance, theirs_name)
        entries = (trees[base].get(path) if base else None, trees[head].get(path), trees[target].get(path))
        if path.endswith((".jsonl", ".toml")):
            conflicts.extend(_resolve_text(soul, path, entries, sides))
        else:
            conflicts.extend(_resolve_whole(repo, path, entries, sides))
    return paths, conflicts


Entry = tuple[str, str]  # (mode, blob id) in a tree


def _side_time(history: _History, path: str) -> SideTime:
    def side_time(side: str, key: str) -> float:
        return history.time(side, path, key)

    return side_time


def _changed(repo: Path, base: str | None, rev: str) -> list[str]:
    from soul import gitutil

    if base is None:
        out = gitutil.run(["ls-tree", "-r", "-z", "--name-only", rev], repo).stdout
    else:
        out = gitutil.run(["diff", "--name-only", "-z", "--no-renames", base, rev], repo).stdout
    return [p for p in out.split("\0") if p]


def _tree_entries(repo: Path, rev: str, paths: list[str]) -> dict[str, Entry]:
    from soul import gitutil

    out = gitutil.run(["ls-tree", "-r", "-z", "--full-tree", rev, "--", *paths], repo).stdout
    entries: dict[str, Entry] = {}
    for record in out.split("\0"):
        if "\t" in record:
            meta, name = record.split("\t", 1)
            mode, _kind, blob = meta.split()
            entries[name] = (mode, blob)
    return entries


def _blob_text(repo: Path, entry: Entry | None) -> bytes | None:
    from soul import gitutil

    if entry is None:
        return None
    return gitutil.run(["cat-file", "blob", entry[1]], repo).stdout.encode("utf-8")


def _is_own_log(soul: Soul, path: str) -> bool:
    return path.startswith(f"memories/{soul.instance}/") and path.endswith(".jsonl")


def _resolve_text(soul: Soul, path: str, entries: tuple[Entry | None, ...], sides: Sides) -> list[Conflict]:
    from soul import gitutil

    repo = soul.home
    base, ours, theirs = (_blob_text(repo, e) for e in entries)
    own = _is_own_log(soul, path)
    if own and (repo / path).exists():
        # Our own log may hold events appended since HEAD; they are part of "ours".
        ours = (repo / path).read_bytes()
    ids = tuple(e[1] if e else "" for e in entries[1:])
    merged, conflicts = resolve(path, base, ours, theirs, sides, (ids[0], ids[1]))
    if merged is None:
        gitutil.run(["rm", "-q", "--cached", "--ignore-unmatch", "--", path], repo)
        (repo / path).unlink(missing_ok=True)
        return conflicts
    problem = verify(path, merged, (ours, theirs))
    if problem:
        raise MergeError(problem)
    if own:
        write_own_log(repo / path, merged)
    else:
        from soul import fsutil

        fsutil.atomic_write(repo / path, merged)
    gitutil.run(["add", "--", path], repo)
    return conflicts


def write_own_log(path: Path, merged: bytes) -> None:
    """Rewrite our own log under its flock, appending when possible: a concurrent `remember`
    holds an open descriptor of this very file, so it must never be replaced by rename."""
    import fcntl
    import os

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "rb") as handle:
            current = handle.read()
        if merged.startswith(current):
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, merged[len(current) :])
        else:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, merged)
        os.fsync(fd)
    finally:
        os.close(fd)


def _resolve_whole(repo: Path, path: str, entries: tuple[Entry | None, ...], sides: Sides) -> list[Conflict]:
    """Any other file is taken whole from one side by blob id (binary-safe, nothing re-encoded)."""
    from soul import gitutil

    base, ours, theirs = entries
    conflicts: list[Conflict] = []
    if ours == theirs or base == theirs:
        pick = ours
    elif base == ours or ours is None:
        pick = theirs  # deleted here and edited there: the edit is kept, losing data is worse
    elif theirs is None:
        pick = ours
    else:
        win = sides.winner(path, ours[1], theirs[1])
        pick, lose = (ours, theirs) if win == "ours" else (theirs, ours)
        loser_name = sides.theirs_name if win == "ours" else sides.ours_name
        conflicts.append(Conflict(path, f"git:{pick[1]}", f"git:{lose[1]}", loser_name, sides.policy, path))
    if pick is None:
        gitutil.run(["rm", "-q", "--cached", "--ignore-unmatch", "--", path], repo)
        (repo / path).unlink(missing_ok=True)
        return conflicts
    gitutil.run(["update-index", "--add", "--cacheinfo", f"{pick[0]},{pick[1]},{path}"], repo)
    gitutil.run(["checkout-index", "-f", "--", path], repo)
    return conflicts


class _History:
    """When each side last changed a key of a file: one `git log --raw` per side and file."""

    def __init__(self, repo: Path, base: str | None, revs: dict[str, str]) -> None:
        self.repo = repo
        self.base = base
        self.revs = revs
        self._versions: dict[tuple[str, str], list[tuple[float, str, str]]] = {}
        self._parsed: dict[str, Any] = {}

    def versions(self, side: str, path: str) -> list[tuple[float, str, str]]:
        """(commit time, author, blob id or "" when deleted), newest first."""
        from soul import gitutil

        key = (side, path)
        if key not in self._versions:
            span = f"{self.base}..{self.revs[side]}" if self.base else self.revs[side]
            args = ["log", "--format=%x01%ct%x09%an", "--raw", "--no-abbrev", "--no-renames", "-n", "200"]
            out = gitutil.run([*args, span, "--", path], self.repo, check=False).stdout
            found: list[tuple[float, str, str]] = []
            for chunk in out.split("\x01")[1:]:
                lines = chunk.splitlines()
                stamp, _, author = lines[0].partition("\t")
                raw = [ln for ln in lines[1:] if ln.startswith(":")]
                if raw:
                    blob = raw[0].split()[3]
                    found.append((float(stamp), author, "" if set(blob) == {"0"} else blob))
            self._versions[key] = found
        return self._versions[key]

    def time(self, side: str, path: str, key: str) -> float:
        versions = self.versions(side, path)
        if not versions:
            return 0.0
        for newer, older in itertools.pairwise(versions):
            if self._value(newer[2], path, key) != self._value(older[2], path, key):
                return newer[0]
        return versions[-1][0]

    def author(self, side: str, path: str) -> str:
        versions = self.versions(side, path)
        match = re.fullmatch(r"soul \((.+)\)", versions[0][1]) if versions else None
        return match.group(1) if match else ("remote" if side == "theirs" else "local")

    def _value(self, blob: str, path: str, key: str) -> Any:
        if not path.endswith(".toml"):
            return blob
        if blob not in self._parsed:
            text = _blob_text(self.repo, ("", blob)) if blob else None
            try:
                self._parsed[blob] = tomllib.loads(text.decode("utf-8")) if text else {}
            except (UnicodeDecodeError, tomllib.TOMLDecodeError):
                self._parsed[blob] = {}
        return _lookup(self._parsed[blob], key.split("."))
