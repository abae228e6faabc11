"""The fast path for remember/get must behave exactly like the full typer CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_soul

FULL = {"SOUL_NO_FAST_PATH": "1"}


@pytest.mark.parametrize("env", [None, FULL], ids=["fast", "full"])
def test_remember_shapes_agree(soul_home: Path, env: dict[str, str] | None) -> None:
    out = run_soul(
        "remember",
        "--kind=fact",
        "-t",
        "a",
        "--tag",
        "b",
        "-p",
        "proj",
        "Ports: 5433",
        "--json",
        home=soul_home,
        env=env,
    )
    mid = json.loads(out.stdout)["id"]
    mem = json.loads(run_soul("show", mid, "--json", home=soul_home).stdout)
    assert (mem["kind"], mem["tags"], mem["project"], mem["text"]) == ("fact", ["a", "b"], "proj", "Ports: 5433")
    dup = run_soul("remember", "ports: 5433", "--kind", "fact", "-p", "proj", home=soul_home, env=env)
    assert dup.stderr.strip() == f"already remembered as {mid}"


@pytest.mark.parametrize("env", [None, FULL], ids=["fast", "full"])
def test_errors_agree(soul_home: Path, env: dict[str, str] | None) -> None:
    bad_kind = run_soul("remember", "x", "--kind", "nope", home=soul_home, env=env, check=False)
    assert bad_kind.returncode == 2 and bad_kind.stderr.startswith("soul: unknown kind")
    missing = run_soul("get", "no.such", home=soul_home, env=env, check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("soul: setting no.such is not set")
    assert run_soul("remember", "--bogus", "x", home=soul_home, env=env, check=False).returncode == 2


@pytest.mark.parametrize("env", [None, FULL], ids=["fast", "full"])
def test_get_agrees(soul_home: Path, env: dict[str, str] | None) -> None:
    run_soul("set", "a.list", "[1, 2]", home=soul_home)
    run_soul("set", "a.name", "plain text", home=soul_home)
    assert run_soul("get", "a.list", home=soul_home, env=env).stdout == "[1, 2]\n"
    assert run_soul("get", "a.name", home=soul_home, env=env).stdout == "plain text\n"
    assert json.loads(run_soul("get", "--json", "a.name", home=soul_home, env=env).stdout) == {
        "key": "a.name",
        "value": "plain text",
        "source": "global",
    }


def test_help_goes_to_the_full_cli(soul_home: Path) -> None:
    out = run_soul("remember", "--help", home=soul_home)
    assert "--allow-duplicate" in out.stdout


@pytest.mark.parametrize("env", [None, FULL], ids=["fast", "full"])
def test_recall_json_agrees(soul_home: Path, env: dict[str, str] | None) -> None:
    env = {**(env or {}), "SOUL_EMBEDDER": "lexical"}
    run_soul("remember", "The deploy script lives in ops/deploy.sh", "--tag", "ops", "-p", "shop", home=soul_home)
    run_soul("remember", "Lunch is at noon", home=soul_home)
    hits = json.loads(
        run_soul("recall", "deploy script", "-k", "1", "--tag", "ops", "--json", home=soul_home, env=env).stdout
    )
    assert [h["text"] for h in hits] == ["The deploy script lives in ops/deploy.sh"]
    assert json.loads(run_soul("recall", "deploy", "--project", "none", "--json", home=soul_home, env=env).stdout) == []
    assert run_soul("recall", "x", "-k", "0", "--json", home=soul_home, env=env, check=False).returncode == 2
    assert run_soul("recall", "x", "--kind", "bogus", "--json", home=soul_home, env=env, check=False).returncode == 2
