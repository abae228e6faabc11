"""`soul import` (soul/importers.py): real files, the real CLI, idempotent, guarded, never fatal."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from soul import store
from soul.importers import derived_id, parse_note
from soul.view import KINDS

from conftest import ROOT, run_soul, soul_json

FIXTURE = ROOT / "tests" / "fixtures" / "mcp-memory.jsonl"
# Built at run time so no credential-shaped literal sits in the repository.
FAKE_TOKEN = "ghp_" + "k3Zq9XvB2mW7pL4tR8yN1cF6hJ0dS5aE3uGi"


def texts(home: Path) -> list[str]:
    return sorted(m["text"] for m in soul_json("list", "-n", "0", home=home))


def test_fixture_was_written_by_the_real_server() -> None:
    lines = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    assert {line["type"] for line in lines} == {"entity", "relation"}
    assert any(line.get("relationType") == "leads" for line in lines)


def test_mcp_memory_import_is_idempotent(soul_home: Path) -> None:
    report = soul_json("import", "mcp-memory", str(FIXTURE), home=soul_home)
    assert (report["read"], report["imported"], report["duplicates"]) == (14, 14, 0)
    assert report["refused"] == [] and report["malformed"] == []
    mems = {m["text"]: m for m in soul_json("list", "-n", "0", home=soul_home)}
    assert "Priya Raman leads payments-service" in mems
    lisbon = mems["Priya Raman: Works from Lisbon, UTC+0"]
    assert lisbon["kind"] == "person" and lisbon["tags"] == ["Priya Raman"] and lisbon["source"] == "mcp-memory"
    assert mems["payments-service: Written in Go 1.22"]["kind"] == "fact"
    sizes = [p.stat().st_size for p in store.log_files(soul_home)]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=soul_home, capture_output=True, text=True).stdout
    again = soul_json("import", "mcp-memory", str(FIXTURE), home=soul_home)
    assert (again["imported"], again["duplicates"]) == (0, 14)
    assert [p.stat().st_size for p in store.log_files(soul_home)] == sizes
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=soul_home, capture_output=True, text=True).stdout == head


def test_person_entities_feed_people_notes(soul_home: Path) -> None:
    run_soul("import", "mcp-memory", str(FIXTURE), home=soul_home)
    person = soul_json("person", "show", "Priya Raman", home=soul_home)
    assert "Works from Lisbon" in json.dumps(person)


def test_refused_and_malformed_lines_are_reported_not_fatal(soul_home: Path, tmp_path: Path) -> None:
    source = tmp_path / "memory.jsonl"
    shutil.copyfile(FIXTURE, source)
    with source.open("a", encoding="utf-8") as handle:
        if not FIXTURE.read_bytes().endswith(b"\n"):
            handle.write("\n")  # the server writes no newline after its last line
        handle.write("{not json\n")  # line 8
        handle.write(json.dumps({"type": "entity", "name": "ci", "entityType": "x", "observations": [FAKE_TOKEN]}))
        handle.write("\n")  # line 9
        handle.write(json.dumps({"type": "entity", "name": "ops", "entityType": "team", "observations": "x"}) + "\n")
        handle.write(json.dumps({"type": "mystery"}) + "\n")  # line 11
        handle.write(json.dumps({"type": "relation", "from": "ops", "to": "ci", "relationType": "owns"}) + "\n")
    proc = run_soul("import", "mcp-memory", str(source), "--json", home=soul_home)
    report = json.loads(proc.stdout)
    assert report["imported"] == 15
    assert [(p["line"], p["rule"]) for p in report["refused"]] == [(9, "github-pat")]
    assert FAKE_TOKEN not in proc.stdout + proc.stderr
    assert sorted(p["line"] for p in report["malformed"]) == [8, 10, 11]
    assert "memory.jsonl:9: github-pat" in proc.stderr
    assert "ops owns ci" in texts(soul_home)
    assert all(FAKE_TOKEN not in p.read_text() for p in store.log_files(soul_home))


def test_dry_run_writes_nothing(soul_home: Path) -> None:
    sizes = [p.stat().st_size for p in store.log_files(soul_home)]
    report = soul_json("import", "mcp-memory", str(FIXTURE), "--dry-run", home=soul_home)
    assert report["imported"] == 14 and report["dry_run"] is True
    assert [p.stat().st_size for p in store.log_files(soul_home)] == sizes
    assert soul_json("list", home=soul_home) == []


def test_one_commit_per_batch(core: object, tmp_path: Path) -> None:
    from soul.core import Soul
    from soul.importers import run

    assert isinstance(core, Soul)
    source = tmp_path / "export.jsonl"
    rows = [{"text": f"imported fact {i}", "kind": "fact", "tags": ["bulk"]} for i in range(250)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    seen: list[tuple[int, int]] = []
    report = run(core, "jsonl", source, progress=lambda done, total: seen.append((done, total)), batch=100)
    assert (report.imported, report.batches) == (250, 3)
    log = subprocess.run(["git", "log", "--format=%s"], cwd=core.home, capture_output=True, text=True).stdout
    assert sum(line.startswith("import jsonl") for line in log.splitlines()) == 3
    assert seen[-1][0] == seen[-1][1] == source.stat().st_size
    assert run(core, "jsonl", source).imported == 0


def test_markdown_folder(soul_home: Path, tmp_path: Path) -> None:
    notes = tmp_path / "vault"
    (notes / "people").mkdir(parents=True)
    (notes / ".obsidian").mkdir()
    (notes / ".obsidian" / "workspace.md").write_text("- not a note\n")
    (notes / "coffee.md").write_text(
        "---\ntitle: Coffee Brewing\ntype: note\ntags:\n- coffee\n---\n\n# Coffee Brewing\n\n"
        "## Observations\n- [method] Pour over gives clarity #brewing\n- [tip] Use water at 94C\n\n"
        "## Relations\n- relates_to [[Coffee Origins]]\n",
        encoding="utf-8",
    )
    (notes / "people" / "priya.md").write_text(
        "---\ntags: [people, payments]\nkind: person\n---\n# Priya\n\n- Leads payments\n- [ ] Likes batched reviews\n"
    )
    (notes / "policy.md").write_text("# Deploy policy\n\nWe never deploy on Fridays.\nHotfixes need two approvals.\n")
    (notes / "secret.md").write_text(f"# CI\n\n- token is {FAKE_TOKEN}\n- CI runs on GitHub Actions\n")
    report = soul_json("import", "markdown", str(notes), home=soul_home)
    assert report["imported"] == 7, report
    assert [(p["where"], p["line"], p["rule"]) for p in report["refused"]] == [("secret.md", 3, "github-pat")]
    mems = {m["text"]: m for m in soul_json("list", "-n", "0", home=soul_home)}
    pour = mems["Coffee Brewing: Pour over gives clarity"]
    assert pour["tags"] == ["coffee", "method", "brewing"] and pour["source"] == "markdown:coffee.md"
    assert "Coffee Brewing relates to Coffee Origins" in mems
    assert mems["Priya: Likes batched reviews"]["kind"] == "person"
    assert mems["Priya: Leads payments"]["tags"] == ["people", "payments"]
    assert "# Deploy policy\n\nWe never deploy on Fridays.\nHotfixes need two approvals." in mems
    assert soul_json("import", "markdown", str(notes), home=soul_home)["imported"] == 0


def test_parse_note_list_versus_prose() -> None:
    listed = parse_note("- one\n- two\n  continued\n", default_title="Things")
    assert [i.text for i in listed] == ["Things: one", "Things: two\ncontinued"]
    prose = parse_note("Some prose.\n\n- a bullet inside prose\n", default_title="Essay")
    assert [i.text for i in prose] == ["Essay\n\nSome prose.\n\n- a bullet inside prose"]
    assert parse_note("---\ntitle: x\n---\n\n", default_title="y") == []


def test_derived_ids_are_valid_stable_ulids() -> None:
    from soul.ids import is_ulid

    a = derived_id("mcp-memory", "Priya", "Works from Lisbon")
    assert is_ulid(a) and a == derived_id("mcp-memory", "Priya", "Works from Lisbon")
    assert a != derived_id("mcp-memory", "Priya", "Works from Porto")


def test_malformed_utf8_and_unknown_format(soul_home: Path, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_bytes(b'{"text": "fine", "tags": []}\n\xff\xfe\n{"text": 3}\n')
    report = soul_json("import", "jsonl", str(source), home=soul_home)
    assert report["imported"] == 1 and [p["line"] for p in report["malformed"]] == [2, 3]
    proc = run_soul("import", "evernote", str(source), home=soul_home, check=False)
    assert proc.returncode == 2 and "mcp-memory" in proc.stderr
    assert "note" in KINDS
