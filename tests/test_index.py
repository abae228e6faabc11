"""The LanceDB index: built from the view, kept current incrementally, rebuilt when unusable."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from soul import index as index_mod
from soul import search

from conftest import run_soul, soul_json


@pytest.fixture
def lexical(monkeypatch: pytest.MonkeyPatch) -> None:
    """Most index tests do not need meaning; the lexical embedder keeps them fast."""
    monkeypatch.setenv("SOUL_EMBEDDER", "lexical")


def use_model(home: Path, model_dir: Path) -> None:
    text = (home / "soul.toml").read_text(encoding="utf-8")
    text = text.replace(
        'model = "BAAI/bge-small-en-v1.5"\n',
        f'model = "sentence-transformers/all-MiniLM-L6-v2"\nmodel_path = "{model_dir}"\n',
    )
    (home / "soul.toml").write_text(text, encoding="utf-8")


def seed(core: Any, texts: list[str], **fields: Any) -> list[str]:
    return [
        core.append("memory.add", {"text": t, "kind": "note", "tags": [], **fields}, commit=False)["id"] for t in texts
    ]


def rows(core: Any) -> dict[str, str]:
    table = core.index()._open_table()
    data = table.search().select(["id", "hash"]).limit(1000).to_arrow()
    return dict(zip(data["id"].to_pylist(), data["hash"].to_pylist(), strict=True))


def test_builds_and_follows_forget_update_merge(core: Any, lexical: None) -> None:
    ids = seed(core, ["the red bicycle", "a blue kettle", "green tea leaves", "yellow umbrella"])
    idx = core.index()
    assert idx.catch_up()["rebuilt"]
    assert set(rows(core)) == set(ids)
    assert idx.catch_up() == {"added": 0, "updated": 0, "deleted": 0, "rebuilt": False}
    core.forget(ids[0])
    core.update(ids[1], text="a blue teapot")
    core.append("memory.merge", {"source": ids[3], "target": ids[2]}, commit=False)
    new = seed(core, ["purple socks"])
    result = idx.catch_up()
    assert result == {"added": 1, "updated": 2, "deleted": 2, "rebuilt": False}
    assert set(rows(core)) == {ids[1], ids[2], *new}
    hits = idx.search("teapot", k=3)
    assert hits[0]["id"] == ids[1] and hits[0]["text"] == "a blue teapot"
    merged = next(h for h in idx.search("green tea", k=3) if h["id"] == ids[2])
    assert merged["also"] == [ids[3]]


def test_incremental_equals_rebuilt(core: Any, lexical: None) -> None:
    ids = seed(core, [f"memory number {i} about topic {i % 7}" for i in range(30)])
    idx = core.index()
    idx.catch_up()
    for i in range(0, 30, 4):
        core.forget(ids[i]) if i % 8 == 0 else core.update(ids[i], text=f"changed {i}")
    seed(core, [f"late memory {i}" for i in range(5)])
    idx.catch_up()
    incremental = rows(core)
    ids_a, vecs_a = idx.vectors()
    idx.rebuild()
    assert rows(core) == incremental
    ids_b, vecs_b = idx.vectors()
    order = {i: n for n, i in enumerate(ids_b)}
    assert sorted(ids_a) == sorted(ids_b)
    assert np.allclose(vecs_a, vecs_b[[order[i] for i in ids_a]])


def test_fragments_stay_bounded_after_many_single_adds(core: Any, lexical: None) -> None:
    idx = core.index()
    for i in range(40):
        seed(core, [f"single remember {i}"])
        idx.catch_up()
    assert idx.fragments() <= index_mod.OPTIMIZE_FRAGMENTS
    assert index_mod.status(core)["rows"] == 40


def test_corrupt_or_missing_index_is_rebuilt(core: Any, lexical: None) -> None:
    ids = seed(core, ["alpha bravo", "charlie delta"])
    core.index().catch_up()
    lance = core.state_dir / "index" / "memories.lance"
    for path in lance.rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00garbage")
    fresh = type(core)(core.home, core.instance)
    assert fresh.index().search("charlie", k=1)[0]["id"] == ids[1]
    shutil.rmtree(core.state_dir / "index")
    fresh = type(core)(core.home, core.instance)
    assert fresh.index().search("alpha", k=1)[0]["id"] == ids[0]


def test_filters_kind_tag_project_since(core: Any, lexical: None) -> None:
    a = core.append("memory.add", {"text": "deploy on friday", "kind": "decision", "tags": ["ops"]}, commit=False)
    b = core.append(
        "memory.add", {"text": "deploy scripts live in ops", "kind": "note", "tags": ["x"], "project": "web"}
    )
    idx = core.index()
    assert [h["id"] for h in idx.search("deploy", kind="decision")] == [a["id"]]
    assert [h["id"] for h in idx.search("deploy", tag="ops")] == [a["id"]]
    assert [h["id"] for h in idx.search("deploy", project="web")] == [b["id"]]
    assert idx.search("deploy", since="2999-01-01") == []
    assert len(idx.search("deploy", since="2000-01-01")) == 2
    assert idx.search("deploy", tag="it's") == []  # quotes in values are data, not SQL
    with pytest.raises(Exception, match="since"):
        idx.search("deploy", since="not a date")


def test_hit_shape_and_scores(core: Any, lexical: None) -> None:
    seed(core, ["the quick brown fox", "a lazy dog sleeps", "foxes are quick"], project="zoo")
    hits = core.recall("quick fox", k=2)
    assert len(hits) == 2
    for hit in hits:
        assert {"id", "text", "score", "kind", "tags", "by", "at", "project"} <= set(hit)
        assert "_vector" not in hit
    assert hits[0]["score"] >= hits[1]["score"]


def test_near_duplicates_collapse_with_a_real_model_only(
    core: Any, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOUL_EMBEDDER", raising=False)
    ids = seed(
        core,
        [
            "Alice is the owner of the billing service",
            "The billing service is owned by Alice",
            "Prefers tabs for indentation",
            "Prefers spaces for indentation",
        ],
    )
    toml = core.home / "soul.toml"
    original = toml.read_text()
    toml.write_text(original.replace("[index]\n", "[index]\nduplicate_threshold = false\n"))
    use_model(core.home, model_dir)
    assert len(type(core)(core.home, core.instance).index().search("who owns billing", k=4)) == 4
    toml.write_text(toml.read_text().replace("duplicate_threshold = false", "duplicate_threshold = 0.63"))
    hits = type(core)(core.home, core.instance).index().search("who owns billing", k=4)
    top = hits[0]
    assert top["count"] == 2 and {top["id"], *top["also"]} == set(ids[:2])
    # Close but different facts are never folded, however similar their vectors.
    indentation = [h for h in hits if "indentation" in h["text"]]
    assert {h["id"] for h in indentation} == set(ids[2:]) and not any(h.get("also") for h in indentation)


def test_lexical_fallback_never_collapses(core: Any, lexical: None) -> None:
    seed(core, ["the wifi password is on the fridge", "the wifi password is on the fridge door"])
    toml = core.home / "soul.toml"
    toml.write_text(toml.read_text().replace("[index]\n", "[index]\nduplicate_threshold = 0.5\n"))
    hits = type(core)(core.home, core.instance).index().search("wifi password", k=3)
    assert len(hits) == 2 and not any(h.get("also") for h in hits)


def test_memory_vectors_and_embed_texts(core: Any, lexical: None) -> None:
    ids = seed(core, ["one thing", "another thing"])
    got, vecs = index_mod.memory_vectors(core)
    assert sorted(got) == sorted(ids) and vecs.shape == (2, 512)
    again = index_mod.embed_texts(core, ["one thing"])
    assert np.allclose(again[0], vecs[got.index(ids[0])])


def test_bad_queries(core: Any, lexical: None) -> None:
    ids = seed(core, ["older memory", "newer memory"])
    assert [h["id"] for h in core.recall("", k=5)] == [ids[1], ids[0]]
    assert isinstance(core.recall("memory " * 20000, k=3), list)  # ~140 KB
    assert isinstance(core.recall("bad \udcff bytes memory", k=3), list)
    assert search.clean_query("x\udcffy") == "x?y"


@pytest.mark.semantic
def test_real_model_replaces_fallback_automatically(
    core: Any, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOUL_OFFLINE", "1")
    ids = seed(core, ["My dentist is Dr. Alvarez on Elm Street", "The staging server restarts at 3am"])
    assert core.index().search("Alvarez", k=1)[0]["id"] == ids[0]
    assert index_mod.status(core)["fallback"]
    use_model(core.home, model_dir)
    fresh = type(core)(core.home, core.instance)
    assert fresh.index().search("who looks after my teeth", k=1)[0]["id"] == ids[0]
    info = index_mod.status(fresh)
    assert not info["fallback"] and info["embedder"] == "fastembed:sentence-transformers/all-MiniLM-L6-v2"


def test_cli_recall_status_rebuild_and_doctor(soul_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUL_OFFLINE", "1")  # no model here: the lexical fallback, loudly
    run_soul("remember", "The boiler was serviced by Hansen Heating", home=soul_home)
    run_soul("remember", "Grandma's birthday is the 4th of November", home=soul_home)
    proc = run_soul("recall", "Hansen", "--json", home=soul_home)
    hits = json.loads(proc.stdout)
    assert hits[0]["text"].startswith("The boiler") and "fallback" in proc.stderr
    info = soul_json("index", "status", home=soul_home)
    assert info["rows"] == 2 and info["fallback"] and not info["stale"]
    rebuilt = soul_json("index", "rebuild", home=soul_home)
    assert rebuilt["rebuilt"] and rebuilt["rows"] == 2
    status = soul_json("status", home=soul_home)
    assert status["index"]["fallback"]
    doctor = run_soul("doctor", home=soul_home, check=False)
    assert "LEXICAL FALLBACK" in doctor.stdout + doctor.stderr


def test_cli_non_utf8_query_and_bad_model_folder(soul_home: Path, tmp_path: Path) -> None:
    run_soul("remember", "penicillin allergy noted", home=soul_home)
    use_model(soul_home, tmp_path / "missing-model")
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("soul")),
            "--home",
            str(soul_home),
            "recall",
            b"penicillin \xff\xfe",
            "--json",
        ],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["text"] == "penicillin allergy noted"
    assert str(tmp_path / "missing-model").encode() in proc.stderr


def test_remember_imports_nothing_heavy_and_builds_no_index(soul_home: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from soul.core import Soul;"
        f"s = Soul.open(Path({str(soul_home)!r}), 'alpha'); s.remember('light write');"
        "heavy = [m for m in ('lancedb', 'fastembed', 'numpy', 'pyarrow') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"
    assert not (soul_home / ".soul" / "index").exists()
