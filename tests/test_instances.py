"""Instances: opt-in registry files, throttled heartbeats, liveness states."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from soul import instances
from soul.core import Soul
from soul.errors import NotFound, UsageError
from soul.ids import iso_from_ms, now_ms

from conftest import run_soul, soul_json


@pytest.fixture
def soul_home(tmp_path: Path) -> Path:
    """The conftest soul (instance alpha), created in-process: `soul init` as a subprocess costs
    about a second per test on a loaded machine, and init is tested elsewhere."""
    home = tmp_path / "soul"
    Soul.init(home, "alpha")
    return home


def _git(home: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(home), *args], capture_output=True, text=True, check=True).stdout


def _commits(home: Path) -> int:
    return int(_git(home, "rev-list", "--count", "HEAD").strip())


def test_register_needs_consent_and_writes_nothing_without_it(core: Soul) -> None:
    with pytest.raises(UsageError):
        core.register_instance()
    assert not (core.home / "instances").exists()
    assert core.heartbeat() == {"registered": False, "name": "alpha"}
    assert not (core.home / "instances").exists()
    assert core.list_instances() == []


def test_cli_register_without_tty_or_yes_is_a_usage_error(soul_home: Path) -> None:
    result = run_soul("instance", "register", home=soul_home, input="", check=False)
    assert result.returncode == 2
    assert "--yes" in result.stderr
    assert not (soul_home / "instances").exists()


def test_register_writes_and_commits_own_file(core: Soul) -> None:
    record = core.register_instance(yes=True)
    path = core.home / "instances" / "alpha.toml"
    data = tomllib.loads(path.read_text())
    assert data["name"] == "alpha" and data["hostname"] and data["platform"]
    assert data["registered_at"] == data["last_seen"] == record["last_seen"]
    assert _git(core.home, "status", "--porcelain", "--", "instances") == ""
    assert "instances/alpha.toml" in _git(core.home, "ls-files")
    assert core.is_registered()
    [listed] = core.list_instances()
    assert listed["state"] == "alive" and listed["this"] is True


def test_register_again_keeps_registered_at(core: Soul, monkeypatch: pytest.MonkeyPatch) -> None:
    first = core.register_instance(yes=True)
    monkeypatch.setenv("SOUL_CLOCK_SKEW", "3600")
    second = core.register_instance(yes=True)
    assert second["registered_at"] == first["registered_at"]
    assert second["last_seen"] > first["last_seen"]


def test_heartbeat_is_throttled_to_one_commit_per_interval(core: Soul, monkeypatch: pytest.MonkeyPatch) -> None:
    core.register_instance(yes=True)
    before = _commits(core.home)
    beat = core.heartbeat()
    assert beat["registered"] and beat["updated"] is False
    assert _commits(core.home) == before
    monkeypatch.setenv("SOUL_CLOCK_SKEW", str(instances.HEARTBEAT_INTERVAL + 1))
    beat = core.heartbeat()
    assert beat["updated"] is True
    assert _commits(core.home) == before + 1
    assert tomllib.loads((core.home / "instances/alpha.toml").read_text())["last_seen"] == beat["last_seen"]
    assert core.heartbeat()["updated"] is False


def test_unregister_removes_file_commits_and_stops_heartbeats(core: Soul) -> None:
    core.register_instance(yes=True)
    result = core.unregister_instance()
    assert result == {"name": "alpha", "registered": False}
    assert not (core.home / "instances/alpha.toml").exists()
    assert "instances/alpha.toml" not in _git(core.home, "ls-files")
    assert _git(core.home, "status", "--porcelain") == ""
    assert core.heartbeat()["registered"] is False
    assert not (core.home / "instances/alpha.toml").exists()
    with pytest.raises(NotFound):
        core.unregister_instance()


@pytest.mark.parametrize(
    ("age", "state"),
    [(0, "alive"), (instances.ALIVE_WITHIN - 5, "alive"), (instances.ALIVE_WITHIN + 5, "stale"),
     (instances.STALE_WITHIN - 5, "stale"), (instances.STALE_WITHIN + 5, "offline")],
)  # fmt: skip
def test_state_of_thresholds(age: int, state: str) -> None:
    now = now_ms()
    assert instances.state_of(iso_from_ms(now - age * 1000), now) == state


def test_state_of_missing_or_bad_time_is_offline() -> None:
    assert instances.state_of(None, now_ms()) == "offline"
    assert instances.state_of("yesterday-ish", now_ms()) == "offline"


def test_list_reads_other_instances_and_skips_bad_files(core: Soul) -> None:
    core.register_instance(yes=True)
    other = core.home / "instances"
    old = iso_from_ms(now_ms() - 3 * 86400 * 1000)
    (other / "beta.toml").write_text(f'name = "beta"\nhostname = "b"\nplatform = "x"\nlast_seen = "{old}"\n')
    (other / "broken.toml").write_text("name = [unclosed\n")
    (other / "Bad Name.toml").write_text('name = "x"\n')
    rows = {r["name"]: r for r in core.list_instances()}
    assert set(rows) == {"alpha", "beta"}
    assert rows["beta"]["state"] == "offline" and rows["beta"]["this"] is False


def test_cli_register_list_unregister_json(soul_home: Path) -> None:
    record: dict[str, Any] = soul_json("instance", "register", "--yes", home=soul_home)
    assert record["registered"] is True
    rows = soul_json("instance", "list", home=soul_home)
    assert [r["name"] for r in rows] == ["alpha"]
    assert soul_json("instance", "unregister", home=soul_home)["registered"] is False
    assert Soul.open(soul_home, "alpha").list_instances() == []
