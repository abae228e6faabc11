"""The in-memory side of hybrid recall, and the fusion of its two legs.

`Matrix` holds the index's vectors, filter columns, row JSON and BM25 postings (soul/bm25.py) as
numpy arrays. Brute force over L2-normalised vectors is exact and, measured at 1k-10k memories,
about ten times faster than LanceDB's flat vector search in this process (bench/bench_recall.py).

A `Matrix` is built from the LanceDB table once, then follows each write of this process
(`updated`), and is saved as a snapshot (`save`/`read`, one uncompressed `.npz`, no pickles) so
that a cold `soul recall` answers without importing lancedb at all. The snapshot names the table
version it describes (`state.json`'s `updated_at` plus a stamp of the table's manifests); a snapshot
for any other version is ignored.

`fuse` reproduces LanceDB's `LinearCombinationReranker` (min-max normalised scores, missing = 0)
and `RRFReranker` exactly, so the fusion measured with those rerankers is the one served.
`collapse` folds near-duplicate hits (cosine >= `[index] duplicate_threshold`) into the best one.
Invariant: a `Matrix` describes exactly one table version and is never mutated (only its tag-mask cache).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from soul.bm25 import Bm25

Vec = npt.NDArray[np.float32]
Strs = npt.NDArray[np.str_]
SNAPSHOT_FORMAT = 1
TAG_SEP = "\x1f"
COLUMNS = ["id", "vector", "kind", "project", "at", "tags", "doc", "terms"]


def table_stamp(lance_dir: Path) -> list[list[Any]]:
    """Name, size and mtime of each manifest: any write to the table changes it (one scandir)."""
    try:
        with os.scandir(lance_dir / "_versions") as entries:
            stamp = [[e.name, e.stat().st_size, e.stat().st_mtime_ns] for e in entries if e.is_file()]
    except OSError:
        return []
    return sorted(stamp)


@dataclass
class Matrix:
    ids: Strs
    vecs: Vec
    kinds: Strs
    projects: Strs
    ats: Strs
    tags: Strs  # each row's tags joined by TAG_SEP
    blob: npt.NDArray[np.uint8]  # the rows' JSON, back to back
    offs: npt.NDArray[np.int64]  # row i is blob[offs[i]:offs[i + 1]]
    bm25: Bm25
    _tag_masks: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)
    _vbuf: _VecBuffer | None = None

    @classmethod
    def load(cls, table: Any, dim: int) -> Matrix:
        data = table.search().select(COLUMNS).limit(max(1, table.count_rows())).to_arrow()
        return cls.from_arrow(data, dim)

    @classmethod
    def from_arrow(cls, data: Any, dim: int) -> Matrix:
        """From an Arrow table with COLUMNS (the index's own rows)."""
        ids = data["id"].to_pylist()
        if ids:
            flat = data["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
            vecs = np.ascontiguousarray(flat.reshape(len(ids), -1), dtype=np.float32)
        else:
            vecs = np.zeros((0, dim), dtype=np.float32)
        docs = [d.encode("utf-8") for d in data["doc"].to_pylist()]
        offs = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum([len(d) for d in docs], out=offs[1:])
        return cls(
            ids=_strs(ids),
            vecs=vecs,
            kinds=_strs(data["kind"].to_pylist()),
            projects=_strs([p or "" for p in data["project"].to_pylist()]),
            ats=_strs(data["at"].to_pylist()),
            tags=_strs([TAG_SEP.join(t or []) for t in data["tags"].to_pylist()]),
            blob=np.frombuffer(b"".join(docs), dtype=np.uint8),
            offs=offs,
            bm25=Bm25.build(data["terms"].to_pylist()),
        )

    def updated(self, deleted: list[str], added: Any) -> Matrix:
        """This matrix without the rows of `deleted` ids, plus the Arrow rows `added` (same columns).

        Each column is copied once (at 100k rows the vectors alone are 150 MB), and not at all
        when nothing changes it."""
        keep = ~np.isin(self.ids, np.array(deleted, dtype=np.str_)) if deleted else None
        extra = Matrix.from_arrow(added, self.vecs.shape[1]) if added is not None and added.num_rows else None
        lengths = np.diff(self.offs)
        blob, bm25 = self.blob, self.bm25
        if keep is not None:
            blob = blob[np.repeat(keep, lengths)]
            lengths = lengths[keep]
            bm25 = bm25.subset(keep)
        vecs, vbuf = _grown(self, keep, None if extra is None else extra.vecs)
        cols: dict[str, Any] = {"vecs": vecs}
        for name in ("ids", "kinds", "projects", "ats", "tags"):
            mine = getattr(self, name)
            if extra is None:
                cols[name] = mine if keep is None else mine[keep]
            else:
                cols[name] = np.concatenate([mine if keep is None else mine[keep], getattr(extra, name)])
        if extra is not None:
            blob = np.concatenate([blob, extra.blob])
            lengths = np.concatenate([lengths, np.diff(extra.offs)])
            bm25 = bm25.extend(added["terms"].to_pylist())
        offs = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offs[1:])
        return Matrix(**cols, blob=blob, offs=offs, bm25=bm25, _vbuf=vbuf)

    # ------------------------------------------------------------------ snapshot

    def save(self, path: Path, version: dict[str, Any]) -> None:
        """Write the snapshot atomically (temp + fsync + rename). The caller holds the index lock,
        so any temp file left here is a crashed writer's (up to hundreds of MB): removed first."""
        import tempfile

        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        meta = {"format": SNAPSHOT_FORMAT, **version}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            savez: Any = np.savez  # its stubs read **arrays as its own keyword flags
            with os.fdopen(fd, "wb") as handle:
                savez(
                    handle,
                    meta=np.array(json.dumps(meta, sort_keys=True)),
                    ids=self.ids,
                    vecs=self.vecs,
                    kinds=self.kinds,
                    projects=self.projects,
                    ats=self.ats,
                    tags=self.tags,
                    blob=self.blob,
                    offs=self.offs,
                    **self.bm25.arrays("bm25_"),
                )
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def read(cls, path: Path, version: dict[str, Any]) -> Matrix | None:
        """The snapshot at `path` if it describes exactly `version`; None if missing, stale or unreadable."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if json.loads(str(data["meta"])) != _expected_meta(version):
                    return None
                names = ("ids", "vecs", "kinds", "projects", "ats", "tags", "blob", "offs")
                cols = {name: data[name] for name in names}
                return cls(**cols, bm25=Bm25.from_arrays(data, "bm25_"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @staticmethod
    def describes(path: Path, version: dict[str, Any]) -> bool:
        """Whether the snapshot at `path` is the one `read` would accept, without loading its arrays."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return bool(json.loads(str(data["meta"])) == _expected_meta(version))
        except (OSError, ValueError, KeyError, TypeError):
            return False

    # ------------------------------------------------------------------ queries

    def mask(
        self, kind: str | None, tag: str | None, project: str | None, since_iso: str | None
    ) -> npt.NDArray[np.bool_] | None:
        """Rows passing the filters (None = all rows)."""
        out: npt.NDArray[np.bool_] | None = None

        def both(a: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
            return a if out is None else out & a

        if kind:
            out = both(self.kinds == kind)
        if project:
            out = both(self.projects == project)
        if since_iso:
            out = both(self.ats >= since_iso)
        if tag:
            if tag not in self._tag_masks:
                self._tag_masks[tag] = np.array([tag in t.split(TAG_SEP) for t in self.tags.tolist()], dtype=bool)
            out = both(self._tag_masks[tag])
        return out

    def top(self, qvec: Vec, limit: int, mask: npt.NDArray[np.bool_] | None) -> list[tuple[int, float]]:
        """(row, distance) of the nearest rows, nearest first; distance = 2 - 2cos (LanceDB's L2²)."""
        if not len(self.ids):
            return []
        sims = self.vecs @ qvec
        if mask is not None:
            sims = np.where(mask, sims, -np.inf)
        n = min(limit, int(np.count_nonzero(np.isfinite(sims))))
        if n <= 0:
            return []
        part = np.argpartition(-sims, n - 1)[:n]
        order = part[np.argsort(-sims[part], kind="stable")]
        return [(int(i), float(2.0 - 2.0 * sims[i])) for i in order]

    def keyword(self, query: str, limit: int, mask: npt.NDArray[np.bool_] | None) -> list[tuple[int, float]]:
        """(row, BM25 score) of the best keyword matches, best first."""
        return self.bm25.query(query, limit, mask)

    def newest(self, limit: int, mask: npt.NDArray[np.bool_] | None) -> list[int]:
        rows = np.arange(len(self.ids)) if mask is None else np.flatnonzero(mask)
        order = np.lexsort((self.ids[rows], self.ats[rows]))[::-1][:limit]
        return [int(rows[i]) for i in order]

    def doc(self, row: int) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.blob[self.offs[row] : self.offs[row + 1]].tobytes())
        return data


@dataclass
class _VecBuffer:
    """Spare rows behind `Matrix.vecs`: copying 150 MB of fresh memory for each remember cost ~0.3 s
    at 100k rows. Only the matrix whose rows end at `fill` may append (older matrices never see
    rows past their own end, so appending changes nothing they can see)."""

    array: Vec
    fill: int


def _grown(mat: Matrix, keep: npt.NDArray[np.bool_] | None, more: Vec | None) -> tuple[Vec, _VecBuffer | None]:
    vecs = mat.vecs
    if keep is None and more is None:
        return vecs, mat._vbuf
    extra = more if more is not None else vecs[:0]
    buf = mat._vbuf
    if keep is None and buf is not None and buf.fill == len(vecs) and len(buf.array) >= len(vecs) + len(extra):
        buf.array[buf.fill : buf.fill + len(extra)] = extra
        buf.fill += len(extra)
        return buf.array[: buf.fill], buf
    base = vecs if keep is None else vecs[keep]
    n = len(base) + len(extra)
    array = np.empty((n + max(1024, n // 4), vecs.shape[1]), dtype=np.float32)
    array[: len(base)] = base
    array[len(base) : n] = extra
    return array[:n], _VecBuffer(array, n)


def _expected_meta(version: dict[str, Any]) -> dict[str, Any]:
    # Through JSON, as it was written: tuples in the version compare equal to the lists read back.
    return {"format": SNAPSHOT_FORMAT, **json.loads(json.dumps(version))}


def _strs(values: list[str]) -> Strs:
    return np.array(values, dtype=np.str_) if values else np.zeros(0, dtype="<U1")


def _minmax(values: list[float]) -> list[float]:
    # Same as LanceDB's `_normalize_scores`: a constant list becomes all zeros.
    if not values:
        return []
    low, high = min(values), max(values)
    span = high - low
    if span != 0:
        return [(v - low) / span for v in values]
    return [v - low for v in values] if high != 0 else list(values)


def fuse(
    vector: list[tuple[int, float]], fts: list[tuple[int, float]], method: str, weight: float, rrf_k: int
) -> list[tuple[int, float]]:
    """Fused (row, score), best first. `vector` holds distances, `fts` BM25 scores, each best first."""
    scores: dict[int, float] = {}
    if method == "rrf":
        for hits in (vector, fts):
            for rank, (row, _) in enumerate(hits, 1):
                scores[row] = scores.get(row, 0.0) + 1.0 / (rank + rrf_k)
    elif not fts:
        for row, dist in zip([r for r, _ in vector], _minmax([d for _, d in vector]), strict=True):
            scores[row] = 1.0 - dist
    elif not vector:
        for row, score in zip([r for r, _ in fts], _minmax([s for _, s in fts]), strict=True):
            scores[row] = score
    else:
        vec_score = {r: 1.0 - d for r, d in zip([r for r, _ in vector], _minmax([d for _, d in vector]), strict=True)}
        fts_score = dict(zip([r for r, _ in fts], _minmax([s for _, s in fts]), strict=True))
        for row in list(vec_score) + [r for r in fts_score if r not in vec_score]:
            scores[row] = weight * vec_score.get(row, 0.0) + (1 - weight) * fts_score.get(row, 0.0)
    return sorted(scores.items(), key=lambda item: -item[1])


def duplicate_threshold(config: dict[str, Any]) -> float | None:
    value = config.get("index", {}).get("duplicate_threshold")
    if value is None or isinstance(value, bool):  # `false` in soul.toml turns collapsing off
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def collapse(rows: list[dict[str, Any]], k: int, threshold: float | None) -> list[dict[str, Any]]:
    """Fold hits whose vectors have cosine >= threshold into the best-ranked one (`also`, `count`).

    Similarity alone folds "prefers tabs" into "prefers spaces" (cosine ~0.9), so a pair that
    `dedupe.distinct_facts` tells apart (numbers, days, negation, one swapped slot) is never folded."""
    from soul.dedupe import distinct_facts

    kept: list[dict[str, Any]] = []
    kept_vecs: list[Any] = []
    for row in rows:
        vec = np.asarray(row.pop("_vector"), dtype=np.float32)
        if threshold is not None and kept_vecs:
            sims = np.stack(kept_vecs) @ vec
            target = next(
                (
                    kept[i]
                    for i in np.argsort(-sims)
                    if float(sims[i]) >= threshold and not distinct_facts(kept[i]["text"], row["text"])
                ),
                None,
            )
            if target is not None:
                target.setdefault("also", [])
                target["also"].append(row["id"])
                target["count"] = target.get("count", 1) + 1
                continue
        if len(kept) < k:
            kept.append(row)
            kept_vecs.append(vec)
    return kept
