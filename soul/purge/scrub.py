"""What `soul purge` removes besides history: derived state in `.soul/`, and old git objects.

Invariant after `scrub_state` + `prune_objects`: no file under `.soul/` (but the purge journal,
which is deleted last) and no object, reflog entry or transient file of the repository holds the
text of a removed line. Derived state is deleted rather than edited where it cannot be edited
exactly (the LanceDB index, the duplicate index); it rebuilds from the logs on next use.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path

from soul import fsutil, gitutil

JOURNAL = "purge-state.json"
# Always rebuilt after a purge: the semantic index (rows hold the text) and the duplicate index.
_DERIVED = ("index", "state.sqlite", "state.sqlite-wal", "state.sqlite-shm")
_EMBEDDINGS = "embeddings.sqlite"
# Transient files git keeps in .git that can quote old content or point at old commits.
_GIT_TRANSIENT = ("ORIG_HEAD", "COMMIT_EDITMSG", "MERGE_MSG", "SQUASH_MSG", "AUTO_MERGE", "gc.log")
GC_TIMEOUT = 1800.0


def _forms(text: str) -> list[bytes]:
    """The byte forms a text takes on disk: raw UTF-8 and its JSON-escaped spellings."""
    forms = {text.encode("utf-8")}
    forms.add(json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8"))
    forms.add(json.dumps(text)[1:-1].encode("ascii"))
    return [f for f in forms if f]


def scrub_state(state_dir: Path, texts: list[str], embedder_ids: list[str]) -> list[str]:
    """Delete derived indexes and every trace of `texts` under `.soul/`; return what was touched."""
    touched: list[str] = []
    # Under the index lock: a warm server saving its in-memory snapshot must not recreate the
    # index directory (with the text in it) right after it is gone.
    with fsutil.file_lock(state_dir / "index.lock", timeout=600):
        for name in _DERIVED:
            path = state_dir / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                touched.append(name)
            elif path.exists():
                path.unlink()
                touched.append(name)
    if _drop_embeddings(state_dir / _EMBEDDINGS, texts, embedder_ids):
        touched.append(_EMBEDDINGS)
    forms = sorted({f for t in texts for f in _forms(t)}, key=len, reverse=True)
    if not forms:
        return touched
    for path in sorted(state_dir.rglob("*")):
        if not path.is_file() or path.is_symlink() or path.name == JOURNAL:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if not any(f in data for f in forms):
            continue
        touched.append(path.relative_to(state_dir).as_posix())
        _scrub_file(path, data, forms)
    return touched


def _scrub_file(path: Path, data: bytes, forms: list[bytes]) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        path.unlink()  # binary derived data: rebuildable, not editable exactly
        return
    kept = b"".join(line for line in data.splitlines(keepends=True) if not any(f in line for f in forms))
    if kept:
        fsutil.atomic_write(path, kept, mode=path.stat().st_mode & 0o777)
    else:
        path.unlink()


def _drop_embeddings(path: Path, texts: list[str], embedder_ids: list[str]) -> bool:
    """Remove cached vectors of the removed texts (a vector can betray its text); the file goes
    whole when it cannot be edited."""
    if not path.exists() or not texts:
        return False
    from soul.embed import cache_key

    keys = [cache_key(eid, t) for eid in embedder_ids for t in texts]
    try:
        db = sqlite3.connect(path, timeout=30)
        try:
            with db:
                db.executemany("DELETE FROM vec WHERE key = ?", [(k,) for k in keys])
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
    except sqlite3.Error:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()
    return True


def prune_objects(repo: Path, keep_fetch_head: bool) -> None:
    """Forget every old commit: transient refs, reflogs, then unreachable objects."""
    git = _git_dir(repo)
    names = _GIT_TRANSIENT if keep_fetch_head else (*_GIT_TRANSIENT, "FETCH_HEAD")
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (git / name).unlink()
    # rerere keeps conflicted hunks verbatim.
    shutil.rmtree(git / "rr-cache", ignore_errors=True)
    gitutil.run(["reflog", "expire", "--expire=now", "--expire-unreachable=now", "--all"], repo, timeout=GC_TIMEOUT)
    gitutil.run(["gc", "--prune=now", "--quiet"], repo, timeout=GC_TIMEOUT)


def _git_dir(repo: Path) -> Path:
    out = gitutil.run(["rev-parse", "--absolute-git-dir"], repo).stdout.strip()
    return Path(out)


def local_remote_path(repo: Path, url: str) -> Path | None:
    """The directory of a remote given as a local path or file:// URL; None for a network remote."""
    if url.startswith("file://"):
        raw = url[len("file://") :]
    elif "://" in url or (":" in url.split("/")[0] and not url.startswith("/")):
        return None  # https://, ssh://, or scp-like host:path
    else:
        raw = url
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (repo / path).resolve()
    if (path / "objects").is_dir() or (path / ".git").is_dir():
        return path
    return None


def prune_remote(path: Path) -> None:
    """A local bare remote keeps the old objects after a forced push: expire and prune there too."""
    gitutil.run(["reflog", "expire", "--expire=now", "--expire-unreachable=now", "--all"], path, timeout=GC_TIMEOUT)
    gitutil.run(["gc", "--prune=now", "--quiet"], path, timeout=GC_TIMEOUT)
