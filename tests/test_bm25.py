"""The in-memory keyword leg (soul/bm25.py) scores exactly like LanceDB's native full-text index,
and the matrix that carries it follows writes and survives a snapshot round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from soul import bm25
from soul import index as index_mod

from conftest import run_soul

EVAL = json.loads((Path(__file__).parent / "data" / "recall_eval.json").read_text(encoding="utf-8"))
TRICKY = [
    "Does the café serve naïve données? Because it should!",
    "runs running runner ran",
    "the THE The tHe and of to",
    "foo_bar baz-qux 3.14 v1 user@example.com",
    "x" * 39 + " " + "y" * 40 + " short",
    "東京 meeting on Monday, 東京 again",
    "cache cache cache invalidation",
    "",
]
QUERIES = ["cache cache database", "the the", "cafe naive donnees", "run", "東京", "14 v1", "does because", "x" * 39]


def lancedb_scores(tmp_path: Path, docs: list[str], query: str) -> dict[int, float]:
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(str(tmp_path / "oracle"))
    name = "t"
    if name not in db.list_tables().tables:
        table = db.create_table(name, pa.table({"id": list(range(len(docs))), "terms": docs}))
        table.create_fts_index("terms", use_tantivy=False)
    table = db.open_table(name)
    found = table.search(query, query_type="fts", fts_columns="terms").select(["id", "_score"]).limit(1000).to_arrow()
    return dict(zip(found["id"].to_pylist(), found["_score"].to_pylist(), strict=True))


def test_scores_equal_lancedb_native_fts(tmp_path: Path) -> None:
    docs = EVAL["memories"] + TRICKY
    ours = bm25.Bm25.build(docs)
    questions = [q for q, _ in EVAL["paraphrase"] + EVAL["keyword"]] + QUERIES
    compared = 0
    for question in questions:
        theirs = lancedb_scores(tmp_path, docs, question)
        mine = dict(ours.query(question, 1000, None))
        assert set(mine) == set(theirs), question
        for row, score in theirs.items():
            assert mine[row] == pytest.approx(score, rel=1e-4), (question, docs[row])
        compared += len(theirs)
    assert compared > 100  # the comparison really covered many scored rows


def test_analysis_stems_then_drops_stop_words() -> None:
    assert bm25.analyze("The runners were running") == ["runner", "run"]
    assert bm25.analyze("Does it? Because!") == ["doe", "becaus"]  # stemmed first, so not stop words
    assert bm25.analyze("Café naïve") == ["cafe", "naiv"]
    assert bm25.analyze("a" * 40 + " ok") == ["ok"]
    assert bm25.analyze("東京") == ["東京"]


def test_filters_limit_and_empty_queries() -> None:
    ours = bm25.Bm25.build(["red apple", "green apple", "red car", ""])
    assert [row for row, _ in ours.query("apple", 10, None)] in ([0, 1], [1, 0])
    assert [row for row, _ in ours.query("red apple", 1, None)] == [0]
    masked = ours.query("apple", 10, np.array([False, True, True, True]))
    assert [row for row, _ in masked] == [1]
    assert masked[0][1] == pytest.approx(dict(ours.query("apple", 10, None))[1])  # filters never change scores
    assert ours.query("the", 10, None) == [] and ours.query("", 10, None) == []
    assert bm25.Bm25.build([]).query("apple", 10, None) == []


def test_subset_and_extend_equal_a_fresh_build() -> None:
    docs = EVAL["memories"]
    full = bm25.Bm25.build(docs)
    keep = np.array([i % 3 != 0 for i in range(len(docs))])
    kept = [d for d, k in zip(docs, keep, strict=True) if k]
    grown = full.subset(keep).extend(TRICKY)
    fresh = bm25.Bm25.build(kept + TRICKY)
    for question in [q for q, _ in EVAL["keyword"]] + QUERIES:
        a, b = grown.query(question, 50, None), fresh.query(question, 50, None)
        assert [r for r, _ in a] == [r for r, _ in b] and np.allclose([s for _, s in a], [s for _, s in b])


def count_table_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per `Matrix.load` (a full read of the LanceDB table) from now on."""
    from soul.vecsearch import Matrix

    loads: list[int] = []
    real_load = Matrix.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Matrix, "load", classmethod(lambda cls, *a: loads.append(1) or real_load(cls, *a)))
    return loads


def hits(core: Any, query: str) -> list[tuple[str, float]]:
    return [(h["id"], h["score"]) for h in core.index().search(query, k=5)]


def test_matrix_follows_writes_like_a_fresh_load(core: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUL_EMBEDDER", "lexical")
    ids = [core.remember(t).id for t in EVAL["memories"][:20]]
    index = core.index()
    index.catch_up()
    core.forget(ids[3])
    core.update(ids[5], text="the staging server now restarts at noon")
    core.remember("a brand new memory about server restarts")

    loads = count_table_loads(monkeypatch)
    index.catch_up()
    assert loads == [] and len(index.matrix().ids) == 20  # updated in step, not reloaded
    monkeypatch.undo()
    index_mod.snapshot_path(core).unlink()  # the fresh handle must load from LanceDB itself
    fresh = type(core)(core.home, core.instance)
    for query in ("server restarts", "dentist", "the", ""):
        assert hits(core, query) == hits(fresh, query), query
    assert fresh.index()._table is not None


def test_snapshot_serves_only_its_own_table_version(core: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUL_EMBEDDER", "lexical")
    for text in EVAL["memories"][:10]:
        core.remember(text)
    core.index().catch_up()
    snap = index_mod.snapshot_path(core)
    assert snap.exists() and index_mod.status(core)["snapshot"]
    expected = hits(core, "server")
    other = type(core)(core.home, core.instance)
    other.index().catch_up()
    assert other.index()._table is None  # answered from the snapshot: LanceDB never opened
    assert hits(other, "server") == expected
    # A write elsewhere makes the snapshot stale: it is not used, and is replaced.
    core.remember("the build server moved to rack 4")
    core.index().catch_up()
    core.remember("the print server moved to rack 5")  # the index and its snapshot are behind again
    info = index_mod.status(core)
    assert info["stale"] and info["snapshot"]  # still the current table's snapshot, just behind the logs
    third = type(core)(core.home, core.instance)
    assert hits(third, "build server")[0][0] == hits(core, "build server")[0][0]
    # A crashed writer's temp file does not pile up: the next save removes it.
    leftover = snap.parent / f".{snap.name}.crashed.tmp"
    leftover.write_bytes(b"x" * 1000)
    core.remember("one more memory so the snapshot is saved again")
    core.index().catch_up()
    assert not leftover.exists()
    # A garbage snapshot is ignored, never fatal.
    snap.write_bytes(b"not a snapshot")
    assert not index_mod.status(core)["snapshot"]
    fourth = type(core)(core.home, core.instance)
    assert hits(fourth, "server")[0][0] == hits(core, "server")[0][0]


def test_cold_recall_with_a_current_index_never_imports_lancedb(soul_home: Path) -> None:
    env_home = str(soul_home)
    lexical = {"SOUL_EMBEDDER": "lexical"}
    run_soul("remember", "The boiler was serviced by Hansen Heating", home=soul_home, env=lexical)
    run_soul("recall", "boiler", "--json", home=soul_home, env=lexical)  # catches up, saves the snapshot
    code = (
        "import sys, os; os.environ['SOUL_EMBEDDER'] = 'lexical';"
        "from pathlib import Path; from soul.core import Soul;"
        f"s = Soul.open(Path({env_home!r}), 'alpha'); hits = s.recall('Hansen', k=1);"
        "print(hits[0]['text'][:10], 'lancedb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["The", "boiler", "False"], out.stderr


def arrow_rows(start: int, count: int, dim: int = 4) -> Any:
    import pyarrow as pa

    ids = [f"M{i:04d}" for i in range(start, start + count)]
    vecs = np.arange(start * dim, (start + count) * dim, dtype=np.float32)
    return pa.table(
        {
            "id": ids,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs), dim),
            "kind": ["note"] * count,
            "project": [None] * count,
            "at": [f"2026-01-01T00:00:{i % 60:02d}.000Z" for i in range(count)],
            "tags": [["t"]] * count,
            "doc": [json.dumps({"id": i, "text": f"memory {i}"}) for i in ids],
            "terms": [f"memory {i}" for i in ids],
        }
    )


def test_matrix_updates_share_spare_rows_without_touching_older_matrices() -> None:
    from soul.vecsearch import Matrix

    first = Matrix.from_arrow(arrow_rows(0, 5), 4)
    second = first.updated(["M0001"], arrow_rows(5, 2))  # a delete: compacted into a new buffer
    third = second.updated([], arrow_rows(7, 1))  # appended into the spare rows
    assert third._vbuf is second._vbuf
    branch = second.updated([], arrow_rows(8, 1))  # second no longer ends the buffer: it must copy
    assert branch._vbuf is not second._vbuf
    expect = Matrix.from_arrow(arrow_rows(0, 9), 4)
    rows = {str(i): expect.vecs[n] for n, i in enumerate(expect.ids)}
    for mat, ids in ((second, [0, 2, 3, 4, 5, 6]), (third, [0, 2, 3, 4, 5, 6, 7]), (branch, [0, 2, 3, 4, 5, 6, 8])):
        assert mat.ids.tolist() == [f"M{i:04d}" for i in ids]
        assert np.array_equal(mat.vecs, np.stack([rows[f"M{i:04d}"] for i in ids]))
        assert [mat.doc(r)["id"] for r in range(len(ids))] == mat.ids.tolist()
        assert [mat.ids[r] for r, _ in mat.keyword("m0004", 5, None)] == ["M0004"]


def test_a_fresh_process_behind_the_logs_updates_the_snapshot_instead_of_reloading(
    core: Any, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv("SOUL_EMBEDDER", "lexical")
    for text in EVAL["memories"][:10]:
        core.remember(text)
    core.index().catch_up()
    core.remember("the new build server is in rack 4")
    loads = count_table_loads(monkeypatch)
    fresh = type(core)(core.home, core.instance)
    assert fresh.index().catch_up()["added"] == 1 and loads == []
    monkeypatch.undo()
    monkeypatch.setenv("SOUL_EMBEDDER", "lexical")
    index_mod.snapshot_path(core).unlink()
    reloaded = type(core)(core.home, core.instance)
    for query in ("build server rack", "dentist", ""):
        assert hits(fresh, query) == hits(reloaded, query), query
