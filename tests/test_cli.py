"""The `soul` command as a real subprocess: the contract of DESIGN section 8."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import run_soul, soul_json


def test_init_is_idempotent_and_creates_layout(tmp_path: Path) -> None:
    home = tmp_path / "s"
    run_soul("init", "--instance", "work-laptop", home=home)
    for rel in ["soul.toml", "settings/global.toml", "memories/work-laptop", ".gitattributes", ".gitignore"]:
        assert (home / rel).exists(), rel
    assert (home / ".soul" / "instance").read_text().strip() == "work-laptop"
    assert ".soul/" in (home / ".gitignore").read_text()
    head = subprocess.run(["git", "-C", str(home), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    run_soul("init", home=home)
    again = subprocess.run(["git", "-C", str(home), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert head == again
    status = subprocess.run(["git", "-C", str(home), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == ""


def test_init_refuses_non_empty_directory(tmp_path: Path) -> None:
    home = tmp_path / "notes"
    home.mkdir()
    (home / "keep.txt").write_text("mine")
    result = run_soul("init", home=home, check=False)
    assert result.returncode == 2
    assert "not empty" in result.stderr
    assert sorted(p.name for p in home.iterdir()) == ["keep.txt"]


def test_instance_name_from_env_and_validation(tmp_path: Path) -> None:
    home = tmp_path / "s"
    run_soul("init", home=home, env={"SOUL_INSTANCE": "home-desktop"})
    assert (home / "memories" / "home-desktop").is_dir()
    bad = run_soul("init", "--instance", "../evil", home=tmp_path / "t", check=False)
    assert bad.returncode == 2


def test_remember_list_recall_forget(soul_home: Path) -> None:
    out = soul_json(
        "remember", "The staging database runs on port 5433", "--kind", "fact", "--tag", "db", home=soul_home
    )
    mid = out["id"]
    assert len(mid) == 26
    log = subprocess.run(["git", "-C", str(soul_home), "log", "--oneline"], capture_output=True, text=True).stdout
    assert len(log.splitlines()) == 2, "remember makes a local commit"
    mems = soul_json("list", home=soul_home)
    assert [m["id"] for m in mems] == [mid]
    assert mems[0]["kind"] == "fact" and mems[0]["tags"] == ["db"] and mems[0]["by"] == "alpha"
    hits = soul_json("recall", "staging database port", home=soul_home)
    assert hits[0]["id"] == mid
    assert {"id", "text", "score", "kind", "tags", "by", "at"} <= set(hits[0])
    run_soul("forget", mid, home=soul_home)
    assert soul_json("list", home=soul_home) == []
    missing = run_soul("forget", mid, home=soul_home, check=False)
    assert missing.returncode == 1 and "no memory" in missing.stderr


def test_remember_from_stdin_and_duplicate(soul_home: Path) -> None:
    first = json.loads(
        run_soul("remember", "-", "--json", home=soul_home, input="Alice reviews all infra PRs\n").stdout
    )
    second = soul_json("remember", "alice reviews all infra PRs.", home=soul_home)
    assert second == {"id": first["id"], "duplicate_of": first["id"]}
    third = soul_json("remember", "alice reviews all infra PRs.", "--allow-duplicate", home=soul_home)
    assert third["id"] != first["id"] and "duplicate_of" not in third


def test_usage_errors_exit_2(soul_home: Path) -> None:
    assert run_soul("remember", "x", "--kind", "bogus", home=soul_home, check=False).returncode == 2
    assert run_soul("remember", "   ", home=soul_home, check=False).returncode == 2
    assert run_soul("no-such-command", home=soul_home, check=False).returncode == 2
    bad_utf8 = run_soul("remember", "-", home=soul_home, input=b"\xff\xfe", check=False)
    assert bad_utf8.returncode == 2 and "UTF-8" in bad_utf8.stderr


def test_option_like_text_is_stored_as_text(soul_home: Path) -> None:
    out = json.loads(run_soul("remember", "--json", "--", "--output=x", home=soul_home).stdout)
    assert soul_json("list", home=soul_home)[0]["text"] == "--output=x"
    assert out["id"]


def test_missing_soul_is_a_clear_error(tmp_path: Path) -> None:
    result = run_soul("list", home=tmp_path / "nowhere", check=False)
    assert result.returncode == 1
    assert "no soul at" in result.stderr and "soul init" in result.stderr


def test_get_set_unset_machine(soul_home: Path) -> None:
    run_soul("set", "editor.tab_width", "4", home=soul_home)
    assert soul_json("get", "editor.tab_width", home=soul_home) == {
        "key": "editor.tab_width",
        "value": 4,
        "source": "global",
    }
    run_soul("set", "editor.tab_width", "8", "--machine", home=soul_home)
    assert soul_json("get", "editor.tab_width", home=soul_home)["value"] == 8
    assert run_soul("get", "editor.tab_width", home=soul_home).stdout.strip() == "8"
    run_soul("unset", "editor.tab_width", "--machine", home=soul_home)
    assert soul_json("get", "editor.tab_width", home=soul_home)["value"] == 4
    missing = run_soul("get", "nope.key", home=soul_home, check=False)
    assert missing.returncode == 1
    assert soul_json("get", home=soul_home) == {"editor.tab_width": 4}


def test_status_and_doctor_report_quarantine(soul_home: Path) -> None:
    run_soul("remember", "one fact", home=soul_home)
    log = next((soul_home / "memories" / "alpha").glob("*.jsonl"))
    with open(log, "ab") as handle:
        handle.write(b"not json at all\n")
    status = soul_json("status", home=soul_home)
    assert status["memories"] == 1 and status["instance"] == "alpha"
    assert len(status["quarantined"]) == 1 and status["quarantined"][0]["file"].startswith("memories/alpha/")
    doctor = run_soul("doctor", "--json", home=soul_home, check=False)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert checks["event logs"]["ok"] is False
    assert doctor.returncode == 1
    human = run_soul("status", home=soul_home)
    assert "quarantined" in human.stdout


def test_commit_on_write_can_be_disabled(soul_home: Path) -> None:
    toml = soul_home / "soul.toml"
    toml.write_text(toml.read_text().replace("commit_on_write = true", "commit_on_write = false"))
    subprocess.run(["git", "-C", str(soul_home), "commit", "-qam", "config"], check=True)
    run_soul("remember", "not committed yet", home=soul_home)
    log = subprocess.run(["git", "-C", str(soul_home), "log", "--oneline"], capture_output=True, text=True).stdout
    assert len(log.splitlines()) == 2
    assert soul_json("status", home=soul_home)["git"]["dirty"] == 1


def test_unexpected_errors_are_one_line_with_saved_traceback(soul_home: Path) -> None:
    import shutil

    shutil.rmtree(soul_home / "memories" / "alpha")
    (soul_home / "memories" / "alpha").write_text("a file where a directory should be")
    result = run_soul("remember", "cannot write", home=soul_home, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("soul: unexpected error")
    assert "Traceback" not in result.stderr
    saved = list((soul_home / ".soul" / "logs").glob("error-*.log"))
    assert len(saved) == 1 and "Traceback" in saved[0].read_text()
