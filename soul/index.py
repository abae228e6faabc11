"""The semantic index: a LanceDB table in `.soul/index`, derived from the folded view.

`SoulIndex` owns the table. Rows carry the memory id, its text, vector, filter columns
(kind, tags, project, by, at), a content hash of the memory as shown, the embedder id, and the
memory's JSON (so a hit is rendered without folding the logs). Invariants:
- the index is derived: deleting `.soul/index` loses nothing; a missing or corrupt table is rebuilt;
- `catch_up()` makes the rows equal the live memories of the view: per-log-file (size, mtime) stamps
  say cheaply whether anything changed, then a diff by id and content hash adds, updates and deletes
  exactly what changed (forget, update and merge included);
- every row was embedded by the embedder named in `state.json`; a different embedder rebuilds;
- writers hold `.soul/index.lock`; fragments are compacted by `optimize()` once they pile up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soul import embed, fsutil, store
from soul.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from soul.core import Soul

TABLE = "memories"
STATE_VERSION = 1
# Compact once this many fragments exist: each small append is a fragment every query must open.
OPTIMIZE_FRAGMENTS = 8
FUSION = "linear"  # weighted linear combination; chosen by measurement, see docs/search.md
LINEAR_WEIGHT = 0.8
RRF_K = 60
NOTHING_DONE = {"added": 0, "updated": 0, "deleted": 0, "rebuilt": False}
Progress = Callable[[int, int], None]


def index_dir(soul: Soul) -> Path:
    return soul.state_dir / "index"


def state_path(soul: Soul) -> Path:
    return index_dir(soul) / "state.json"


def snapshot_path(soul: Soul) -> Path:
    return index_dir(soul) / "snapshot.npz"


def read_state(soul: Soul) -> dict[str, Any]:
    try:
        data = json.loads(state_path(soul).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and data.get("version") == STATE_VERSION else {}
    except (OSError, ValueError):
        return {}


def log_stamps(soul: Soul) -> dict[str, list[int]]:
    """(size, mtime_ns) per log file: equal stamps mean nothing to index."""
    out: dict[str, list[int]] = {}
    for path in store.log_files(soul.home):
        with contextlib.suppress(OSError):
            st = path.stat()
            out[path.relative_to(soul.home).as_posix()] = [st.st_size, st.st_mtime_ns]
    return out


def status(soul: Soul) -> dict[str, Any]:
    """Cheap: reads `state.json` and stats the logs; never loads the model or LanceDB."""
    state = read_state(soul)
    wanted = embed.expected_id(soul)
    if not state:
        return {"built": False, "rows": 0, "fragments": 0, "embedder": None, "model": wanted, "stale": True}
    return {
        "built": True,
        "rows": state.get("rows", 0),
        "fragments": state.get("fragments", 0),
        "embedder": state.get("embedder"),
        "model": wanted,
        "fallback": bool(state.get("fallback")),
        "fallback_reason": state.get("reason"),
        "stale": state.get("stamps") != log_stamps(soul),
        "updated_at": state.get("updated_at"),
        "snapshot": _snapshot_current(soul, state),
    }


def _snapshot_current(soul: Soul, state: dict[str, Any]) -> bool:
    """Whether a cold recall can answer from the snapshot (without LanceDB): the same check it makes."""
    from soul.vecsearch import Matrix

    return Matrix.describes(snapshot_path(soul), snapshot_version(soul, state))


def snapshot_version(soul: Soul, state: dict[str, Any]) -> dict[str, Any]:
    """What a snapshot must match: the state written with the table, and the table's manifests."""
    from soul.vecsearch import table_stamp

    keys = ("updated_at", "embedder", "rows")
    return {**{key: state.get(key) for key in keys}, "table": table_stamp(index_dir(soul) / f"{TABLE}.lance")}


def _hash(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _terms(doc: dict[str, Any]) -> str:
    """What BM25 sees: the text plus tags and project, so a tag is found by its word."""
    return " ".join([doc["text"], *doc.get("tags", []), doc.get("project") or ""])


class SoulIndex:
    """The LanceDB table of one soul, its embedder and its embedding cache."""

    def __init__(self, soul: Soul, warn: Callable[[str], None] | None = None) -> None:
        self.soul = soul
        self._warn = warn
        self._embedder: embed.Embedder | None = None
        self._db: Any = None
        self._table: Any = None
        self.cache = embed.EmbeddingCache(soul.state_dir / "embeddings.sqlite")
        self._mutex = threading.RLock()
        self._matrix: Any = None
        # updated_at of the state this handle last wrote or read: a change means another process
        # wrote the table, and a LanceDB handle does not see other writers until reopened.
        self._seen: str | None = None
        # Short-lived processes save the snapshot after each change so the next cold recall is fast;
        # a warm server sets this False and saves from its maintenance loop instead (one write per
        # quiet period, not one per remember).
        self.snapshot_eager = True
        self._snapshot_of: str | None = None
        self.adds_since_optimize = 0
        self._optimized_fragments = 1

    # ------------------------------------------------------------------ parts

    @property
    def embedder(self) -> embed.Embedder:
        if self._embedder is None:
            self._embedder = embed.load_embedder(self.soul, self._warn)
        return self._embedder

    def _connect(self) -> Any:
        import os

        # LanceDB's Rust layer logs deprecation notices to stderr on every query.
        os.environ.setdefault("LANCEDB_LOG", "error")
        _skip_rest_client()
        import lancedb

        if self._db is None:
            index_dir(self.soul).mkdir(parents=True, exist_ok=True)
            self._db = lancedb.connect(str(index_dir(self.soul)))
        return self._db

    def _open_table(self) -> Any:
        if self._table is None:
            self._table = self._connect().open_table(TABLE)
        return self._table

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex, fsutil.file_lock(self.soul.state_dir / "index.lock", timeout=600):
            yield

    def _schema(self, dim: int) -> Any:
        import pyarrow as pa

        return pa.schema(
            [
                pa.field("id", pa.string()),
                pa.field("text", pa.string()),
                pa.field("terms", pa.string()),
                pa.field("vector", pa.list_(pa.float32(), dim)),
                pa.field("kind", pa.string()),
                pa.field("tags", pa.list_(pa.string())),
                pa.field("project", pa.string()),
                pa.field("by", pa.string()),
                pa.field("at", pa.string()),
                pa.field("hash", pa.string()),
                pa.field("embedder", pa.string()),
                pa.field("doc", pa.string()),
            ]
        )

    def _rows(self, docs: list[dict[str, Any]], progress: Progress | None = None) -> Any:
        import pyarrow as pa

        emb = self.embedder
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            if progress:
                progress(done[0], len(docs))

        vectors = embed.embed_cached(emb, self.cache, [d["text"] for d in docs], step)
        columns = {
            "id": [d["id"] for d in docs],
            "text": [d["text"] for d in docs],
            "terms": [_terms(d) for d in docs],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), emb.dim),
            "kind": [d["kind"] for d in docs],
            "tags": [list(d.get("tags", [])) for d in docs],
            "project": [d.get("project") for d in docs],
            "by": [d["by"] for d in docs],
            "at": [d["at"] for d in docs],
            "hash": [_hash(d) for d in docs],
            "embedder": [emb.id] * len(docs),
            "doc": [json.dumps(d, ensure_ascii=False) for d in docs],
        }
        return pa.Table.from_pydict(columns, schema=self._schema(emb.dim))

    def _live_docs(self) -> dict[str, dict[str, Any]]:
        return {m.id: m.to_dict() for m in self.soul.view().memories}

    # ------------------------------------------------------------------ keeping current

    def catch_up(self, progress: Progress | None = None) -> dict[str, Any]:
        """Make the rows equal the live memories; rebuild when the table is unusable."""
        # Nothing to do, the common case of every query, needs no lock: a warm server saving its
        # snapshot (a second at 100k rows, under the lock) must not hold up recalls.
        state = read_state(self.soul)
        current = self._matrix is not None and bool(state) and state.get("updated_at") == self._seen
        if current and state.get("stamps") == log_stamps(self.soul) and state.get("embedder") == self.embedder.id:
            return dict(NOTHING_DONE)
        with self._locked():
            state = read_state(self.soul)
            stamps = log_stamps(self.soul)
            emb = self.embedder
            if state.get("updated_at") != self._seen:
                self._forget_handles()
                self._seen = state.get("updated_at")
            if state.get("embedder") != emb.id:
                return self._rebuild(stamps, progress)
            # The snapshot of the table as it is: it answers without LanceDB (not even imported)
            # when the logs are unchanged, and is updated in step with the diff when they are not.
            if self._matrix is None:
                self._read_snapshot(state)
            if state.get("stamps") == stamps and self._matrix is not None:
                return dict(NOTHING_DONE)
            # The schema check opens the table: done once per handle, not on every query.
            if not (self._table is not None or self._table_ok(emb.dim)):
                return self._rebuild(stamps, progress)
            if state.get("stamps") == stamps:
                self._load_matrix()
                return dict(NOTHING_DONE)
            result = self._apply_diff(progress)
            self._maybe_optimize(result)
            self._write_state(stamps)
            self._load_matrix()
            _release_freed_memory()
            return result

    def rebuild(self, progress: Progress | None = None) -> dict[str, Any]:
        with self._locked():
            return self._rebuild(log_stamps(self.soul), progress)

    def _table_ok(self, dim: int) -> bool:
        try:
            table = self._open_table()
            field = table.schema.field("vector")
            return int(field.type.list_size) == dim and "terms" in table.schema.names
        except Exception:  # missing or unreadable: the caller rebuilds
            self._table = None
            return False

    def _rebuild(self, stamps: dict[str, list[int]], progress: Progress | None) -> dict[str, Any]:
        docs = list(self._live_docs().values())
        data = self._rows(docs, progress)
        self._table = None
        try:
            table = self._connect().create_table(TABLE, data=data, schema=data.schema, mode="overwrite")
        except Exception:  # a corrupt directory: start from nothing
            self._db = None
            shutil.rmtree(index_dir(self.soul), ignore_errors=True)
            table = self._connect().create_table(TABLE, data=data, schema=data.schema, mode="overwrite")
        self._table = table
        from soul.vecsearch import Matrix

        self._matrix = Matrix.from_arrow(data, self.embedder.dim)
        self._optimize()
        self._write_state(stamps)
        self._save_snapshot()
        return {"added": len(docs), "updated": 0, "deleted": 0, "rebuilt": True}

    def _apply_diff(self, progress: Progress | None) -> dict[str, Any]:
        table = self._open_table()
        live = self._live_docs()
        have = table.search().select(["id", "hash"]).limit(max(1, table.count_rows())).to_arrow()
        rows = dict(zip(have["id"].to_pylist(), have["hash"].to_pylist(), strict=True))
        gone = [i for i in rows if i not in live]
        changed = [d for i, d in live.items() if i in rows and rows[i] != _hash(d)]
        new = [d for i, d in live.items() if i not in rows]
        to_delete = gone + [d["id"] for d in changed]
        for start in range(0, len(to_delete), 500):
            ids = ", ".join(_sql_str(i) for i in to_delete[start : start + 500])
            table.delete(f"id IN ({ids})")
        upserts = changed + new
        added = []
        for start in range(0, len(upserts), 5000):
            added.append(self._rows(upserts[start : start + 5000], progress))
            table.add(added[-1])
        if self._matrix is not None and (to_delete or added):
            import pyarrow as pa

            self._matrix = self._matrix.updated(to_delete, pa.concat_tables(added) if added else None)
        self.adds_since_optimize += len(upserts) + len(to_delete)
        return {"added": len(new), "updated": len(changed), "deleted": len(gone), "rebuilt": False}

    def _maybe_optimize(self, result: dict[str, Any]) -> None:
        if not (result["added"] or result["updated"] or result["deleted"]):
            return
        if self.fragments() >= OPTIMIZE_FRAGMENTS:
            self._optimize()

    def optimize(self) -> None:
        with self._locked():
            self._optimize()
            self._write_state(read_state(self.soul).get("stamps") or {})
            if self.snapshot_eager:
                self._save_snapshot()

    def _optimize(self) -> None:
        # Every older version goes at once: queries never read the table (they use the matrix or
        # its snapshot) and writers hold index.lock, so no one can be reading an old version.
        with warnings.catch_warnings():  # LanceDB warns about exactly this case; see above
            warnings.simplefilter("ignore", UserWarning)
            self._open_table().optimize(cleanup_older_than=timedelta(0))
        self.adds_since_optimize = 0
        self._optimized_fragments = self.fragments()

    def fragments(self) -> int:
        stats = self._open_table().stats()
        frags = stats["fragment_stats"] if isinstance(stats, dict) else stats.fragment_stats
        return int(frags["num_fragments"] if isinstance(frags, dict) else frags.num_fragments)

    def needs_optimize(self) -> bool:
        """More than one fragment and more than right after the last compaction (which may not reach 1).

        Read from state.json (every write records the count): opening the table just to ask would
        import LanceDB and, at 100k rows, hold ~300 MB in a warm server that has nothing to do."""
        frags = int(read_state(self.soul).get("fragments") or 0)
        return frags >= 2 and frags > self._optimized_fragments

    def _write_state(self, stamps: dict[str, Any]) -> None:
        from soul.ids import now_iso

        emb = self.embedder
        table = self._open_table()
        state = {
            "version": STATE_VERSION,
            "embedder": emb.id,
            "dim": emb.dim,
            "fallback": emb.fallback,
            "reason": emb.reason,
            "stamps": stamps,
            "rows": int(table.count_rows()),
            "fragments": self.fragments(),
            "updated_at": now_iso(),
        }
        fsutil.atomic_write(state_path(self.soul), json.dumps(state, indent=1))
        self._seen = str(state["updated_at"])
        if self._matrix is not None and len(self._matrix.ids) != state["rows"]:
            self._matrix = None  # out of step with the table: reloaded from it

    # ------------------------------------------------------------------ the in-memory side and its snapshot

    def _read_snapshot(self, state: dict[str, Any]) -> None:
        from soul.vecsearch import Matrix

        if not state:
            return
        self._matrix = Matrix.read(snapshot_path(self.soul), snapshot_version(self.soul, state))
        if self._matrix is not None:
            self._snapshot_of = state.get("updated_at")

    def _load_matrix(self) -> None:
        """The matrix for the table as it is now (held under the index lock), saved when eager."""
        from soul.vecsearch import Matrix

        if self._matrix is None:
            self._matrix = Matrix.load(self._open_table(), self.embedder.dim)
        if self.snapshot_eager:
            self._save_snapshot()

    def _save_snapshot(self) -> None:
        state = read_state(self.soul)
        if self._matrix is None or state.get("updated_at") != self._seen or self._snapshot_of == self._seen:
            return
        try:
            self._matrix.save(snapshot_path(self.soul), snapshot_version(self.soul, state))
            self._snapshot_of = self._seen
        except OSError as exc:  # a cache: failing to write it costs speed, never an answer
            if self._warn:
                self._warn(f"soul: could not save the index snapshot: {exc}")

    def save_snapshot(self) -> None:
        """For long-lived servers (`snapshot_eager = False`): write the snapshot if it is behind."""
        with self._locked():
            self._save_snapshot()

    # ------------------------------------------------------------------ searching

    def search(
        self,
        query: str,
        k: int = 10,
        kind: str | None = None,
        tag: str | None = None,
        project: str | None = None,
        since: str | None = None,
        fusion: str | None = None,
    ) -> list[dict[str, Any]]:
        """Hybrid (vector + BM25) hits, fused; near-duplicates collapsed when configured."""
        filters = (kind, tag, project, since_iso(since))
        self.catch_up()
        rows = self._query(query, k, filters, fusion)
        from soul.vecsearch import collapse, duplicate_threshold

        # Lexical vectors say only which words two texts share, not whether they mean the same:
        # with the fallback, exact duplicates are folded by the view and nothing else is.
        threshold = None if self.embedder.fallback else duplicate_threshold(self.soul.config)
        return collapse(rows, k, threshold)

    def _forget_handles(self) -> None:
        self._table = None
        self._db = None
        self._matrix = None

    def matrix(self) -> Any:
        """The in-memory side for the current table version (see soul/vecsearch.py). Immutable: a
        query holds its reference while another thread may replace `_matrix` (no lock needed)."""
        mat = self._matrix
        while mat is None:
            self.catch_up()
            mat = self._matrix
        return mat

    def _query(self, query: str, k: int, filters: tuple[str | None, ...], fusion: str | None) -> list[dict[str, Any]]:
        from soul.vecsearch import fuse

        mat = self.matrix()
        mask = mat.mask(*filters)
        limit = max(k * 3, 30)
        if not query.strip():
            fused = [(row, 0.0) for row in mat.newest(limit, mask)]
        else:
            method = fusion or FUSION
            vector = mat.top(self.embedder.embed_query(query), limit, mask)
            fts = mat.keyword(query, limit, mask)
            weight = float(method.split(":", 1)[1]) if method.startswith("linear:") else LINEAR_WEIGHT
            fused = fuse(vector, fts, "rrf" if method == "rrf" else "linear", weight, RRF_K)
        out = []
        for row, score in fused[:limit]:
            doc = mat.doc(row)
            doc["score"] = round(score, 6)
            doc["_vector"] = mat.vecs[row]
            out.append(doc)
        return out

    def vectors(self) -> tuple[list[str], npt.NDArray[np.float32]]:
        self.catch_up()
        mat = self.matrix()
        return mat.ids.tolist(), mat.vecs.copy()


def _release_freed_memory() -> None:
    """Hand freed heap back to the OS (glibc only). A catch-up at 100k memories frees hundreds of MB
    of parsed events and Arrow buffers that glibc otherwise keeps: measured, a warm server's RSS
    fell from 1.29 GB to 0.93 GB. Elsewhere this does nothing."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _skip_rest_client() -> None:
    """Register the LanceDB REST client package without running its `__init__`.

    That `__init__` builds ~370 pydantic-validated REST methods (about half of `import lancedb`, ~1 s
    of a cold `soul recall`) that a local table never calls; the model modules LanceDB does import
    still load normally as submodules."""
    import importlib.util
    import sys

    name = "lance_namespace_urllib3_client"
    if name in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return
    if spec is not None and spec.submodule_search_locations:
        sys.modules[name] = importlib.util.module_from_spec(spec)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def since_iso(since: str | None) -> str | None:
    """`--since` in the index's timestamp format; a bad date is a usage error."""
    if not since:
        return None
    from soul.ids import iso_from_ms, parse_iso

    try:
        when = parse_iso(since)
    except ValueError:
        raise UsageError(f"invalid --since {since!r}", hint="use a date like 2026-01-31") from None
    return iso_from_ms(int(when.timestamp() * 1000))


# ---------------------------------------------------------------------- for other modules


def memory_vectors(soul: Soul) -> tuple[list[str], npt.NDArray[np.float32]]:
    """Ids and L2-normalised vectors of every live memory (the index is caught up first)."""
    index: SoulIndex = soul.index()
    return index.vectors()


def embed_texts(soul: Soul, texts: list[str]) -> npt.NDArray[np.float32]:
    """L2-normalised vectors for `texts` with the soul's embedder (cached)."""
    index: SoulIndex = soul.index()
    return embed.embed_cached(index.embedder, index.cache, texts)


def doctor_checks(soul: Soul) -> list[tuple[str, bool, str, str | None]]:
    """(name, ok, message, fix) for `soul doctor`; cheap: no model load, no LanceDB."""
    checks: list[tuple[str, bool, str, str | None]] = []
    _, path = embed.model_settings(soul)
    if path is not None and not (path.is_dir() and any(path.glob("*.onnx"))):
        checks.append(("embedding model", False, f"[index] model_path {path} has no .onnx model", "fix model_path"))
    info = status(soul)
    if info.get("fallback"):
        checks.append(
            (
                "embedder",
                False,
                f"LEXICAL FALLBACK in use (exact words only): {info.get('fallback_reason')}",
                "set [index] model_path to a local ONNX folder, or go online once so the model downloads",
            )
        )
    elif info["built"]:
        checks.append(("embedder", True, f"{info['embedder']}", None))
    if not info["built"]:
        checks.append(("index", True, "not built yet (built on the first recall)", "soul index rebuild"))
    else:
        stale = " (behind the logs; caught up on the next recall)" if info["stale"] else ""
        checks.append(("index", True, f"{info['rows']} rows, {info['fragments']} fragments{stale}", None))
    return checks
