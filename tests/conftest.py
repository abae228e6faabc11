"""Shared fixtures. Every test runs with HOME, SOUL_HOME and git identity inside tmp_path, so no
test can reach the real soul of the person running the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = (ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2-onnx").resolve()
SOUL_BIN = str(Path(sys.executable).with_name("soul"))


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SOUL_HOME", str(home / ".soul"))
    monkeypatch.delenv("SOUL_INSTANCE", raising=False)
    monkeypatch.delenv("SOUL_CLOCK_SKEW", raising=False)
    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(key, "soul test")
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "test@soul.invalid")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    real = Path(os.path.expanduser("~root")) / ".soul"
    before = real.exists() and sorted(p.name for p in real.iterdir())
    yield
    after = real.exists() and sorted(p.name for p in real.iterdir())
    assert before == after, "a test touched the real ~/.soul"


def run_soul(
    *args: str,
    home: Path | None = None,
    instance: str | None = None,
    input: str | bytes | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the real `soul` command as a subprocess."""
    cmd = [SOUL_BIN]
    if home is not None:
        cmd += ["--home", str(home)]
    if instance is not None:
        cmd += ["--instance", instance]
    cmd += list(args)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run(cmd, input=data, capture_output=True, env=full_env, timeout=timeout)
    result = subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
    )
    if check and result.returncode != 0:
        raise AssertionError(f"soul {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def git(repo: Path, *args: str) -> str:
    """Plain git in `repo` (tests inspect repositories directly); fails the test on error."""
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll `check` every 50 ms until it holds or `timeout` passes (bounded, never hangs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def soul_json(*args: str, **kwargs: Any) -> Any:
    return json.loads(run_soul(*args, "--json", **kwargs).stdout)


@pytest.fixture
def soul_home(tmp_path: Path) -> Path:
    """An initialised soul (instance `alpha`) created through the real CLI."""
    home = tmp_path / "soul"
    run_soul("init", "--instance", "alpha", home=home)
    return home


@pytest.fixture
def core(soul_home: Path) -> Any:
    from soul.core import Soul

    return Soul.open(soul_home, "alpha")


@pytest.fixture
def bare_remote(tmp_path: Path) -> Path:
    """A bare git repository on disk standing in for a server."""
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return path


@pytest.fixture
def model_dir() -> Path:
    if not (MODEL_DIR / "model.onnx").exists():
        pytest.skip("offline MiniLM model not available at ../shared/models")
    return MODEL_DIR
