"""`soul install mcp --client X`: merges into the client's real JSON config under a temporary HOME."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from test_install_links import snapshot

from soul.core import Soul
from soul.errors import UsageError
from soul.install import Disk, Recorder, clients

from conftest import run_soul


@pytest.fixture
def soul_home(tmp_path: Path) -> Path:
    """Initialised in-process (faster than conftest's CLI `soul init`, which test_cli covers)."""
    home = tmp_path / "soul"
    Soul.init(home, "alpha")
    return home


CLAUDE_JSON = {
    "numStartups": 34,
    "theme": "dark",
    "projects": {"/work/x": {"allowedTools": [], "mcpServers": {"local-one": {"command": "npx", "args": ["a"]}}}},
    "mcpServers": {"github": {"type": "stdio", "command": "npx", "args": ["-y", "gh"], "env": {"X": "${X}"}}},
    "zLast": [1, 2, {"é": "ü"}],
}


@pytest.fixture
def home() -> Path:
    return Path(os.environ["HOME"])


def test_claude_code_merge_keeps_everything_and_uninstall_restores_bytes(core: Soul, home: Path) -> None:
    path = home / ".claude.json"
    original = json.dumps(CLAUDE_JSON, indent=2, ensure_ascii=False) + "\n"
    path.write_text(original, encoding="utf-8")
    path.chmod(0o600)

    report = clients.install(core, "claude-code", Disk())
    assert report["changed"] and report["path"] == str(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    entry = data["mcpServers"]["soul"]
    assert entry["type"] == "stdio" and Path(entry["command"]).is_absolute()
    assert entry["args"][-5:] == ["--home", str(core.home), "--instance", "alpha", "mcp"]
    for key, value in CLAUDE_JSON.items():
        if key != "mcpServers":
            assert data[key] == value
    assert data["mcpServers"]["github"] == CLAUDE_JSON["mcpServers"]["github"]  # type: ignore[index]
    assert list(data) == list(CLAUDE_JSON)  # key order kept
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Path(report["backup"]).read_text(encoding="utf-8") == original
    assert Path(report["backup"]).parent == core.home / ".soul" / "backups"

    again = clients.install(core, "claude-code", Disk())
    assert not again["changed"] and len(list((core.home / ".soul" / "backups").iterdir())) == 1

    clients.uninstall(core, "claude-code", Disk())
    assert path.read_text(encoding="utf-8") == original
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_new_cursor_file_and_uninstall_leaves_home_as_it_was(core: Soul, home: Path) -> None:
    before = snapshot(home)
    clients.install(core, "cursor", Disk())
    path = home / ".cursor" / "mcp.json"
    assert set(json.loads(path.read_text())["mcpServers"]) == {"soul"}
    assert "type" not in json.loads(path.read_text())["mcpServers"]["soul"]
    clients.uninstall(core, "cursor", Disk())
    assert snapshot(home) == before


def test_indentation_and_missing_newline_are_kept(core: Soul, home: Path) -> None:
    path = home / ".cursor" / "mcp.json"
    path.parent.mkdir()
    original = json.dumps({"mcpServers": {}, "other": True}, indent=4)
    path.write_text(original)
    clients.install(core, "cursor", Disk())
    text = path.read_text()
    assert '\n    "mcpServers": {\n        "soul": {' in text and not text.endswith("\n")
    clients.uninstall(core, "cursor", Disk())
    assert path.read_text() == original


def test_invalid_json_is_refused_and_untouched(core: Soul, home: Path, soul_home: Path) -> None:
    path = home / ".claude.json"
    path.write_text('{"mcpServers": {,}}\n')
    with pytest.raises(UsageError, match="not valid JSON"):
        clients.install(core, "claude-code", Disk())
    proc = run_soul("install", "mcp", "--client", "claude-code", home=soul_home, check=False)
    assert proc.returncode == 2 and "refusing to overwrite" in proc.stderr
    assert path.read_text() == '{"mcpServers": {,}}\n'
    path.write_text('{"mcpServers": []}')
    with pytest.raises(UsageError, match="not an object"):
        clients.install(core, "claude-code", Disk())


def test_claude_desktop_on_linux_follows_xdg(core: Soul, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if clients.sys.platform == "darwin":
        pytest.skip("macOS uses ~/Library/Application Support")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg"))
    clients.install(core, "claude-desktop", Disk())
    assert (home / "xdg" / "Claude" / "claude_desktop_config.json").is_file()
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert clients.config_path("claude-desktop") == home / ".config" / "Claude" / "claude_desktop_config.json"


def test_dry_run_and_symlinked_config(core: Soul, home: Path, tmp_path: Path) -> None:
    real = tmp_path / "dotfiles-repo" / "mcp.json"
    real.parent.mkdir()
    real.write_text('{"mcpServers": {"x": {"command": "x"}}}\n')
    (home / ".cursor").mkdir()
    os.symlink(real, home / ".cursor" / "mcp.json")
    before = snapshot(home), real.read_text()
    rec = Recorder()
    assert clients.install(core, "cursor", rec)["changed"]
    assert (snapshot(home), real.read_text()) == before and rec.done
    clients.install(core, "cursor", Disk())
    assert (home / ".cursor" / "mcp.json").is_symlink()
    assert set(json.loads(real.read_text())["mcpServers"]) == {"x", "soul"}


def test_entry_runs_from_a_minimal_environment(core: Soul, home: Path) -> None:
    report = clients.install(core, "claude-code", Disk())
    entry = report["entry"]
    # MCP clients pass little more than HOME and PATH; the explicit args must find the soul.
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    cmd = [entry["command"], *entry["args"][:-1], "status", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["home"] == str(core.home) and info["instance"] == "alpha"


def test_cli_and_doctor(soul_home: Path, home: Path) -> None:
    out = json.loads(run_soul("install", "mcp", "--client", "cursor", "--json", home=soul_home).stdout)
    assert out["changed"] and not out["dry_run"]
    bad = run_soul("install", "mcp", "--client", "vim", home=soul_home, check=False)
    assert bad.returncode == 2 and "unknown MCP client" in bad.stderr
    soul = Soul.open(soul_home, "alpha")
    assert next(c for c in soul.doctor() if c["name"] == "mcp clients")["ok"]
    path = home / ".cursor" / "mcp.json"
    data = json.loads(path.read_text())
    data["mcpServers"]["soul"]["command"] = str(home / "gone" / "soul")
    path.write_text(json.dumps(data))
    check = next(c for c in soul.doctor() if c["name"] == "mcp clients")
    assert not check["ok"] and "does not exist" in check["message"]
    assert next(c for c in soul.doctor(fix=True) if c["name"] == "mcp clients")["ok"]
    assert Path(json.loads(path.read_text())["mcpServers"]["soul"]["command"]).is_file()
    run_soul("uninstall", "mcp", "--client", "cursor", home=soul_home)
    assert not path.exists() and not path.parent.exists()  # soul created both, so both go
