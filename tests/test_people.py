"""People: notes, aliases, style, projects; notes are memories that recall finds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from soul.core import Soul
from soul.errors import NotFound, SecretRefused, UsageError
from soul.view import fold

from conftest import run_soul, soul_json


@pytest.fixture
def soul_home(tmp_path: Path) -> Path:
    """The conftest soul (instance alpha), created in-process: `soul init` as a subprocess costs
    about a second per test on a loaded machine, and init is tested elsewhere."""
    home = tmp_path / "soul"
    Soul.init(home, "alpha")
    return home


def test_note_and_who_is_by_name_alias_any_case(core: Soul) -> None:
    core.note_person("Ada Lovelace", "Leads the analytics engine work", project="engine", aliases=["Ada"])
    person = core.note_person("ADA", "Prefers short written updates", style="terse, async", project="notes")
    assert person["person"] == "ada-lovelace" and person["name"] == "Ada Lovelace"
    for name in ("ada lovelace", "ada", "  Ada   Lovelace ", "ADA-LOVELACE"):
        assert core.who_is(name)["person"] == "ada-lovelace"
    assert person["aliases"] == ["Ada"]
    assert person["projects"] == ["engine", "notes"]
    assert person["style"] == "terse, async"
    assert [n["text"] for n in person["notes"]] == ["Prefers short written updates", "Leads the analytics engine work"]
    assert person["note_count"] == 2
    with pytest.raises(NotFound):
        core.who_is("Charles")


def test_notes_are_memories_found_by_recall(core: Soul, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUL_EMBEDDER", "lexical")  # no model download attempt; recall is still the real index
    core.note_person("Grace Hopper", "Reviews compiler changes on Fridays", project="cobol")
    hits = core.recall("Grace compiler", k=5)
    assert hits and hits[0]["kind"] == "person"
    assert hits[0]["text"] == "Grace Hopper: Reviews compiler changes on Fridays"
    assert "person:grace-hopper" in hits[0]["tags"] and hits[0]["project"] == "cobol"
    assert core.list_memories(kind="person")[0]["id"] == hits[0]["id"]


def test_forgetting_the_memory_removes_the_note(core: Soul) -> None:
    person = core.note_person("Linus", "Dislikes long meetings")
    core.note_person("Linus", "Maintains the kernel")
    core.forget(person["notes"][0]["memory"])
    assert [n["text"] for n in core.who_is("linus")["notes"]] == ["Maintains the kernel"]


def test_note_is_one_commit_and_text_stored_once(core: Soul) -> None:
    before = subprocess.run(
        ["git", "-C", str(core.home), "rev-list", "--count", "HEAD"], capture_output=True, text=True
    )
    core.note_person("Margaret", "Wrote the flight software")
    after = subprocess.run(["git", "-C", str(core.home), "rev-list", "--count", "HEAD"], capture_output=True, text=True)
    assert int(after.stdout) == int(before.stdout) + 1
    lines = [json.loads(x) for p in (core.home / "memories").glob("*/*.jsonl") for x in p.read_text().splitlines()]
    assert sum("Wrote the flight software" in json.dumps(e) for e in lines) == 1
    status = subprocess.run(["git", "-C", str(core.home), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == ""


def test_list_people_newest_first(core: Soul) -> None:
    core.note_person("Alan", "Likes puzzles")
    core.note_person("Barbara", "Owns the type system")
    rows = core.list_people()
    assert [r["name"] for r in rows] == ["Barbara", "Alan"]
    assert rows[0]["last_note"] == "Owns the type system" and "notes" not in rows[0]


def test_bad_input_and_secrets_are_refused(core: Soul) -> None:
    with pytest.raises(UsageError):
        core.note_person("   ", "text")
    with pytest.raises(UsageError):
        core.note_person("Bob", "   ")
    with pytest.raises(SecretRefused):
        core.note_person("Bob", "his token is ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8")
    with pytest.raises(SecretRefused):
        core.note_person("Bob", "fine", style="password=Xk9#mP2$vL7qR4!z")
    assert core.list_people() == [] and core.list_memories() == []


def test_fold_accepts_a_text_note_without_memory() -> None:
    ev = {"op": "person.note", "id": "01A", "at": "2026-01-01T00:00:00.000Z", "by": "x", "v": 1}
    view = fold([{**ev, "person": "kay", "name": "Kay", "text": "imported note", "projects": ["p"]}])
    assert view.people["kay"]["notes"][0]["text"] == "imported note"


def test_cli_person_note_show_list(soul_home: Path) -> None:
    person = soul_json("person", "note", "Ken", "Writes terse code", "--style", "direct", "-a", "kt", home=soul_home)
    assert person["name"] == "Ken" and person["aliases"] == ["kt"]
    assert soul_json("person", "show", "KT", home=soul_home)["style"] == "direct"
    shown = run_soul("person", "show", "ken", home=soul_home).stdout
    assert "Writes terse code" in shown and "style: direct" in shown
    assert run_soul("person", "show", "nobody", home=soul_home, check=False).returncode == 1
