"""`soul export` (soul/export.py): what it writes, `soul import` reads back into the same view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from soul.core import Soul

from conftest import run_soul, soul_json

SAME = ("id", "text", "kind", "tags", "project", "source")


def seed(home: Path) -> None:
    soul = Soul.open(home, "alpha")
    soul.remember("Priya leads payments", kind="fact", tags=["people"], project="payments")
    soul.remember("Prefers tabs\n\n  indented second paragraph -->", kind="preference")
    soul.remember("- a text that starts like a bullet\n- and has two")
    soul.forget(soul.remember("Forget me").id)
    soul.remember("Décidé: le déploiement du vendredi est interdit ✓", kind="decision")


def view(home: Path) -> list[tuple[Any, ...]]:
    mems = Soul.open(home).list_memories()
    return sorted(tuple(json.dumps(m.get(k)) for k in SAME) for m in mems)


@pytest.mark.parametrize("fmt", ["jsonl", "markdown"])
def test_round_trip_into_a_fresh_soul(soul_home: Path, tmp_path: Path, fmt: str) -> None:
    seed(soul_home)
    out = tmp_path / f"export.{fmt}"
    run_soul("export", "--format", fmt, "-o", str(out), home=soul_home)
    fresh = tmp_path / "fresh"
    run_soul("init", "--instance", "beta", home=fresh)
    report = soul_json("import", fmt, str(out), home=fresh)
    assert report["imported"] == 4 and not report["malformed"] and not report["refused"]
    assert view(fresh) == view(soul_home)
    # Importing the export back into its own soul adds nothing.
    assert soul_json("import", fmt, str(out), home=soul_home)["imported"] == 0


def test_filters_and_stdout(soul_home: Path) -> None:
    seed(soul_home)
    lines = run_soul("export", "--kind", "fact", home=soul_home).stdout.splitlines()
    assert [json.loads(line)["text"] for line in lines] == ["Priya leads payments"]
    assert run_soul("export", "--since", "2999-01-01", home=soul_home).stdout == ""
    bad = run_soul("export", "--format", "csv", home=soul_home, check=False)
    assert bad.returncode == 2
