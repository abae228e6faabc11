"""Embedders: turn texts into L2-normalised float32 vectors, with a persistent cache.

`load_embedder(soul)` returns the fastembed model named by soul.toml `[index] model` (loaded from
`[index] model_path` when set), or, when no model can be loaded, the deterministic `LexicalEmbedder`
after one clear warning. Every embedder has an `id` naming the model, and that id is recorded in the
index, so a later change of embedder (e.g. the real model becomes available) triggers a rebuild.

Invariants: loading never hangs offline (only the default model may be downloaded, once, and only
when the hub answers quickly); `EmbeddingCache` keys are sha256(embedder id, text), so a rebuild
re-embeds only texts the cache has never seen.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from soul.core import Soul

    Matrix = npt.NDArray[np.float32]

LEXICAL_DIM = 512
LEXICAL_ID = f"lexical-hash-v1-{LEXICAL_DIM}"
# A failed download is not retried for this long: a recall must not probe the network every time.
DOWNLOAD_RETRY_AFTER = 6 * 3600
_WORD = re.compile(r"\w+", re.UNICODE)
_warned: set[str] = set()
# Measured on 2 cores (docs/search.md): a one-thread ONNX session embeds a query in ~6 ms where the
# default (all cores) takes ~9 ms, and its spinning worker threads then slow the numpy search that
# follows by 2-3x. Batches of at least BULK_MIN texts get a second, all-core session for their
# duration: twice the throughput (180 vs 88 texts/s), worth creating it (~0.3 s).
QUERY_THREADS = 1
BULK_MIN = 64


class Embedder(Protocol):
    id: str
    dim: int
    fallback: bool
    reason: str | None

    def embed(self, texts: Sequence[str]) -> Matrix: ...

    def embed_query(self, text: str) -> Matrix: ...


class LexicalEmbedder:
    """Hashed word and character-trigram features (signed, sublinear tf), L2-normalised.

    Deterministic across processes and machines (blake2b, not `hash()`); shares no meaning between
    words, but exact words and close spellings still score high, which is what the fallback promises."""

    fallback = True

    def __init__(self, reason: str | None = None, dim: int = LEXICAL_DIM) -> None:
        self.dim = dim
        self.id = LEXICAL_ID if dim == LEXICAL_DIM else f"lexical-hash-v1-{dim}"
        self.reason = reason

    def _features(self, text: str) -> dict[int, float]:
        counts: dict[int, float] = {}
        for word in _WORD.findall(text.casefold()):
            grams = [f"w:{word}"]
            padded = f"<{word}>"
            grams += [f"c:{padded[i : i + 3]}" for i in range(max(1, len(padded) - 2))]
            for gram in grams:
                digest = hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                slot = value % self.dim
                sign = 1.0 if (value >> 63) & 1 else -1.0
                # Whole words weigh more than their trigrams: an exact word match must dominate.
                counts[slot] = counts.get(slot, 0.0) + sign * (2.0 if gram[0] == "w" else 0.5)
        return counts

    def embed(self, texts: Sequence[str]) -> Matrix:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for slot, value in self._features(text).items():
                out[row, slot] = math.copysign(math.log1p(abs(value)), value)
        return _normalise(out)

    def embed_query(self, text: str) -> Matrix:
        row: Matrix = self.embed([text])[0]
        return row


class FastEmbedder:
    """A fastembed `TextEmbedding`; `query_embed` for queries (some models prefix them)."""

    fallback = False
    reason: str | None = None

    def __init__(self, model: str, model_path: Path | None) -> None:
        self.model_name = model
        self.model_path = model_path
        self.id = f"fastembed:{model}"
        self._model = _load_fastembed(model, model_path, QUERY_THREADS)
        self._bulk_model: Any = None
        self.dim = int(self.embed(["dimension probe"]).shape[1])
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> Matrix:
        import numpy as np

        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        model = self._bulk_model or self._model
        vectors = list(model.embed(list(texts), batch_size=64))
        return _normalise(np.asarray(vectors, dtype=np.float32))

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """Embed with every core inside this block; the session is dropped after, so a long-lived
        process keeps only the one-thread session (and its memory)."""
        if (os.cpu_count() or 1) < 2 or self._bulk_model is not None:
            yield
            return
        try:
            self._bulk_model = _load_fastembed(self.model_name, self.model_path, None)
        except Exception:  # the one-thread session still works: slower, never wrong
            self._bulk_model = None
        try:
            yield
        finally:
            self._bulk_model = None

    def embed_query(self, text: str) -> Matrix:
        import numpy as np

        with self._lock:
            vector = next(iter(self._model.query_embed(text)))
        row: Matrix = _normalise(np.asarray([vector], dtype=np.float32))[0]
        return row


def _normalise(matrix: Matrix) -> Matrix:
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Matrix = (matrix / norms).astype(np.float32)
    return out


# ---------------------------------------------------------------------- loading


def model_settings(soul: Soul) -> tuple[str, Path | None]:
    """`[index] model` and `model_path` (relative paths are relative to the soul)."""
    index = soul.config.get("index", {})
    model = str(index.get("model") or "BAAI/bge-small-en-v1.5")
    raw = index.get("model_path")
    if not raw:
        return model, None
    path = Path(str(raw)).expanduser()
    return model, path if path.is_absolute() else (soul.home / path).resolve()


def expected_id(soul: Soul) -> str:
    """The id of the embedder soul.toml asks for (what a loaded real model would be called)."""
    return f"fastembed:{model_settings(soul)[0]}"


def load_embedder(soul: Soul, warn: Callable[[str], None] | None = None) -> Embedder:
    """The configured model, or the lexical fallback (after one warning naming what failed)."""
    model, path = model_settings(soul)
    if os.environ.get("SOUL_EMBEDDER") == "lexical":
        return LexicalEmbedder("SOUL_EMBEDDER=lexical")
    try:
        return FastEmbedder(model, path)
    except Exception as exc:  # any failure to load a model means: use the fallback
        where = f" from {path}" if path else ""
        reason = f"could not load embedding model {model}{where}: {_short(exc)}"
    if path is None:
        _note_download_failure(soul, reason)
    message = f"soul: warning: {reason}; using the lexical fallback (exact words only, no meaning)"
    if message not in _warned:
        _warned.add(message)
        (warn or _stderr)(message)
    return LexicalEmbedder(reason)


def _stderr(message: str) -> None:
    sys.stderr.write(message + "\n")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def model_cache_dir() -> Path:
    env = os.environ.get("FASTEMBED_CACHE_PATH")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "soul" / "fastembed"


def _load_fastembed(model: str, path: Path | None, threads: int | None) -> Any:
    _quiet_fastembed()
    from fastembed import TextEmbedding

    cache = str(model_cache_dir())
    if path is not None:
        if not (path / "model.onnx").is_file() and not any(path.glob("*.onnx")):
            raise FileNotFoundError(f"no .onnx file in {path}")
        return TextEmbedding(
            model_name=model, specific_model_path=str(path), cache_dir=cache, local_files_only=True, threads=threads
        )
    try:
        return TextEmbedding(model_name=model, cache_dir=cache, local_files_only=True, threads=threads)
    except Exception:  # not cached yet: maybe download it below
        if not _download_allowed():
            raise
    return TextEmbedding(model_name=model, cache_dir=cache, threads=threads)


def _quiet_fastembed() -> None:
    # fastembed logs every failed cache probe as ERROR through loguru; soul reports one warning itself.
    try:
        from loguru import logger

        logger.disable("fastembed")
    except ImportError:
        pass


def _download_allowed() -> bool:
    """One download of the default model is fine on a connected machine; offline it must fail fast."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    if os.environ.get("SOUL_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    marker = model_cache_dir() / "download-failed"
    try:
        if time.time() - marker.stat().st_mtime < DOWNLOAD_RETRY_AFTER:
            return False
    except OSError:
        pass
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=1.5).close()
    except OSError:
        return False
    return True


def _note_download_failure(soul: Soul, reason: str) -> None:
    del soul
    marker = model_cache_dir() / "download-failed"
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(reason + "\n", encoding="utf-8")
    except OSError:
        pass


# ---------------------------------------------------------------------- cache


def cache_key(embedder_id: str, text: str) -> bytes:
    return hashlib.sha256(embedder_id.encode("utf-8") + b"\x1f" + text.encode("utf-8")).digest()


class EmbeddingCache:
    """sha256(embedder id, text) -> float32 vector, in `.soul/embeddings.sqlite`.

    Derived data: deleting the file only costs re-embedding. Safe for several processes (sqlite)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = self._open()
            except sqlite3.DatabaseError:
                # A corrupt cache is only lost work: start a new one.
                self.path.unlink(missing_ok=True)
                self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS vec (key BLOB PRIMARY KEY, dim INTEGER, data BLOB)")
        return db

    def get_many(self, keys: list[bytes]) -> dict[bytes, Matrix]:
        import numpy as np

        found: dict[bytes, Matrix] = {}
        db = self._conn()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, _dim, data in db.execute(f"SELECT key, dim, data FROM vec WHERE key IN ({marks})", chunk):
                found[bytes(key)] = np.frombuffer(data, dtype=np.float32)
        return found

    def put_many(self, items: list[tuple[bytes, Matrix]]) -> None:
        if not items:
            return
        db = self._conn()
        with db:
            db.executemany(
                "INSERT OR REPLACE INTO vec (key, dim, data) VALUES (?, ?, ?)",
                [(key, int(vec.shape[0]), vec.astype("float32").tobytes()) for key, vec in items],
            )

    def count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM vec").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def embed_cached(
    embedder: Embedder,
    cache: EmbeddingCache | None,
    texts: Sequence[str],
    progress: Callable[[int], None] | None = None,
    batch: int = 256,
) -> Matrix:
    """Vectors for `texts`, taking known ones from the cache and storing the new ones."""
    import numpy as np

    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    keys = [cache_key(embedder.id, t) for t in texts]
    known = cache.get_many(keys) if cache is not None else {}
    missing: list[int] = []
    for i, key in enumerate(keys):
        vec = known.get(key)
        if vec is not None and vec.shape[0] == embedder.dim:
            out[i] = vec
        else:
            missing.append(i)
    if progress and len(texts) > len(missing):
        progress(len(texts) - len(missing))
    bulk = getattr(embedder, "bulk", None)
    with bulk() if bulk is not None and len(missing) >= BULK_MIN else contextlib.nullcontext():
        for start in range(0, len(missing), batch):
            idx = missing[start : start + batch]
            vecs = embedder.embed([texts[i] for i in idx])
            out[idx] = vecs
            if cache is not None:
                cache.put_many([(keys[i], vecs[j]) for j, i in enumerate(idx)])
            if progress:
                progress(len(idx))
    return out


def describe(embedder: Embedder) -> dict[str, Any]:
    return {"id": embedder.id, "dim": embedder.dim, "fallback": embedder.fallback, "reason": embedder.reason}
