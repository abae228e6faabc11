"""`soul dedupe` and `soul unmerge`: fold near-duplicate memories into one, reversibly.

Clusters are built leader-first: memories in fold order (earliest first); each memory not yet
taken leads a cluster of the later, untaken memories whose cosine similarity to it is at least
the threshold. Comparing to the leader only (not chaining through members) keeps a cluster from
drifting from "prefers tabs" to "prefers spaces" through a run of small steps.

Invariants: applying writes only `memory.merge` {source, target} events (one append, one
commit) and never deletes history; `soul unmerge` writes `memory.unmerge` {source}. With the
lexical fallback embedder nothing semantic is merged: only texts that normalise to the same
string cluster, because hashed word overlap cannot tell "Mondays" from "Fridays".
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from soul.errors import NotFound, UsageError
from soul.view import Memory, normalize_text

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from soul.core import Soul

# Chosen by measurement on tests/data/dup_pairs.json with all-MiniLM-L6-v2; see docs/duplicates.md.
DEFAULT_THRESHOLD = 0.63
_BLOCK_CELLS = 1 << 24  # similarity cells computed at once (64 MiB of float32)
_WORD = re.compile(r"\w+", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.:,]\d+)*")
# Word lists are easier to read and extend as one string each.
_NEGATION = frozenset(
    "not no never dislike dislikes don doesn didn isn aren wasn won cannot avoid avoids without "  # noqa: SIM905
    "hate hates nobody none nothing forbidden stop stopped".split()
)
_CALENDAR = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may "  # noqa: SIM905
    "june july august september october november december".split()
)


def run(soul: Soul, threshold: float | None = None, apply: bool = False) -> dict[str, Any]:
    from soul import index

    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise UsageError(f"threshold {threshold} is outside (0, 1]", hint="try --threshold 0.9")
    chosen = threshold if threshold is not None else configured_threshold(soul)
    view = soul.view()
    live = sorted(view.memories, key=lambda m: (m.at, m.id))
    embedder = soul.index().embedder
    if embedder.fallback:
        clusters = exact_clusters(live)
    else:
        ids, vectors = index.memory_vectors(soul)
        clusters = semantic_clusters(live, ids, vectors, chosen)
    result: dict[str, Any] = {
        "threshold": chosen,
        "semantic": not embedder.fallback,
        "embedder": embedder.id,
        "clusters": clusters,
        "merged": 0,
    }
    if apply and clusters:
        merges = [{"source": s["id"], "target": c["target"]["id"]} for c in clusters for s in c["sources"]]
        soul.append_many("memory.merge", merges, message=f"dedupe: merge {len(merges)} near-duplicate(s)")
        result["merged"] = len(merges)
    return result


def configured_threshold(soul: Soul) -> float:
    """`[index] duplicate_threshold`, or the measured default when unset or off (`false`)."""
    value = soul.config.get("index", {}).get("duplicate_threshold")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value <= 1.0:
        return float(value)
    return DEFAULT_THRESHOLD


def exact_clusters(live: list[Memory]) -> list[dict[str, Any]]:
    """Memories whose texts normalise to the same string (whatever their kind or project)."""
    groups: dict[str, list[Memory]] = {}
    for mem in live:
        groups.setdefault(normalize_text(mem.text), []).append(mem)
    return [_cluster(g[0], [(m, 1.0) for m in g[1:]]) for g in groups.values() if len(g) > 1]


def semantic_clusters(
    live: list[Memory], ids: list[str], vectors: npt.NDArray[np.float32], threshold: float
) -> list[dict[str, Any]]:
    row_of = {memory_id: row for row, memory_id in enumerate(ids)}
    ordered = [m for m in live if m.id in row_of]
    if len(ordered) < 2:
        return []
    import numpy as np

    matrix = vectors[[row_of[m.id] for m in ordered]].astype(np.float32)
    neighbours = _neighbours(matrix, threshold)
    taken: set[int] = set()
    clusters: list[dict[str, Any]] = []
    for leader in range(len(ordered)):
        if leader in taken:
            continue
        text = ordered[leader].text
        members = [
            (j, s)
            for j, s in neighbours.get(leader, [])
            if j > leader and j not in taken and not distinct_facts(text, ordered[j].text)
        ]
        if not members:
            continue
        taken.update(j for j, _ in members)
        clusters.append(_cluster(ordered[leader], [(ordered[j], s) for j, s in members]))
    return clusters


def distinct_facts(a: str, b: str) -> bool:
    """True when two similar texts state different facts, whatever their cosine.

    Sentence embeddings score "prefers tabs"/"prefers spaces" or "Postgres 16"/"Postgres 15" as
    near-identical (0.70 to 0.99 with MiniLM), so similarity alone can never reach the precision a
    merge needs. These texts differ in a number, a weekday or month, negation, word order only
    ("X over Y"/"Y over X"), or in one short slot of an otherwise identical sentence."""
    if set(_NUMBER.findall(a)) != set(_NUMBER.findall(b)):
        return True
    ta, tb = _WORD.findall(a.casefold()), _WORD.findall(b.casefold())
    if {t.rstrip("s") for t in ta} & _CALENDAR != {t.rstrip("s") for t in tb} & _CALENDAR:
        return True
    if len(set(ta) & _NEGATION) % 2 != len(set(tb) & _NEGATION) % 2:
        return True
    if ta != tb and sorted(ta) == sorted(tb):
        return True
    prefix = 0
    while prefix < min(len(ta), len(tb)) and ta[prefix] == tb[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(ta), len(tb)) - prefix and ta[-1 - suffix] == tb[-1 - suffix]:
        suffix += 1
    slot_a, slot_b = ta[prefix : len(ta) - suffix], tb[prefix : len(tb) - suffix]
    return bool(slot_a and slot_b) and max(len(slot_a), len(slot_b)) <= min(3, prefix + suffix)


def _neighbours(matrix: npt.NDArray[np.float32], threshold: float) -> dict[int, list[tuple[int, float]]]:
    """For each row, the rows with cosine >= threshold, computed in blocks to bound memory."""
    import numpy as np

    n = matrix.shape[0]
    rows = max(1, _BLOCK_CELLS // n)
    out: dict[int, list[tuple[int, float]]] = {}
    for start in range(0, n, rows):
        sims = matrix[start : start + rows] @ matrix.T
        for i, j in zip(*np.nonzero(sims >= threshold), strict=True):
            a = start + int(i)
            if a != int(j):
                out.setdefault(a, []).append((int(j), round(float(sims[i, j]), 4)))
    return out


def _cluster(target: Memory, sources: list[tuple[Memory, float]]) -> dict[str, Any]:
    return {
        "target": {"id": target.id, "text": target.text, "kind": target.kind},
        "sources": [{"id": m.id, "text": m.text, "kind": m.kind, "score": s} for m, s in sources],
    }


def unmerge(soul: Soul, memory_id: str) -> list[str]:
    """Undo merges: of `memory_id` if it was merged, else of everything merged into it."""
    view = soul.view()
    mem = view.all_memories.get(view.resolve(memory_id))
    if mem is None:
        raise NotFound(f"no memory {memory_id}", hint="see `soul list` for ids")
    sources = [mem.id] if mem.merged_into else list(mem.merged)
    if not sources:
        raise UsageError(f"{mem.id} is not merged and nothing is merged into it")
    soul.append_many("memory.unmerge", [{"source": s} for s in sources], message=f"unmerge {', '.join(sources)}")
    return sources


# ---------------------------------------------------------------------- choosing the threshold


def precision_recall(labels: list[bool], scores: list[float], threshold: float) -> tuple[float, float]:
    """Of pairs scored >= threshold (would merge): the share that are duplicates, and the share of
    duplicates caught. Precision is 1.0 when nothing merges: no fact is hidden."""
    merged = [label for label, score in zip(labels, scores, strict=True) if score >= threshold]
    true = sum(merged)
    precision = true / len(merged) if merged else 1.0
    recall = true / sum(labels) if any(labels) else 0.0
    return precision, recall


def choose_threshold(labels: list[bool], scores: list[float], min_precision: float = 0.95) -> float:
    """The threshold on a 0.01 grid with the best recall among those whose precision is at least
    `min_precision` there and at every higher threshold (so moving up never makes merges less
    safe); among equal recalls, the highest threshold (the widest margin)."""
    best, best_recall = 1.0, -1.0
    for step in range(100, 49, -1):
        threshold = round(step / 100, 2)
        precision, recall = precision_recall(labels, scores, threshold)
        if precision < min_precision:
            break
        if recall > best_recall:
            best, best_recall = threshold, recall
    return best
