"""`soul dedupe` / `soul unmerge` (soul/dedupe.py), and the measured default threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from soul.config import CONFIG_DEFAULTS
from soul.core import Soul
from soul.dedupe import DEFAULT_THRESHOLD, choose_threshold, distinct_facts, precision_recall

from conftest import ROOT, run_soul, soul_json

PAIRS = json.loads((ROOT / "tests" / "data" / "dup_pairs.json").read_text(encoding="utf-8"))["pairs"]


def guarded_scores(model_dir: Path) -> tuple[list[bool], list[float]]:
    from soul.embed import FastEmbedder

    model = FastEmbedder("sentence-transformers/all-MiniLM-L6-v2", model_dir)
    a = model.embed([p["a"] for p in PAIRS])
    b = model.embed([p["b"] for p in PAIRS])
    cosine = [float(x) for x in (a * b).sum(axis=1)]
    scores = [0.0 if distinct_facts(p["a"], p["b"]) else c for p, c in zip(PAIRS, cosine, strict=True)]
    return [bool(p["duplicate"]) for p in PAIRS], scores


def test_labelled_set_is_large_and_balanced() -> None:
    labels = [p["duplicate"] for p in PAIRS]
    assert len(PAIRS) >= 60 and sum(labels) >= 30 and len(labels) - sum(labels) >= 30


@pytest.mark.semantic
def test_default_threshold_is_the_measured_one(model_dir: Path) -> None:
    labels, scores = guarded_scores(model_dir)
    chosen = choose_threshold(labels, scores, min_precision=0.95)
    precision, recall = precision_recall(labels, scores, chosen)
    print(f"threshold {chosen}: precision {precision:.3f} recall {recall:.3f} on {len(labels)} pairs")
    assert chosen == DEFAULT_THRESHOLD == CONFIG_DEFAULTS["index"]["duplicate_threshold"]
    assert precision >= 0.95 and recall >= 0.8


def test_distinct_facts_guard() -> None:
    assert distinct_facts("Prefers tabs for indentation", "Prefers spaces for indentation")
    assert distinct_facts("Deploys on Mondays", "Deploys on Fridays")
    assert distinct_facts("Staging runs Postgres 16", "Staging runs Postgres 15")
    assert distinct_facts("Likes emoji in commits", "Dislikes emoji in commits")
    assert distinct_facts("Prefers PostgreSQL over MySQL", "Prefers MySQL over PostgreSQL")
    assert not distinct_facts(
        "Prefers tabs over spaces for indentation", "Likes to indent code with tabs rather than spaces"
    )
    assert not distinct_facts("We deploy every Friday", "Deploys happen on Fridays")
    assert not distinct_facts("Uses uv to manage Python environments", "Python environments are managed with uv")


def semantic_soul(home: Path, model_dir: Path) -> None:
    run_soul("init", "--instance", "alpha", home=home)
    toml = home / "soul.toml"
    text = toml.read_text().replace(
        'model = "BAAI/bge-small-en-v1.5"', 'model = "sentence-transformers/all-MiniLM-L6-v2"'
    )
    toml.write_text(text.replace('# model_path = "/path/to/onnx-folder"', f'model_path = "{model_dir}"'))
    assert str(model_dir) in toml.read_text()


@pytest.mark.semantic
def test_dedupe_merges_paraphrases_not_close_facts_and_unmerge_restores(tmp_path: Path, model_dir: Path) -> None:
    home = tmp_path / "soul"
    semantic_soul(home, model_dir)
    soul = Soul.open(home)
    first = soul.remember("Uses uv to manage Python environments").id
    second = soul.remember("Python environments are managed with uv").id
    tabs = soul.remember("Prefers tabs for indentation").id
    spaces = soul.remember("Prefers spaces for indentation").id
    soul.remember("The payments service is written in Go")
    preview = soul_json("dedupe", "--dry-run", home=home)
    assert preview["semantic"] is True and preview["merged"] == 0
    assert [(c["target"]["id"], [s["id"] for s in c["sources"]]) for c in preview["clusters"]] == [(first, [second])]
    assert len(soul.list_memories()) == 5
    # Applied in-process: the same core call the CLI makes, without loading the model again.
    assert soul.dedupe(apply=True)["merged"] == 1
    listed = {m["id"]: m for m in soul.list_memories()}
    assert second not in listed and listed[first]["also"] == [second] and {tabs, spaces} <= set(listed)
    assert soul.dedupe()["clusters"] == []
    assert soul.unmerge(second) == [second]
    assert second in {m["id"] for m in soul.list_memories()}


def test_lexical_fallback_merges_only_exact_texts(core: Soul, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUL_EMBEDDER", "lexical")
    a = core.remember("Uses tabs", kind="note").id
    b = core.remember("uses tabs.", kind="preference").id
    core.remember("Indents with tabs")
    result = soul_json("dedupe", "--dry-run", home=core.home)
    assert result["semantic"] is False
    assert [(c["target"]["id"], [s["id"] for s in c["sources"]]) for c in result["clusters"]] == [(a, [b])]
    assert core.dedupe(apply=True)["merged"] == 1
    assert [m["id"] for m in core.list_memories()] == [a] or b not in {m["id"] for m in core.list_memories()}
    proc = run_soul("unmerge", a, home=core.home)
    assert b in proc.stderr and b in {m["id"] for m in core.list_memories()}
    bad = run_soul("unmerge", a, home=core.home, check=False)
    assert bad.returncode == 2
