"""Docs that cannot rot: every command and option has help text, and docs/cli.md is current."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_command_and_option_has_help() -> None:
    gen = generator()
    missing: list[str] = []
    for path, cmd in gen.walk(gen.root_command()):
        name = " ".join(("soul", *path))
        if not (cmd.help or cmd.short_help or "").strip():
            missing.append(f"{name}: no help text (add a docstring)")
        for param in cmd.params:
            if not getattr(param, "hidden", False) and not (getattr(param, "help", None) or "").strip():
                missing.append(f"{name}: {param.name} has no help=")
    assert not missing, "\n".join(missing)


def test_cli_reference_is_up_to_date() -> None:
    gen = generator()
    expected = gen.render()
    current = gen.DOC.read_text(encoding="utf-8") if gen.DOC.exists() else ""
    documented = set(re.findall(r"^#+ (soul(?: [a-z-]+)*)$", current, flags=re.M))
    commands = {" ".join(("soul", *p)) for p, _ in gen.walk(gen.root_command())}
    assert not commands - documented, f"missing from docs/cli.md: {sorted(commands - documented)}"
    assert current == expected, "docs/cli.md is out of date: run `python scripts/gen_cli_docs.py`"


OWN_PAGES = ("cli.md", "getting-started.md", "concepts.md", "deployment.md", "security.md")
OTHERS_PAGES = {"personal-server.md", "secret-guard.md", "purge.md"}


def test_docs_link_to_pages_that_exist() -> None:
    for page in (ROOT / "docs" / name for name in OWN_PAGES):
        for target in re.findall(r"\]\(([a-z0-9_.-]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if target in OTHERS_PAGES:
                continue  # written by their features' owners; linked ahead of time
            assert (ROOT / "docs" / target).exists(), f"{page.name} links to missing {target}"
