"""The keyword leg of hybrid recall: BM25 in memory, scored the way LanceDB's native full-text index scores.

Why not LanceDB's own FTS query: measured at 10k memories it cost ~6 ms per query plus contention from
its async runtime threads on a 2-core machine (numpy and ONNX slowed by 2-10x right after it), and a
cold process paid 1-3 s to import lancedb just to ask it. The postings below are a few numpy arrays
kept next to the vectors (soul/vecsearch.py) and saved with them.

Parity with LanceDB (`create_fts_index(use_tantivy=False)` defaults), measured and checked by
tests/test_bm25.py against a real LanceDB table:
- analysis: split on runs of alphanumeric characters, drop tokens of 40+ bytes, lowercase, Snowball
  English stem (py_rust_stemmers wraps the same rust-stemmers crate tantivy uses), drop stop words
  (NLTK's English list, matched against the *stem*, which is why "does" or "because" survive), then
  fold accents to ASCII;
- score: sum over query tokens (a repeated query token counts again) of
  idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)), idf = ln(1 + (N - n + 0.5) / (n + 0.5)),
  k1 = 1.2, b = 0.75; N, n and avgdl over all rows with at least one term, before any filter.
Invariant: a `Bm25` is immutable; `subset` and `extend` return new ones.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

K1 = 1.2
B = 0.75
MAX_TOKEN_BYTES = 40
_TOKEN = re.compile(r"[^\W_]+")
# NLTK's English stop words reduced to the stems LanceDB actually drops (it stems first, then filters).
_STOP_WORDS = (
    "a about after again against ain all am an and are aren as at be been below between both but by can "
    "couldn d did didn do doesn don down each few for from further had hadn has hasn have haven he her here "
    "herself him himself his how i if in into is isn it itself just ll m ma me mightn more most mustn my "
    "myself needn no nor not now o of off on or other our out over own re s same shan she should shouldn so "
    "some such t than that the their them then there these they this those through to too under until up ve "
    "was wasn we were weren what when where which while who whom will with won wouldn y you your "
    "yourself"
)
STOP_STEMS = frozenset(_STOP_WORDS.split())
_CACHE_MAX = 200_000
_terms: dict[str, str | None] = {}
_stemmer: Any = None


def _term(token: str) -> str | None:
    """The indexed term for one raw token, or None when LanceDB would drop it (cached: the vocabulary is small)."""
    global _stemmer
    hit = _terms.get(token, "")
    if hit != "":
        return hit
    if _stemmer is None:
        from py_rust_stemmers import SnowballStemmer

        _stemmer = SnowballStemmer("english")
    term: str | None = None
    if len(token.encode("utf-8")) < MAX_TOKEN_BYTES:
        stem = _stemmer.stem_word(token.lower())
        if stem not in STOP_STEMS:
            term = stem if stem.isascii() else _fold(stem)
    if len(_terms) >= _CACHE_MAX:
        _terms.clear()
    _terms[token] = term
    return term


def _fold(text: str) -> str:
    # Accents go, other scripts stay (tantivy's ASCII folding leaves what has no ASCII form).
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def analyze(text: str) -> list[str]:
    """The terms of `text`, in order, repeats kept."""
    out = []
    for token in _TOKEN.findall(text):
        term = _term(token)
        if term is not None:
            out.append(term)
    return out


Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Bm25:
    """Postings in CSR form: rows[ptr[t]:ptr[t+1]] hold term t, with counts in tfs."""

    vocab: dict[str, int]
    ptr: Ints
    rows: npt.NDArray[np.int32]
    tfs: Floats
    doclen: Floats

    @classmethod
    def build(cls, texts: Sequence[str]) -> Bm25:
        return cls._from_triples({}, [], [], [], [], texts, 0)

    @classmethod
    def _from_triples(
        cls,
        vocab: dict[str, int],
        term_ids: list[int] | Ints,
        rows: list[int] | npt.NDArray[np.integer[Any]],
        tfs: list[float] | Floats,
        doclen: list[float] | Floats,
        texts: Sequence[str],
        first_row: int,
    ) -> Bm25:
        vocab = dict(vocab)
        new_terms: list[int] = []
        new_rows: list[int] = []
        new_tfs: list[int] = []
        new_len: list[int] = []
        for row, text in enumerate(texts, first_row):
            counts = Counter(analyze(text))
            new_len.append(sum(counts.values()))
            for term, n in counts.items():
                new_terms.append(vocab.setdefault(term, len(vocab)))
                new_rows.append(row)
                new_tfs.append(n)
        all_terms = np.concatenate([np.asarray(term_ids, dtype=np.int64), np.asarray(new_terms, dtype=np.int64)])
        all_rows = np.concatenate([np.asarray(rows, dtype=np.int32), np.asarray(new_rows, dtype=np.int32)])
        all_tfs = np.concatenate([np.asarray(tfs, dtype=np.float32), np.asarray(new_tfs, dtype=np.float32)])
        order = np.argsort(all_terms, kind="stable")
        counts_per_term = np.bincount(all_terms, minlength=len(vocab))
        ptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(counts_per_term, out=ptr[1:])
        return cls(
            vocab=vocab,
            ptr=ptr,
            rows=all_rows[order],
            tfs=all_tfs[order],
            doclen=np.concatenate([np.asarray(doclen, dtype=np.float32), np.asarray(new_len, dtype=np.float32)]),
        )

    def _triples(self) -> tuple[Ints, npt.NDArray[np.int32], Floats]:
        term_ids = np.repeat(np.arange(len(self.vocab), dtype=np.int64), np.diff(self.ptr))
        return term_ids, self.rows, self.tfs

    def extend(self, texts: Sequence[str]) -> Bm25:
        """These postings plus `texts` as the next rows."""
        term_ids, rows, tfs = self._triples()
        return self._from_triples(self.vocab, term_ids, rows, tfs, self.doclen, texts, len(self.doclen))

    def subset(self, keep: npt.NDArray[np.bool_]) -> Bm25:
        """Only the rows where `keep` is true, renumbered in order (terms left without rows stay, unused)."""
        term_ids, rows, tfs = self._triples()
        new_row = np.cumsum(keep, dtype=np.int64) - 1
        live = keep[rows]
        return self._from_triples(
            self.vocab, term_ids[live], new_row[rows[live]], tfs[live], self.doclen[keep], [], int(keep.sum())
        )

    def query(self, text: str, limit: int, mask: npt.NDArray[np.bool_] | None) -> list[tuple[int, float]]:
        """(row, score) of the best `limit` rows containing any query term, best first."""
        # Rows without a single term (empty, or only stop words) are not in LanceDB's index: they
        # count neither in N nor in the average length.
        n_docs = int(np.count_nonzero(self.doclen))
        if not n_docs:
            return []
        avg = float(self.doclen.sum()) / n_docs
        scores = np.zeros(len(self.doclen), dtype=np.float64)
        hit = np.zeros(len(self.doclen), dtype=bool)  # cheaper than np.unique over long postings
        for term in analyze(text):
            t = self.vocab.get(term)
            if t is None:
                continue
            start, end = int(self.ptr[t]), int(self.ptr[t + 1])
            if start == end:
                continue
            rows = self.rows[start:end]
            tf = self.tfs[start:end].astype(np.float64)
            n = end - start
            idf = np.log(1.0 + (n_docs - n + 0.5) / (n + 0.5))
            scores[rows] += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * self.doclen[rows] / avg))
            hit[rows] = True
        if mask is not None:
            hit &= mask
        cand = np.flatnonzero(hit)
        if not len(cand):
            return []
        found = scores[cand]
        n = min(limit, len(cand))
        part = np.argpartition(-found, n - 1)[:n]
        # Equal scores: the later row first, as LanceDB orders them (it matters to RRF ranks).
        order = part[np.lexsort((-cand[part], -found[part]))]
        return [(int(cand[i]), float(found[i])) for i in order]

    def arrays(self, prefix: str) -> dict[str, npt.NDArray[Any]]:
        """The postings as plain arrays (no pickling), for `np.savez`."""
        return {
            f"{prefix}vocab": np.array(list(self.vocab), dtype=np.str_),
            f"{prefix}ptr": self.ptr,
            f"{prefix}rows": self.rows,
            f"{prefix}tfs": self.tfs,
            f"{prefix}doclen": self.doclen,
        }

    @classmethod
    def from_arrays(cls, data: Any, prefix: str) -> Bm25:
        words = data[f"{prefix}vocab"].tolist()
        return cls(
            vocab={w: i for i, w in enumerate(words)},
            ptr=data[f"{prefix}ptr"],
            rows=data[f"{prefix}rows"],
            tfs=data[f"{prefix}tfs"],
            doclen=data[f"{prefix}doclen"],
        )
