"""`soul install links` / `soul uninstall links` against a temporary HOME (see conftest)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from soul.core import Soul
from soul.errors import UsageError
from soul.install import Disk, Recorder, links

from conftest import run_soul


@pytest.fixture
def soul_home(tmp_path: Path) -> Path:
    """Initialised in-process (faster than conftest's CLI `soul init`, which test_cli covers)."""
    home = tmp_path / "soul"
    Soul.init(home, "alpha")
    return home


def snapshot(root: Path) -> dict[str, Any]:
    """Every path under `root` with its type, mode, content or link target (not times)."""
    out: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            out[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
    return out


def with_links(home: Path, mapping: dict[str, str]) -> Soul:
    lines = "".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in mapping.items())
    with open(home / "soul.toml", "a", encoding="utf-8") as handle:
        handle.write(lines)
    return Soul.open(home, "alpha")


def dotfile(home: Path, rel: str, text: str) -> Path:
    path = home / "dotfiles" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def user_home() -> Path:
    return Path(os.environ["HOME"])


def test_install_links_then_idempotent(soul_home: Path, user_home: Path) -> None:
    src = dotfile(soul_home, "CLAUDE.md", "be brief\n")
    soul = with_links(soul_home, {"dotfiles/CLAUDE.md": "~/.claude/CLAUDE.md"})
    w = Disk()
    report = links.apply(soul, links.plan(soul), w)
    target = user_home / ".claude" / "CLAUDE.md"
    assert target.is_symlink() and os.readlink(target) == str(src)
    assert target.read_text() == "be brief\n"
    assert [r["action"] for r in report] == ["link"]
    before = snapshot(user_home)
    w2 = Disk()
    again = links.apply(soul, links.plan(soul), w2)
    assert [r["action"] for r in again] == ["ok"]
    assert w2.done == [] and snapshot(user_home) == before


def test_backup_and_uninstall_restore_exact_state(soul_home: Path, user_home: Path) -> None:
    dotfile(soul_home, "CLAUDE.md", "from the soul\n")
    dotfile(soul_home, "gitconfig", "[user]\n")
    dotfile(soul_home, "nvim/init.lua", "-- lua\n")
    (user_home / ".claude").mkdir()
    existing = user_home / ".claude" / "CLAUDE.md"
    existing.write_text("my own notes\n")
    existing.chmod(0o600)
    (user_home / "elsewhere").write_text("x")
    os.symlink(user_home / "elsewhere", user_home / ".gitconfig")  # a foreign link
    (user_home / "unrelated.txt").write_text("keep me")
    original = snapshot(user_home)

    soul = with_links(
        soul_home,
        {
            "dotfiles/CLAUDE.md": "~/.claude/CLAUDE.md",
            "dotfiles/gitconfig": "~/.gitconfig",
            "dotfiles/nvim": "~/.config/nvim",
        },
    )
    report = links.apply(soul, links.plan(soul), Disk())
    assert sorted(r["action"] for r in report) == ["link", "replace", "replace"]
    backups = [Path(r["backup"]) for r in report if r["backup"]]
    claude_backup = next(b for b in backups if b.name.startswith("CLAUDE.md.soul-backup-"))
    assert claude_backup.read_text() == "my own notes\n"
    assert stat.S_IMODE(claude_backup.stat().st_mode) == 0o600
    assert (user_home / ".config" / "nvim" / "init.lua").read_text() == "-- lua\n"

    out = links.apply_uninstall(soul, Disk())
    assert len(out) == 3
    assert snapshot(user_home) == original
    assert links.read_manifest(soul) == {}


def test_conflicts_are_all_found_and_nothing_changes(soul_home: Path, user_home: Path, tmp_path: Path) -> None:
    dotfile(soul_home, "ok.md", "fine\n")
    dotfile(soul_home, "other", "o\n")
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    os.symlink(outside, soul_home / "dotfiles" / "escape")
    (user_home / "afile").write_text("in the way")
    soul = with_links(
        soul_home,
        {
            "dotfiles/ok.md": "~/ok.md",
            "dotfiles/../soul.toml": "~/a",
            "dotfiles/escape": "~/b",
            "dotfiles/missing": "~/c",
            "soul.toml": "~/d",
            "dotfiles/other": "~/afile/below",
        },
    )
    before = snapshot(user_home)
    todo = links.plan(soul)
    problems = {c["source"]: c["problem"] for c in todo.conflicts}
    assert "'..'" in problems["dotfiles/../soul.toml"]
    assert "outside" in problems["dotfiles/escape"]
    assert "does not exist" in problems["dotfiles/missing"]
    assert "under dotfiles/" in problems["soul.toml"]
    assert "not a directory" in problems["dotfiles/other"]
    assert len(todo.conflicts) == 5
    with pytest.raises(UsageError, match="nothing was changed"):
        links.apply(soul, todo, Disk())
    assert snapshot(user_home) == before and not (user_home / "ok.md").exists()


def test_refuses_targets_inside_the_soul_and_duplicates(soul_home: Path) -> None:
    dotfile(soul_home, "a", "a")
    dotfile(soul_home, "b", "b")
    soul = with_links(
        soul_home, {"dotfiles/a": str(soul_home / "settings" / "x"), "dotfiles/b": "~/same", "dotfiles/a2": "~/same"}
    )
    dotfile(soul_home, "a2", "a2")
    problems = [c["problem"] for c in links.plan(soul).conflicts]
    assert any("inside the soul" in p for p in problems)
    assert any("also the target" in p for p in problems)


def test_dry_run_is_the_same_plan(soul_home: Path, user_home: Path) -> None:
    dotfile(soul_home, "CLAUDE.md", "x\n")
    (user_home / ".claude").mkdir()
    (user_home / ".claude" / "CLAUDE.md").write_text("old\n")
    dotfile(soul_home, "zshrc", "z\n")
    soul = with_links(soul_home, {"dotfiles/CLAUDE.md": "~/.claude/CLAUDE.md", "dotfiles/zshrc": "~/.zsh/zshrc"})
    before = snapshot(user_home)
    rec = Recorder()
    links.apply(soul, links.plan(soul), rec)
    assert snapshot(user_home) == before
    assert not links.manifest_path(soul).exists()
    real = Disk()
    links.apply(soul, links.plan(soul), real)
    # Backup names carry a timestamp; everything else must be identical.
    assert [op.split(".soul-backup-")[0] for op in rec.done] == [op.split(".soul-backup-")[0] for op in real.done]


def test_copy_when_symlinks_are_not_allowed(soul_home: Path, user_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUL_NO_SYMLINKS", "1")
    src = dotfile(soul_home, "CLAUDE.md", "v1\n")
    (user_home / "CLAUDE.md").write_text("mine\n")
    original = snapshot(user_home)
    soul = with_links(soul_home, {"dotfiles/CLAUDE.md": "~/CLAUDE.md"})
    report = links.apply(soul, links.plan(soul), Disk())
    target = user_home / "CLAUDE.md"
    assert not target.is_symlink() and target.read_text() == "v1\n"
    assert "copied" in report[0]["note"]
    assert [s.action for s in links.plan(soul).steps] == ["ok"]
    src.write_text("v2\n")
    assert [s.action for s in links.plan(soul).steps] == ["refresh"]
    links.apply(soul, links.plan(soul), Disk())
    assert target.read_text() == "v2\n"
    links.apply_uninstall(soul, Disk())
    assert snapshot(user_home) == original


def test_uninstall_leaves_a_changed_target_alone(soul_home: Path, user_home: Path) -> None:
    dotfile(soul_home, "rc", "soul\n")
    (user_home / ".rc").write_text("orig\n")
    soul = with_links(soul_home, {"dotfiles/rc": "~/.rc"})
    links.apply(soul, links.plan(soul), Disk())
    (user_home / ".rc").unlink()
    (user_home / ".rc").write_text("user replaced it\n")
    out = links.apply_uninstall(soul, Disk())
    assert "left alone" in out[0]["note"]
    assert (user_home / ".rc").read_text() == "user replaced it\n"
    assert str(user_home / ".rc") in links.read_manifest(soul)


def test_cli_json_and_conflict_exit_code(soul_home: Path, user_home: Path) -> None:
    dotfile(soul_home, "CLAUDE.md", "x\n")
    with_links(soul_home, {"dotfiles/CLAUDE.md": "~/.claude/CLAUDE.md"})
    dry = json.loads(run_soul("install", "links", "--dry-run", "--json", home=soul_home).stdout)
    assert dry["dry_run"] and dry["links"][0]["action"] == "link"
    assert not (user_home / ".claude").exists()
    done = json.loads(run_soul("install", "links", "--json", home=soul_home).stdout)
    assert any(op.startswith("link ") for op in done["operations"])
    assert (user_home / ".claude" / "CLAUDE.md").is_symlink()
    run_soul("uninstall", "links", home=soul_home)
    assert not (user_home / ".claude").exists()
    with_links(soul_home, {"dotfiles/nope": "~/nope"})
    bad = run_soul("install", "links", home=soul_home, check=False)
    assert bad.returncode == 2 and "nothing was changed" in bad.stderr


def test_doctor_reports_and_fixes_missing_links(soul_home: Path, user_home: Path) -> None:
    dotfile(soul_home, "CLAUDE.md", "x\n")
    (user_home / "taken").write_text("someone else's")
    dotfile(soul_home, "other", "o\n")
    soul = with_links(soul_home, {"dotfiles/CLAUDE.md": "~/.claude/CLAUDE.md", "dotfiles/other": "~/taken"})
    check = next(c for c in soul.doctor() if c["name"] == "links")
    assert not check["ok"] and "missing" in check["message"] and check["fix"]
    fixed = next(c for c in soul.doctor(fix=True) if c["name"] == "links")
    assert (user_home / ".claude" / "CLAUDE.md").is_symlink()
    # A file in the way is never replaced by --fix: that needs an explicit install (with backup).
    assert not fixed["ok"] and "replace" in fixed["message"]
    assert (user_home / "taken").read_text() == "someone else's"
    links.apply(soul, links.plan(soul), Disk())
    assert next(c for c in soul.doctor() if c["name"] == "links")["ok"]


def test_doctor_cli_lists_install_checks(soul_home: Path, user_home: Path) -> None:
    dotfile(soul_home, "CLAUDE.md", "x\n")
    with_links(soul_home, {"dotfiles/CLAUDE.md": "~/.claude/CLAUDE.md"})
    proc = run_soul("doctor", "--json", home=soul_home, check=False)
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert proc.returncode == 1 and not checks["links"]["ok"]
    assert checks["mcp clients"]["ok"] and checks["service"]["ok"]
    run_soul("doctor", "--fix", home=soul_home, check=False)
    assert (user_home / ".claude" / "CLAUDE.md").is_symlink()


def test_remapping_a_target_keeps_the_original_backup(soul_home: Path, user_home: Path) -> None:
    dotfile(soul_home, "one", "1\n")
    dotfile(soul_home, "two", "2\n")
    (user_home / ".rc").write_text("original\n")
    original = snapshot(user_home)
    soul = with_links(soul_home, {"dotfiles/one": "~/.rc"})
    links.apply(soul, links.plan(soul), Disk())
    text = (soul_home / "soul.toml").read_text().replace('"dotfiles/one" = "~/.rc"', '"dotfiles/two" = "~/.rc"')
    (soul_home / "soul.toml").write_text(text)
    soul = Soul.open(soul_home, "alpha")
    assert [s.action for s in links.plan(soul).steps] == ["refresh"]
    links.apply(soul, links.plan(soul), Disk())
    assert (user_home / ".rc").read_text() == "2\n"
    links.apply_uninstall(soul, Disk())
    assert snapshot(user_home) == original
