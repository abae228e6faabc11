"""Recall: rank memories for a query.

`recall` is the one entry point. Without a semantic index it ranks by keywords (BM25 over the
folded view), which always finds exact-word matches and needs nothing but the logs.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from soul.core import Soul

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_CHARS = 2000


def tokens(text: str) -> list[str]:
    return [t for t in _WORD.findall(text.casefold()) if len(t) > 1 or t.isdigit()]


def clean_query(query: str) -> str:
    """Queries are cut to a sane length: a 100 KB query must not cost 100 KB of work per memory."""
    if not isinstance(query, str):
        raise TypeError("query must be a string")
    # Undecodable argv bytes arrive as lone surrogates; they cannot be encoded, so replace them.
    query = query.encode("utf-8", "replace").decode("utf-8")
    return query.replace("\x00", " ").strip()[:MAX_QUERY_CHARS]


def recall(
    soul: Soul,
    query: str,
    k: int = 10,
    kind: str | None = None,
    tag: str | None = None,
    project: str | None = None,
    since: str | None = None,
) -> list[dict[str, Any]]:
    from soul.core import _matches

    query = clean_query(query)
    k = max(1, min(int(k), 1000))
    # ---- semantic recall (issue 3): warm socket, else the in-process index, else keywords below
    from soul import warm

    hits = warm.recall(soul, query, k=k, kind=kind, tag=tag, project=project, since=since)
    if hits is not None:
        return hits
    candidates = [m.to_dict() for m in soul.view().memories]
    candidates = [m for m in candidates if _matches(m, kind, tag, project, since)]
    return keyword_rank(query, candidates, k)


def keyword_rank(query: str, docs: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """BM25 (k1=1.2, b=0.75) over text, tags and project; an empty query lists the newest."""
    qterms = set(tokens(query))
    if not qterms:
        newest = sorted(docs, key=lambda d: d["at"], reverse=True)[:k]
        return [{**d, "score": 0.0} for d in newest]
    doc_terms = [Counter(tokens(" ".join([d["text"], *d["tags"], d.get("project") or ""]))) for d in docs]
    n = len(docs)
    avg = sum(sum(c.values()) for c in doc_terms) / n if n else 0.0
    df = Counter(t for c in doc_terms for t in qterms if t in c)
    scored: list[tuple[float, dict[str, Any]]] = []
    for doc, counts in zip(docs, doc_terms, strict=True):
        length = sum(counts.values()) or 1
        score = 0.0
        for term in qterms:
            tf = counts.get(term, 0)
            if not tf:
                continue
            idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
            score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / (avg or 1)))
        if score > 0:
            scored.append((score, doc))
    scored.sort(key=lambda pair: (-pair[0], pair[1]["id"]))
    return [{**doc, "score": round(score, 6)} for score, doc in scored[:k]]
