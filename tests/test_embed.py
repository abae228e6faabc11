"""Embedders: the lexical fallback, the real model from a local folder, fail-fast loading, the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from soul import embed


def _use_model(home: Path, model: str, model_path: Path | str | None) -> None:
    text = (home / "soul.toml").read_text(encoding="utf-8")
    line = f'model = "{model}"\n' + (f'model_path = "{model_path}"\n' if model_path is not None else "")
    (home / "soul.toml").write_text(text.replace('model = "BAAI/bge-small-en-v1.5"\n', line), encoding="utf-8")


def test_lexical_is_deterministic_normalised_and_matches_words() -> None:
    a = embed.LexicalEmbedder()
    b = embed.LexicalEmbedder()
    texts = ["My dentist is Dr. Alvarez", "I prefer tabs over spaces", ""]
    va, vb = a.embed(texts), b.embed(texts)
    assert va.shape == (3, embed.LEXICAL_DIM) and va.dtype == np.float32
    assert np.array_equal(va, vb)
    assert np.allclose(np.linalg.norm(va[:2], axis=1), 1.0)
    assert not va[2].any()  # empty text: a zero vector, not NaN
    q = a.embed_query("alvarez")
    assert float(va[0] @ q) > float(va[1] @ q) + 0.1


@pytest.mark.semantic
def test_real_model_from_folder(core: Any, model_dir: Path) -> None:
    _use_model(core.home, "sentence-transformers/all-MiniLM-L6-v2", model_dir)
    core._config = None
    emb = embed.load_embedder(core)
    assert not emb.fallback and emb.id == "fastembed:sentence-transformers/all-MiniLM-L6-v2"
    docs = emb.embed(["My dentist is Dr. Alvarez", "The staging server restarts at 3am"])
    q = emb.embed_query("who looks after my teeth")
    assert docs.shape == (2, emb.dim) and np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    assert float(docs[0] @ q) > float(docs[1] @ q)


@pytest.mark.semantic
def test_large_batches_use_an_all_core_session_only_while_they_run(core: Any, model_dir: Path) -> None:
    _use_model(core.home, "sentence-transformers/all-MiniLM-L6-v2", model_dir)
    core._config = None
    emb = embed.load_embedder(core)
    texts = [f"memory number {i} about the staging server" for i in range(embed.BULK_MIN)]
    single = emb.embed(texts)
    sessions = []
    real_embed = emb.embed

    def spy(batch: Any) -> Any:
        sessions.append(emb._bulk_model)
        return real_embed(batch)

    emb.embed = spy
    bulk = embed.embed_cached(emb, None, texts)
    assert sessions and all(s is not None and s is not emb._model for s in sessions)
    assert emb._bulk_model is None  # released: a long-lived process keeps one session
    assert np.allclose(bulk, single, atol=1e-5)  # same model, same vectors
    sessions.clear()
    embed.embed_cached(emb, None, texts[:3])  # a small batch: the one-thread session
    assert sessions == [None]


def test_bad_model_folder_falls_back_with_a_warning_naming_it(core: Any, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "model.onnx").write_bytes(b"this is not onnx")
    _use_model(core.home, "sentence-transformers/all-MiniLM-L6-v2", bad)
    core._config = None
    messages: list[str] = []
    emb = embed.load_embedder(core, warn=messages.append)
    assert emb.fallback and emb.id == embed.LEXICAL_ID
    assert len(messages) == 1 and str(bad) in messages[0] and "fallback" in messages[0]
    assert emb.reason and str(bad) in emb.reason


def test_default_model_offline_fails_fast_to_fallback(core: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUL_OFFLINE", "1")
    messages: list[str] = []
    emb = embed.load_embedder(core, warn=messages.append)
    assert emb.fallback
    assert "BAAI/bge-small-en-v1.5" in (emb.reason or "")


class _Counting:
    """A real lexical embedder that counts the texts it is asked to embed."""

    fallback = True
    reason = None

    def __init__(self) -> None:
        self.inner = embed.LexicalEmbedder()
        self.id, self.dim = self.inner.id, self.inner.dim
        self.seen: list[str] = []

    def embed(self, texts: Any) -> Any:
        self.seen += list(texts)
        return self.inner.embed(texts)

    def embed_query(self, text: str) -> Any:
        return self.inner.embed_query(text)


def test_cache_embeds_each_text_once_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    counting = _Counting()
    first = embed.embed_cached(counting, embed.EmbeddingCache(path), ["a b", "c d"])
    again = embed.embed_cached(counting, embed.EmbeddingCache(path), ["c d", "e f", "a b"])
    assert counting.seen == ["a b", "c d", "e f"]
    assert np.array_equal(first[0], again[2]) and np.array_equal(first[1], again[0])
    assert embed.EmbeddingCache(path).count() == 3


def test_cache_key_depends_on_model_and_text() -> None:
    assert embed.cache_key("m1", "x") != embed.cache_key("m2", "x")
    assert embed.cache_key("m1", "x") != embed.cache_key("m1", "y")


def test_corrupt_cache_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"garbage, not sqlite" * 100)
    vecs = embed.embed_cached(embed.LexicalEmbedder(), embed.EmbeddingCache(path), ["hello"])
    assert vecs.shape == (1, embed.LEXICAL_DIM)
    assert embed.EmbeddingCache(path).count() == 1
