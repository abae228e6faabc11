"""Real-time broadcast across machines: a personal server (bare repo + `soul serve`) and two instances.

A memory written on A (locally then synced, or through the server's /mcp) is announced on /events;
B hears it and pulls at once, then recalls it, long before any polling interval would have passed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_http_server import Server, wait_for

from soul.events_client import Subscriber

from conftest import SOUL_BIN, run_soul, soul_json

LEXICAL = {"SOUL_EMBEDDER": "lexical"}


@pytest.fixture
def personal_server(tmp_path: Path, bare_remote: Path) -> Iterator[Server]:
    home = tmp_path / "server"
    run_soul("init", "--instance", "srv", "--remote", str(bare_remote), home=home)
    run_soul("sync", home=home, instance="srv")
    run_soul("serve", "--init-token", home=home)
    srv = Server(home, "srv", home / ".soul" / "server.token", {})
    yield srv
    srv.stop()


def join(tmp_path: Path, bare: Path, name: str, srv: Server) -> Path:
    home = tmp_path / name
    run_soul("join", str(bare), "--instance", name, home=home)
    token = home / ".soul" / "server.token"
    shutil.copyfile(srv.home / ".soul" / "server.token", token)
    token.chmod(0o600)
    return home


def recalled(home: Path, name: str, text: str) -> bool:
    hits = soul_json("recall", text, home=home, instance=name, env=LEXICAL)
    return any(hit["text"] == text for hit in hits)


def test_memory_on_a_is_recallable_on_b_through_the_broadcast(
    tmp_path: Path, bare_remote: Path, personal_server: Server
) -> None:
    srv = personal_server
    a = join(tmp_path, bare_remote, "laptop-a", srv)
    b = join(tmp_path, bare_remote, "desktop-b", srv)
    synced: list[float] = []

    def on_change(event: dict[str, Any]) -> None:
        # What the daemon does on an event: pull now.
        run_soul("sync", home=b, instance="desktop-b")
        synced.append(time.monotonic())

    sub = Subscriber(srv.url, srv.token, on_change)
    sub.start()
    try:
        assert wait_for(lambda: sub.connected, 30), sub.last_error
        text = "the espresso machine descales on Sundays"
        run_soul("remember", text, home=a, instance="laptop-a")
        run_soul("sync", home=a, instance="laptop-a")
        assert wait_for(lambda: recalled(b, "desktop-b", text) if synced else False, 60)

        # The same through the server's own MCP endpoint.
        before = len(synced)
        via_mcp = "the bike lock code lives in the password manager"
        _remember_over_http(srv, via_mcp)
        assert wait_for(lambda: len(synced) > before and recalled(b, "desktop-b", via_mcp), 60)
    finally:
        sub.stop()


def _remember_over_http(srv: Server, text: str) -> None:
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async def main() -> None:
        async with create_mcp_http_client(headers=srv.auth()) as http:
            async with Client(streamable_http_client(srv.url + "/mcp", http_client=http), mode="legacy") as client:
                result = await client.call_tool("remember", {"text": text})
                assert not result.is_error

    anyio.run(main)


@pytest.mark.slow
def test_daemon_on_b_subscribes_and_pulls_at_once(tmp_path: Path, bare_remote: Path, personal_server: Server) -> None:
    srv = personal_server
    a = join(tmp_path, bare_remote, "laptop-a", srv)
    b = join(tmp_path, bare_remote, "desktop-b", srv)
    toml = b / "soul.toml"
    # A long polling interval: only the broadcast can make this fast.
    text = toml.read_text().replace("interval = 60", "interval = 600")
    toml.write_text(re.sub(r"^# server = .*$", f'server = "{srv.url}"', text, flags=re.M))
    env = {**os.environ, **LEXICAL}
    daemon = subprocess.Popen([SOUL_BIN, "--home", str(b), "--instance", "desktop-b", "daemon", "run"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(3)  # let the daemon finish its start-up sync and subscribe
        memo = "the plants need water on Thursdays"
        run_soul("remember", memo, home=a, instance="laptop-a")
        run_soul("sync", home=a, instance="laptop-a")
        assert wait_for(lambda: recalled(b, "desktop-b", memo), 60)
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=10)
