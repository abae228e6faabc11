"""Warm recall over the Unix socket: owner-only, one server per soul, the client stays light."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from soul import warm
from soul.core import Soul
from soul.errors import SoulError, UsageError

from conftest import SOUL_BIN, run_soul


@pytest.fixture(autouse=True)
def _lexical(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUL_EMBEDDER", "lexical")


def _seed(core: Any) -> list[str]:
    texts = ["the boiler was serviced by Hansen", "grandma's birthday is in November", "tabs over spaces"]
    return [core.append("memory.add", {"text": t, "kind": "note", "tags": ["t"]}, commit=False)["id"] for t in texts]


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_server_answers_like_in_process(core: Any) -> None:
    ids = _seed(core)
    server = warm.WarmServer(core)
    server.start()
    try:
        path = warm.socket_path(core)
        assert stat.S_IMODE(path.lstat().st_mode) == 0o600 and stat.S_ISSOCK(path.lstat().st_mode)
        ping = warm.request(core, {"op": "ping"})
        assert ping and ping["ok"] and ping["pid"] == os.getpid()
        reply = warm.request(core, {"op": "recall", "query": "Hansen boiler", "k": 2})
        assert reply and reply["ok"]
        assert "lexical" in reply["warning"]  # the fallback is reported to the client, not hidden
        local = Soul(core.home, core.instance).index().search("Hansen boiler", k=2)
        assert [h["id"] for h in reply["hits"]] == [h["id"] for h in local]
        assert reply["hits"][0]["id"] == ids[0]
        hits = warm.recall(core, "Hansen", k=1, tag="t")
        assert hits and hits[0]["id"] == ids[0]
        with pytest.raises(UsageError):
            warm.recall(core, "Hansen", since="yesterday-ish")
        with pytest.raises(SoulError, match="already runs"):
            warm.WarmServer(core).start()
    finally:
        server.stop()
    assert not warm.socket_path(core).exists()
    assert warm.request(core, {"op": "ping"}) is None


def test_bad_requests_do_not_kill_the_server(core: Any) -> None:
    _seed(core)
    server = warm.WarmServer(core)
    server.start()
    try:
        for raw in (b"not json\n", b"\xff\xfe\n", b"[1, 2]\n", b'{"op": "explode"}\n'):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(30)
                sock.connect(str(warm.socket_path(core)))
                sock.sendall(raw)
                reply = json.loads(sock.makefile("rb").readline())
            assert reply["ok"] is False and reply["code"] == 2
        assert warm.request(core, {"op": "recall", "query": "x" * 100_000, "k": 3})["ok"]
    finally:
        server.stop()


def test_deep_home_path(tmp_path: Path) -> None:
    home = tmp_path / ("d" * 60) / ("e" * 60) / "soul"
    run_soul("init", "--instance", "alpha", home=home)
    core = Soul.open(home, "alpha")
    assert len(str(warm.socket_path(core))) > 108
    ids = _seed(core)
    server = warm.WarmServer(core)
    server.start()
    try:
        reply = warm.request(core, {"op": "recall", "query": "tabs", "k": 1})
        assert reply and reply["hits"][0]["id"] == ids[2]
    finally:
        server.stop()


def test_cli_recall_goes_through_index_serve(soul_home: Path) -> None:
    core = Soul.open(soul_home, "alpha")
    ids = _seed(core)
    proc = subprocess.Popen([SOUL_BIN, "--home", str(soul_home), "index", "serve"], stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: warm.request(core, {"op": "ping"}) is not None)
        code = (
            "import sys, json; from pathlib import Path; from soul.core import Soul;"
            f"hits = Soul.open(Path({str(soul_home)!r}), 'alpha').recall('Hansen', k=1);"
            "print(json.dumps([[h['id'] for h in hits], 'lancedb' in sys.modules]))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
        got, loaded_lancedb = json.loads(out.stdout)
        assert got == [ids[0]] and not loaded_lancedb
        # A memory remembered while the server runs is found by the next recall.
        new = run_soul("remember", "the quarterly tax estimate is due on September 15", "--json", home=soul_home)
        hits = json.loads(run_soul("recall", "quarterly tax", "--json", home=soul_home).stdout)
        assert hits[0]["id"] == json.loads(new.stdout)["id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert not warm.socket_path(core).exists()
