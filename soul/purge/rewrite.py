"""The history rewrite of `soul purge`: drop event lines from every commit of the given refs.

The transform T(removed ids) is a pure function of the commits it reads. A log line is dropped when
its event `id`, `target`, `source`, `session` or `task` is a removed id; a commit message is replaced
by a fixed text when it names a removed id or quotes a removed line's text. Nothing else changes
(authors, dates, parents, other files), so T is deterministic and idempotent: every replica that
applies the same purge record to the same commits gets byte-identical commits, which is how a
replica's own unpushed commits meet the purged remote again in an ordinary merge, and how a rerun
after a crash converges instead of forking history.

Mechanics: `git fast-export --no-data` (commit metadata and blob ids, small) → this module →
`git fast-import --force`. Only blobs of `memories/**.jsonl` are read (`git cat-file --batch`), and
only those naming a removed id are replaced; every other blob is reused by id. fast-import is told
`feature done`, so a stream cut short by a crash updates no ref.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from soul import gitutil, store
from soul.errors import GitError

LINK_FIELDS = ("id", "target", "source", "session", "task")
# Fields that carry structure, not what a person said: never used to recognise a commit message.
_QUIET_KEYS = frozenset({"op", "id", "at", "by", "v", "kind", "tags", "project", *LINK_FIELDS})
MIN_NEEDLE = 4
WITHHELD = b"soul: commit message withheld by soul purge\n"
_BLOB_MARK_BASE = 1_000_000_000
REWRITE_TIMEOUT = 1800.0


class LineFilter:
    """Which event lines a purge removes: those linked to a removed id."""

    def __init__(self, removed: Iterable[str]) -> None:
        self.removed = frozenset(r for r in removed if r)
        alts = sorted((re.escape(r.encode("utf-8")) for r in self.removed), key=len, reverse=True)
        self._quick = re.compile(b"|".join(alts)) if alts else None

    def touches(self, data: bytes) -> bool:
        return self._quick is not None and self._quick.search(data) is not None

    def drops(self, line: bytes) -> bool:
        if not self.touches(line):
            return False
        event = store.parse_line(line.strip())
        if event is None:
            # A torn or damaged copy of a line that names a removed id: it is part of what goes.
            return True
        return any(isinstance(event.get(f), str) and event[f] in self.removed for f in LINK_FIELDS)

    def split(self, data: bytes) -> tuple[bytes, list[bytes]]:
        """(kept bytes, dropped lines) of a log's content; only lines naming a removed id are parsed."""
        if self._quick is None:
            return data, []
        kept: list[bytes] = []
        dropped: list[bytes] = []
        pos = 0  # everything before pos is decided
        for hit in self._quick.finditer(data):
            if hit.start() < pos:
                continue  # another hit on a line already decided
            start = data.rfind(b"\n", 0, hit.start()) + 1
            end = data.find(b"\n", hit.end())
            end = len(data) if end < 0 else end + 1
            line = data[start:end]
            if self.drops(line):
                kept.append(data[pos:start])
                dropped.append(line)
                pos = end
            else:
                kept.append(data[pos:end])
                pos = end
        if not dropped:
            return data, []
        kept.append(data[pos:])
        return b"".join(kept), dropped


def needles(lines: Iterable[bytes]) -> list[str]:
    """The strings that betray a removed line in a commit message (`remember <first 60 chars>`)."""
    out: set[str] = set()
    for line in lines:
        event = store.parse_line(line.strip())
        if event is None:
            continue
        for value in _strings(event):
            text = value.strip()
            if not text:
                continue
            first = text.splitlines()[0][:60]
            for candidate in (text, first, f"remember {first}"):
                if len(candidate) >= MIN_NEEDLE:
                    out.add(candidate)
    return sorted(out)


def _strings(value: object, key: str | None = None) -> Iterable[str]:
    if key in _QUIET_KEYS:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, str(k))
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class MessageRule:
    def __init__(self, filt: LineFilter, texts: Iterable[str]) -> None:
        self.filt = filt
        alts = sorted((re.escape(t.encode("utf-8")) for t in texts), key=len, reverse=True)
        self._texts = re.compile(b"|".join(alts)) if alts else None

    def rewrite(self, message: bytes) -> bytes:
        if self.filt.touches(message) or (self._texts is not None and self._texts.search(message)):
            return WITHHELD
        return message


@dataclass
class Stats:
    commits: int = 0
    changed: int = 0  # commits whose own content or message changed
    rehashed: int = 0  # commits that get a new id (changed, or an ancestor did)
    blobs: int = 0
    files: dict[str, int] = field(default_factory=dict)  # log path -> most lines dropped from it
    dropped: set[bytes] = field(default_factory=set)


def _cat_file_batch(repo: Path) -> subprocess.Popen[bytes]:
    """`git cat-file --batch` with binary pipes (gitutil.run is text-mode), no prompts, own group."""
    return subprocess.Popen(
        ["git", "cat-file", "--batch"],
        cwd=repo,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=gitutil.git_env(),
        start_new_session=True,
    )


class _Blobs:
    """Reads blobs through one `git cat-file --batch`, one at a time (for the few blobs at ref tips)."""

    def __init__(self, repo: Path) -> None:
        self._proc = _cat_file_batch(repo)

    def read(self, sha: bytes) -> bytes:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(sha + b"\n")
        self._proc.stdin.flush()
        return _read_one(self._proc.stdout, sha)

    def close(self) -> None:
        _close(self._proc)


def _read_one(out: IO[bytes], sha: bytes) -> bytes:
    header = out.readline().split()
    if len(header) != 3:
        raise GitError(f"cannot read blob {sha.decode()}")
    data = out.read(int(header[2]) + 1)
    return data[:-1]


def _close(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        if proc.stdin:
            proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _each_blob(repo: Path, shas: list[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """(sha, content) for every sha, streamed: requests are written by a thread while the answers
    are read, so there is no round trip per blob and no deadlock on a full pipe."""
    proc = _cat_file_batch(repo)
    assert proc.stdin is not None and proc.stdout is not None
    stdin = proc.stdin

    def feed() -> None:
        with contextlib.suppress(OSError):
            for sha in shas:
                stdin.write(sha + b"\n")
            stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        for sha in shas:
            yield sha, _read_one(proc.stdout, sha)
    finally:
        writer.join(timeout=10)
        _close(proc)


def _git_bytes(args: list[str], repo: Path, data: bytes | None = None) -> bytes:
    # A binary stream with exact byte counts: gitutil.run is text-mode, so this one call site runs
    # git itself, with the same no-prompt environment and a bound on time.
    proc = subprocess.run(
        ["git", *args],
        cwd=repo,
        input=data,
        capture_output=True,
        env=gitutil.git_env(),
        timeout=REWRITE_TIMEOUT,
        start_new_session=True,
    )
    if proc.returncode != 0:
        msg = gitutil.first_line(proc.stderr.decode("utf-8", "replace"))
        raise GitError(f"git {args[0]} failed: {msg}")
    return proc.stdout


def plain_refs(repo: Path, include_remotes: bool) -> list[str]:
    """Every ref that is not symbolic (a symref is rewritten through its target)."""
    out = gitutil.run(["for-each-ref", "--format=%(refname)%00%(symref)"], repo).stdout
    refs = []
    for line in out.splitlines():
        name, _, symref = line.partition("\x00")
        if symref or (not include_remotes and name.startswith("refs/remotes/")):
            continue
        refs.append(name)
    return refs


_LOG_BLOB = re.compile(rb"^M 100644 ([0-9a-f]{40,64}) (" + store.MEMORIES_DIR.encode() + rb"/[^\n]*\.jsonl)$", re.M)


def rewrite_history(repo: Path, filt: LineFilter, rule: MessageRule, refs: list[str], apply: bool) -> Stats:
    """Apply T to `refs`; with `apply` False only count what would change (the dry run).

    Two passes over the small `--no-data` stream: first every log blob it names is read once and,
    when it loses lines, its filtered copy is streamed to fast-import as a mark; then the commits
    are rewritten to use those marks. Nothing large is held in memory."""
    stats = Stats()
    if not refs or not filt.removed:
        return stats
    stream = _git_bytes(
        ["fast-export", "--no-data", "--signed-tags=strip", "--reencode=no", "--use-done-feature", *refs], repo
    )
    importer = _Importer(repo) if apply else None
    try:
        marks = _filter_blobs(repo, stream, filt, stats, importer)
        out = _transform(stream, marks, rule, stats)
        if importer is not None:
            if stats.rehashed:
                importer.finish(out)
            else:
                importer.abandon()
    except BaseException as exc:
        if importer is not None:
            importer.abandon()
        if isinstance(exc, OSError):  # fast-import died and closed its pipe
            raise GitError(f"git fast-import stopped: {exc}") from exc
        raise
    return stats


class _Importer:
    """`git fast-import`, fed as we go. Without the final `done` it updates no ref (`--done`)."""

    def __init__(self, repo: Path) -> None:
        # stderr to a file: nothing reads it while we write, so a pipe could fill and block git.
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finish/abandon
        self._proc = subprocess.Popen(
            ["git", "fast-import", "--quiet", "--force", "--done"],
            cwd=repo,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._err,
            env=gitutil.git_env(),
            start_new_session=True,
        )
        assert self._proc.stdin is not None
        self.stdin = self._proc.stdin
        self.stdin.write(b"feature done\n")

    def finish(self, commits: bytes) -> None:
        self.stdin.write(commits)
        self.stdin.close()
        try:
            code = self._proc.wait(timeout=REWRITE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            raise GitError("git fast-import timed out") from None
        self._err.seek(0)
        err = self._err.read().decode("utf-8", "replace")
        self._err.close()
        if code != 0:
            raise GitError(f"git fast-import failed: {gitutil.first_line(err)}")

    def abandon(self) -> None:
        self._proc.kill()
        with contextlib.suppress(OSError):
            self.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=10)
        self._err.close()


def _filter_blobs(
    repo: Path, stream: bytes, filt: LineFilter, stats: Stats, importer: _Importer | None
) -> dict[bytes, bytes]:
    """Filtered copies of the log blobs that lose lines: original sha -> fast-import mark."""
    paths: dict[bytes, str] = {}
    for hit in _LOG_BLOB.finditer(stream):
        paths.setdefault(hit.group(1), hit.group(2).decode("utf-8", "replace"))
    marks: dict[bytes, bytes] = {}
    for sha, data in _each_blob(repo, list(paths)):
        kept, dropped = filt.split(data)
        if not dropped:
            continue
        mark = b":%d" % (_BLOB_MARK_BASE + len(marks))
        marks[sha] = mark
        stats.blobs += 1
        stats.dropped.update(dropped)
        stats.files[paths[sha]] = max(stats.files.get(paths[sha], 0), len(dropped))
        if importer is not None:
            importer.stdin.write(b"blob\nmark %s\ndata %d\n" % (mark, len(kept)))
            importer.stdin.write(kept)
            importer.stdin.write(b"\n")
    return marks


def _transform(stream: bytes, marks: dict[bytes, bytes], rule: MessageRule, stats: Stats) -> bytes:
    out: list[bytes] = []
    rehashed: set[bytes] = set()
    pos = 0
    while pos < len(stream):
        end = stream.index(b"\n", pos) + 1
        line = stream[pos:end]
        pos = end
        if line == b"feature done\n":
            continue  # the importer declared it first, before the blobs
        if line.startswith(b"commit "):
            block, pos = _commit(stream, pos, line, marks, rule, stats, rehashed)
            out.append(block)
        elif line.startswith(b"data "):  # a tag message
            size = int(line[5:])
            out.append(line + stream[pos : pos + size])
            pos += size
        else:
            out.append(line)
    return b"".join(out)


def _commit(
    stream: bytes,
    pos: int,
    first: bytes,
    marks: dict[bytes, bytes],
    rule: MessageRule,
    stats: Stats,
    rehashed: set[bytes],
) -> tuple[bytes, int]:
    head: list[bytes] = [first]
    mark = b""
    while True:
        end = stream.index(b"\n", pos) + 1
        line = stream[pos:end]
        pos = end
        if line.startswith(b"mark "):
            mark = line[5:].strip()
        if line.startswith(b"data "):
            size = int(line[5:])
            message = stream[pos : pos + size]
            pos += size
            break
        head.append(line)
    new_message = rule.rewrite(message)
    changed = new_message != message
    parent_moved = False
    ops: list[bytes] = []
    while pos < len(stream):
        end = stream.index(b"\n", pos) + 1
        line = stream[pos:end]
        pos = end
        ops.append(line)
        if line == b"\n":
            break
        if line.startswith((b"from ", b"merge ")):
            parent_moved |= line.split()[1] in rehashed
        elif line.startswith(b"M 100644 "):
            _, mode, sha, path = line.rstrip(b"\n").split(b" ", 3)
            if sha in marks:
                ops[-1] = b"M %s %s %s\n" % (mode, marks[sha], path)
                changed = True
    stats.commits += 1
    stats.changed += changed
    if changed or parent_moved:
        stats.rehashed += 1
        rehashed.add(mark)
    body = b"".join(head) + b"data %d\n" % len(new_message) + new_message + b"".join(ops)
    return body, pos


def tip_logs(repo: Path, refs: list[str]) -> dict[str, list[bytes]]:
    """The lines of every log at the tip of `refs`, by path (logs are append-only, so a tip holds
    every line its history ever had)."""
    shas: dict[str, str] = {}
    for ref in refs:
        listing = gitutil.run(["ls-tree", "-r", "--end-of-options", ref, "--", store.MEMORIES_DIR], repo, check=False)
        for row in listing.stdout.splitlines():
            meta, _, name = row.partition("\t")
            parts = meta.split()
            if len(parts) == 3 and parts[1] == "blob" and name.endswith(".jsonl"):
                shas[parts[2]] = name
    out: dict[str, list[bytes]] = {}
    blobs = _Blobs(repo)
    try:
        for sha, name in sorted(shas.items()):
            out.setdefault(name, []).extend(blobs.read(sha.encode()).splitlines(keepends=True))
    finally:
        blobs.close()
    return out
