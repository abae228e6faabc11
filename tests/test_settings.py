"""Settings: dotted keys, comments kept, machine overrides, env references, bad files untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from soul import settings
from soul.errors import NotFound, SettingsError


def test_set_keeps_comments_and_order(core: Any) -> None:
    path = settings.global_path(core.home)
    path.write_text('# my settings\n[editor]\n# width in spaces\ntab_width = 2\ntheme = "dark"\n')
    core.set_setting("editor.tab_width", 4)
    core.set_setting("shell.name", "zsh")
    text = path.read_text()
    assert "# my settings" in text and "# width in spaces" in text
    assert text.index("tab_width = 4") < text.index('theme = "dark"')
    assert core.get_setting("editor.tab_width") == (4, "global")
    assert core.get_setting("shell.name") == ("zsh", "global")


def test_machine_overrides_global(core: Any) -> None:
    core.set_setting("editor.font", "Iosevka")
    core.set_setting("editor.font", "Menlo", machine=True)
    assert core.get_setting("editor.font") == ("Menlo", "machine")
    assert (core.home / "settings" / "machines" / "alpha.toml").exists()
    core.unset_setting("editor.font", machine=True)
    assert core.get_setting("editor.font") == ("Iosevka", "global")


def test_unset_removes_empty_tables(core: Any) -> None:
    core.set_setting("a.b.c", 1)
    core.unset_setting("a.b.c")
    assert "[a" not in settings.global_path(core.home).read_text()
    with pytest.raises(NotFound):
        core.get_setting("a.b.c")
    with pytest.raises(NotFound):
        core.unset_setting("a.b.c")


def test_env_references_resolve_only_on_request(core: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    core.set_setting("llm.key", "${env:SOUL_TEST_KEY}")
    monkeypatch.setenv("SOUL_TEST_KEY", "value-from-env")
    assert core.get_setting("llm.key")[0] == "${env:SOUL_TEST_KEY}"
    assert core.get_setting("llm.key", resolve=True)[0] == "value-from-env"
    monkeypatch.delenv("SOUL_TEST_KEY")
    with pytest.raises(NotFound):
        core.get_setting("llm.key", resolve=True)


def test_invalid_toml_names_line_and_column_and_is_untouched(core: Any) -> None:
    path = settings.global_path(core.home)
    broken = "[editor]\ntab_width = = 4\n"
    path.write_text(broken)
    with pytest.raises(SettingsError) as info:
        core.set_setting("editor.tab_width", 8)
    assert "line 2" in info.value.message and "column" in info.value.message
    assert path.read_text() == broken
    with pytest.raises(SettingsError):
        core.get_setting("editor.tab_width")


@pytest.mark.parametrize("key", ["", "a..b", "a b", "../x", "-x.y z", "a.b=c"])
def test_invalid_keys_are_refused(core: Any, key: str) -> None:
    with pytest.raises(SettingsError):
        core.set_setting(key, 1)


def test_parse_value_literals() -> None:
    assert settings.parse_value("42") == 42
    assert settings.parse_value("true") is True
    assert settings.parse_value("[1, 2]") == [1, 2]
    assert settings.parse_value('"quoted"') == "quoted"
    assert settings.parse_value("plain text") == "plain text"
    assert settings.parse_value("--output=x") == "--output=x"


def test_setting_a_value_on_a_scalar_parent_fails_cleanly(core: Any, tmp_path: Path) -> None:
    core.set_setting("a", 1)
    with pytest.raises(SettingsError):
        core.set_setting("a.b", 2)
