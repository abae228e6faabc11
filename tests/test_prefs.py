"""Preference inference (Wilson bound), acceptance below explicit settings, and conflicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from soul import prefs
from soul.core import Soul
from soul.errors import NotFound, SecretRefused, UsageError

from conftest import run_soul, soul_json


@pytest.fixture
def soul_home(tmp_path: Path) -> Path:
    """The conftest soul (instance alpha), created in-process: `soul init` as a subprocess costs
    about a second per test on a loaded machine, and init is tested elsewhere."""
    home = tmp_path / "soul"
    Soul.init(home, "alpha")
    return home


@pytest.mark.parametrize(
    ("wins", "n", "inferred"),
    [(3, 3, True), (2, 2, False), (3, 4, False), (4, 4, True), (4, 5, False), (8, 10, True), (0, 0, False)],
)
def test_wilson_threshold(wins: int, n: int, inferred: bool) -> None:
    lower = prefs.wilson_lower(wins, n)
    assert 0.0 <= lower <= wins / n if n else lower == 0.0
    assert (n >= prefs.MIN_OBSERVATIONS and lower > prefs.MIN_CONFIDENCE) is inferred


def test_wilson_known_value() -> None:
    assert prefs.wilson_lower(3, 3) == pytest.approx(3 / (3 + prefs.Z**2))


def test_inference_needs_consistent_evidence(core: Soul) -> None:
    core.observe_choice("python.runner", "pytest", over=["unittest"])
    core.observe_choice("python.runner", "pytest")
    result = core.observe_choice("python.runner", "unittest", over=["pytest"])
    assert result["inference"]["inferred"] is None and result["inference"]["observations"] == 3
    for _ in range(3):
        inf = core.observe_choice("python.runner", "pytest", context="repo x")["inference"]
    assert inf["evidence"] == {"pytest": 5, "unittest": 1} and inf["inferred"] is None  # lower bound 0.57
    inf = core.observe_choice("python.runner", "pytest")["inference"]
    assert inf["evidence"] == {"pytest": 6, "unittest": 1} and inf["inferred"] == "pytest"  # 0.62
    [row] = [p for p in core.preferences() if p["category"] == "python.runner"]
    assert row["source"] == "inferred" and row["value"] == "pytest" and row["confidence"] > 0.6


def test_inferred_is_not_applied_until_accepted_and_explicit_wins(core: Soul) -> None:
    for _ in range(3):
        core.observe_choice("editor.tab_width", "4", over=["2"])
    with pytest.raises(NotFound):
        core.get_setting("editor.tab_width")
    accepted = core.accept_preference("editor.tab_width")
    assert accepted["value"] == 4 and accepted["effective_source"] == "preference"
    assert core.get_setting("editor.tab_width") == (4, "preference")
    core.set_setting("editor.tab_width", 8)
    assert core.get_setting("editor.tab_width") == (8, "global")
    [row] = [p for p in core.preferences() if p["category"] == "editor.tab_width"]
    assert row["value"] == 8 and row["source"] == "global" and row["accepted"] == 4 and row["inferred"] == "4"
    core.set_setting("editor.tab_width", 2, machine=True)
    assert core.get_setting("editor.tab_width") == (2, "machine")


def test_accept_without_evidence_is_refused(core: Soul) -> None:
    with pytest.raises(NotFound):
        core.accept_preference("shell.name")
    core.observe_choice("shell.name", "zsh")
    core.observe_choice("shell.name", "bash")
    core.observe_choice("shell.name", "zsh")
    with pytest.raises(UsageError, match="not enough evidence"):
        core.accept_preference("shell.name")
    assert core.accepted_preferences() == {}


def test_observe_validates_and_guards(core: Soul) -> None:
    with pytest.raises(Exception, match="invalid settings key"):
        core.observe_choice("not a key", "x")
    with pytest.raises(UsageError):
        core.observe_choice("a.b", "   ")
    with pytest.raises(SecretRefused):
        core.observe_choice("a.b", "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8")
    assert core.view().choices == []


def test_fast_accepted_scan_matches_the_fold(core: Soul) -> None:
    for cat, value in [("a.x", "1"), ("a.y", "yes"), ("b", "true")]:
        for _ in range(3):
            core.observe_choice(cat, value)
        core.accept_preference(cat)
        assert core.accepted_preferences() == _nested_from_view(core)
    assert core.accepted_preferences() == {"a": {"x": 1, "y": "yes"}, "b": True}
    assert (core.home / ".soul" / "accepted-prefs.json").exists()
    # a fresh object (no in-memory state) reads the same from the cache and the logs
    assert Soul.open(core.home, "alpha").accepted_preferences() == {"a": {"x": 1, "y": "yes"}, "b": True}


def _nested_from_view(core: Soul) -> dict[str, object]:
    out: dict[str, object] = {}
    for cat, acc in core.view().accepted.items():
        node = out
        *head, last = cat.split(".")
        for part in head:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[last] = acc["value"]
    return out


def test_cli_observe_prefs_accept(soul_home: Path, core: Soul) -> None:
    core.observe_choice("git.editor", "vim")
    core.observe_choice("git.editor", "vim")
    assert soul_json("observe", "git.editor", "vim", "--over", "nano", home=soul_home)["inference"]["inferred"] == "vim"
    rows = soul_json("prefs", home=soul_home)
    assert [(r["category"], r["source"], r["value"]) for r in rows] == [("git.editor", "inferred", "vim")]
    assert "accept with" in run_soul("prefs", home=soul_home).stdout
    run_soul("prefs", "accept", "git.editor", home=soul_home)
    assert soul_json("get", "git.editor", home=soul_home) == {
        "key": "git.editor",
        "value": "vim",
        "source": "preference",
    }
    assert run_soul("prefs", "accept", "nothing.here", home=soul_home, check=False).returncode == 1


# ---------------------------------------------------------------------- conflicts


def _conflict(core: Soul, key: str, kept: object, dropped: object, file: str = "settings/global.toml") -> str:
    fields = {"key": key, "kept": kept, "dropped": dropped, "from": "beta", "policy": "newest", "file": file}
    return str(core.append("conflict", fields)["id"])


def test_conflicts_list_and_resolve(core: Soul) -> None:
    first = _conflict(core, "ui.theme", "dark", "light")
    second = _conflict(core, "ui.theme", "dark", "solarized")
    other = _conflict(core, "ui.font", "mono", "sans")
    listed = core.list_conflicts()
    assert [c["id"] for c in listed] == [other, second, first]
    assert listed[-1]["kept"] == "dark" and listed[-1]["dropped"] == "light" and listed[-1]["from"] == "beta"
    result = core.resolve_conflict("ui.theme", "light")
    assert result == {"key": "ui.theme", "value": "light", "resolved": [second, first], "file": "settings/global.toml"}
    assert core.get_setting("ui.theme") == ("light", "global")
    assert [c["id"] for c in core.list_conflicts()] == [other]
    with pytest.raises(NotFound):
        core.resolve_conflict("ui.theme", "dark")


def test_conflict_in_own_machine_file_resolves_there(core: Soul) -> None:
    _conflict(core, "ui.zoom", 1, 2, file="settings/machines/alpha.toml")
    assert core.resolve_conflict("ui.zoom", 3)["file"] == "settings/machines/alpha.toml"
    assert core.get_setting("ui.zoom") == (3, "machine")


def test_conflict_in_another_machines_file_is_refused(core: Soul) -> None:
    _conflict(core, "ui.zoom", 1, 2, file="settings/machines/beta.toml")
    with pytest.raises(UsageError, match="only beta"):
        core.resolve_conflict("ui.zoom", 3)
    assert len(core.list_conflicts()) == 1


def test_resolve_refuses_a_secret_value(core: Soul) -> None:
    _conflict(core, "svc.key", "a", "b")
    with pytest.raises(SecretRefused):
        core.resolve_conflict("svc.key", "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8")
    assert len(core.list_conflicts()) == 1


def test_cli_conflicts(soul_home: Path, core: Soul) -> None:
    _conflict(core, "ui.theme", "dark", "light")
    rows = soul_json("conflicts", home=soul_home)
    assert [(r["key"], r["kept"], r["dropped"]) for r in rows] == [("ui.theme", "dark", "light")]
    assert "soul conflicts resolve ui.theme" in run_soul("conflicts", home=soul_home).stdout
    run_soul("conflicts", "resolve", "ui.theme", "42", home=soul_home)
    assert Soul.open(soul_home, "alpha").get_setting("ui.theme") == (42, "global")
    assert soul_json("conflicts", home=soul_home) == []
