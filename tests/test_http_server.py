"""`soul serve`: Streamable HTTP with the SDK client, every security rule, and /events broadcast.

The security cases share one real server (started once per module, its own temp soul); the broadcast
cases start their own. Only 127.0.0.1 is used; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from soul.events_client import Subscriber

from conftest import SOUL_BIN, run_soul, wait_for


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A real `soul serve` subprocess on 127.0.0.1."""

    def __init__(
        self, home: Path, instance: str, token_file: Path | None, env: dict[str, str], port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home.parent / f"serve-{self.port}.log"
        cmd = [SOUL_BIN, "--home", str(home), "--instance", instance, "serve", "--port", str(self.port)]
        if token_file is not None:
            cmd += ["--token-file", str(token_file)]
        self.token = token_file.read_text().strip() if token_file is not None else None
        self.home, self.bare = home, home
        full_env = {**os.environ, **env, "SOUL_EMBEDDER": "lexical"}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"soul serve exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("soul serve did not come up")

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One personal server for the module: a soul whose upstream is a bare repository on disk."""
    base = tmp_path_factory.mktemp("serve")
    env = {**os.environ, "HOME": str(base), "SOUL_HOME": str(base / "soul"), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": str(base / ".gitconfig")}  # fmt: skip
    bare = base / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True, timeout=60)
    home = base / "soul"
    for args in (["init", "--instance", "srv", "--remote", str(bare)], ["sync"], ["serve", "--init-token"]):
        subprocess.run([SOUL_BIN, "--home", str(home), "--instance", "srv", *args], check=True, env=env,
                       capture_output=True, timeout=120)  # fmt: skip
    srv = Server(home, "srv", home / ".soul" / "server.token", {**env, "SOUL_SERVE_HEARTBEAT": "0.3"})
    srv.home, srv.bare = home, bare
    yield srv
    log = srv.stop()
    assert srv.token is not None and srv.token not in log, "the token reached the server's log"


def mcp_post(body: bytes | str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **(headers or {})}


# ---------------------------------------------------------------------- security, one rule per test


def test_health_answers_without_a_token_and_says_nothing_else(server: Server) -> None:
    response = httpx.get(server.url + "/health", timeout=10)
    assert response.status_code == 200 and response.json() == {"ok": True}


@pytest.mark.parametrize("path", ["/mcp", "/events"])
def test_missing_token_is_401_with_www_authenticate(server: Server, path: str) -> None:
    response = httpx.get(server.url + path, timeout=10)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_wrong_token_is_401_invalid_token(server: Server) -> None:
    for value in ("Bearer " + "x" * 43, "Bearer", "Basic dXNlcjpwYXNz", (server.token or "") + "x"):
        response = httpx.post(server.url + "/mcp", content=b"{}", headers=mcp_post(b"", {"Authorization": value}))
        assert response.status_code == 401, value
        assert "Bearer" in response.headers["www-authenticate"]


def test_token_in_query_string_is_refused_even_with_a_valid_header(server: Server) -> None:
    assert server.token
    for query in (f"token={server.token}", f"access_token={server.token}", f"x={server.token}", "token=anything"):
        response = httpx.get(f"{server.url}/events?{query}", headers=server.auth(), timeout=10)
        assert response.status_code == 400, query
        assert server.token not in response.text


def test_bad_origin_is_403(server: Server) -> None:
    bad = httpx.get(server.url + "/health", headers={"Origin": "https://evil.example"}, timeout=10)
    assert bad.status_code == 403
    null = httpx.get(server.url + "/health", headers={"Origin": "null"}, timeout=10)
    assert null.status_code == 403
    ok = httpx.get(server.url + "/health", headers={"Origin": f"http://localhost:{server.port}"}, timeout=10)
    assert ok.status_code == 200


def test_bad_host_is_421(server: Server) -> None:
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.nip.io"):
        response = httpx.get(server.url + "/health", headers={"Host": host}, timeout=10)
        assert response.status_code == 421, host
    assert httpx.get(server.url + "/health", headers={"Host": f"localhost:{server.port}"}).status_code == 200


def test_oversized_body_is_413(server: Server) -> None:
    big = b"[" + b" " * (5 * 1024 * 1024) + b"]"
    declared = httpx.post(server.url + "/mcp", content=big, headers=mcp_post(big, server.auth()), timeout=60)
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap must hold on the stream too
        for _ in range(6):
            yield b" " * (1024 * 1024)

    streamed = httpx.post(server.url + "/mcp", content=chunks(), headers=mcp_post(b"", server.auth()), timeout=60)
    assert streamed.status_code == 413


def test_malformed_json_rpc_is_rejected_and_the_server_keeps_serving(server: Server) -> None:
    for body in (b"{not json", b'{"jsonrpc": "2.0"}', b"[]", b'"just a string"'):
        response = httpx.post(server.url + "/mcp", content=body, headers=mcp_post(body, server.auth()), timeout=30)
        assert 400 <= response.status_code < 500, (body, response.status_code)
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200


def test_sdk_client_over_streamable_http(server: Server) -> None:
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async def main() -> None:
        async with create_mcp_http_client(headers=server.auth()) as http:
            transport = streamable_http_client(server.url + "/mcp", http_client=http)
            async with Client(transport, mode="legacy") as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
                assert {"remember", "recall", "list_conflicts"} <= names
                made = await client.call_tool("remember", {"text": "the kettle is in the left cupboard"})
                assert not made.is_error
                hits = await client.call_tool("recall", {"query": "kettle cupboard"})
                assert hits.structured_content["memories"][0]["id"] == made.structured_content["id"]
                assert hits.structured_content["memories"][0]["by"] == "srv"

    anyio.run(main)


def test_sdk_client_without_token_is_refused(server: Server) -> None:
    from mcp.client import Client

    async def main() -> None:
        async with Client(server.url + "/mcp", mode="legacy") as client:
            await client.list_tools()

    # The SDK reports the 401 as an error response during the handshake: no session is opened.
    with pytest.raises(BaseException, match="unhandled errors") as info:
        anyio.run(main)
    assert "error response" in repr(info.value)


# ---------------------------------------------------------------------- startup refusals (no server needed)


def test_non_loopback_bind_without_token_is_refused_at_startup(soul_home: Path) -> None:
    result = run_soul("serve", "--host", "0.0.0.0", "--port", str(free_port()), home=soul_home, check=False)
    assert result.returncode == 2 and "needs a token" in result.stderr


def test_non_loopback_bind_without_allow_list_is_refused(soul_home: Path) -> None:
    run_soul("serve", "--init-token", home=soul_home)
    result = run_soul("serve", "--host", "0.0.0.0", "--port", str(free_port()), home=soul_home, check=False)
    assert result.returncode == 2 and "allow-list" in result.stderr


def test_init_token_makes_a_0600_file_and_loose_permissions_are_refused(soul_home: Path) -> None:
    result = run_soul("serve", "--init-token", home=soul_home)
    path = soul_home / ".soul" / "server.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_text().strip()) >= 32
    assert path.read_text().strip() not in result.stdout + result.stderr
    before = path.read_text()
    run_soul("serve", "--init-token", home=soul_home)
    assert path.read_text() == before  # never silently replaced
    path.chmod(0o644)
    refused = run_soul("serve", "--port", str(free_port()), home=soul_home, check=False)
    assert refused.returncode == 2 and "readable by group or others" in refused.stderr
    doctor = run_soul("doctor", "--json", home=soul_home, check=False)
    check = [c for c in json.loads(doctor.stdout) if c["name"] == "token file"]
    assert check and not check[0]["ok"] and "chmod 600" in check[0]["fix"]


# ---------------------------------------------------------------------- broadcast


def subscribe(srv: Server) -> tuple[Subscriber, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    sub = Subscriber(srv.url, srv.token, events.append)
    sub.start()
    assert wait_for(lambda: sub.connected, 30), sub.last_error
    return sub, events


def test_events_changed_after_a_remember_through_mcp(server: Server) -> None:
    srv, bare_remote = server, server.bare
    sub, events = subscribe(srv)
    try:
        from mcp.client import Client
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        async def main() -> None:
            async with create_mcp_http_client(headers=srv.auth()) as http:
                transport = streamable_http_client(srv.url + "/mcp", http_client=http)
                async with Client(transport, mode="legacy") as client:
                    made = await client.call_tool("remember", {"text": "the broadcast test memory"})
                    assert not made.is_error

        anyio.run(main)
        # The write is pushed to the upstream before it is announced: the head sent is one clients can fetch.
        assert wait_for(lambda: _head_matches(bare_remote, events), 30), events
        log = subprocess.run(["git", "-C", str(bare_remote), "log", "-1", "--format=%s", "main"],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        assert "broadcast test memory" in log.stdout
    finally:
        sub.stop()


def _head_matches(bare: Path, events: list[dict[str, Any]]) -> bool:
    head = subprocess.run(["git", "-C", str(bare), "rev-parse", "main"], capture_output=True, text=True).stdout.strip()
    return any(e.get("head") == head for e in events if e["type"] == "changed")


def test_events_changed_after_a_commit_pushed_into_the_served_repo(server: Server, tmp_path: Path) -> None:
    srv, bare_remote = server, server.bare
    other = tmp_path / "laptop"
    run_soul("join", str(bare_remote), "--instance", "laptop", home=other)
    sub, events = subscribe(srv)
    try:
        run_soul("remember", "pushed from the laptop", home=other, instance="laptop")
        run_soul("sync", home=other, instance="laptop")
        assert wait_for(lambda: _head_matches(bare_remote, events), 30), events
    finally:
        sub.stop()


def test_events_changed_after_a_local_commit_and_heartbeats(server: Server) -> None:
    srv, home = server, server.home
    sub, events = subscribe(srv)
    try:
        run_soul("remember", "written on the server machine", home=home, instance="srv")
        assert wait_for(lambda: any(e["type"] == "changed" for e in events), 30)
        raw: list[dict[str, Any]] = []
        with httpx.stream("GET", srv.url + "/events", headers=srv.auth(), timeout=10) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data:"):
                    raw.append(json.loads(line[5:]))
                if len(raw) >= 2:
                    break
        assert raw[0]["type"] == "hello" and raw[1]["type"] == "heartbeat" and raw[1]["head"]
    finally:
        sub.stop()
    assert not sub._thread or not sub._thread.is_alive()


@pytest.mark.slow
def test_subscriber_reconnects_after_the_server_restarts(tmp_path: Path) -> None:
    home = tmp_path / "soul"
    run_soul("init", "--instance", "srv", home=home)
    run_soul("serve", "--init-token", home=home)
    srv = Server(home, "srv", home / ".soul" / "server.token", {})
    sub, events = subscribe(srv)
    try:
        assert wait_for(lambda: len(events) == 1, 10)  # the first hello: one pull to catch up
        seen = len(events)
        srv.stop()
        assert wait_for(lambda: not sub.connected, 30)
        run_soul("remember", "changed while the server was down", home=home, instance="srv")
        again = Server(home, "srv", home / ".soul" / "server.token", {}, port=srv.port)
        try:
            # The hello after reconnecting carries a new head: the subscriber reports the change it missed.
            assert wait_for(lambda: sub.connected and len(events) > seen, 60), (sub.last_error, events)
            assert events[-1]["type"] == "hello" and events[-1]["head"] != events[0]["head"]
        finally:
            again.stop()
    finally:
        sub.stop()


# ---------------------------------------------------------------------- the client side, in-process


def test_events_url_and_sse_parsing_and_backoff() -> None:
    from soul.errors import UsageError
    from soul.events_client import backoff, events_url, parse_sse

    assert events_url("https://soul.example.net") == "https://soul.example.net/events"
    assert events_url("http://127.0.0.1:8765/events/") == "http://127.0.0.1:8765/events"
    for bad in ("http://h/events?token=abc", "https://user:pw@h", "ftp://h", "soul.example.net"):
        with pytest.raises(UsageError):
            events_url(bad)
    lines = ["retry: 1000", "", "event: changed", 'data: {"type": "changed",', 'data: "head": "abc"}', "",
             ": comment", "data: not json", "", 'data: {"type": "heartbeat"}', ""]  # fmt: skip
    assert list(parse_sse(iter(lines))) == [{"type": "changed", "head": "abc"}, {"type": "heartbeat"}]
    waits = [backoff(n) for n in range(1, 20)]
    assert all(0.25 <= w <= 60 for w in waits) and max(waits) > 25  # grows, capped, jittered


def test_client_token_files_must_be_private(tmp_path: Path) -> None:
    from soul.errors import UsageError
    from soul.events_client import client_token, read_token_file

    home = tmp_path / "soul"
    (home / ".soul").mkdir(parents=True)
    assert client_token(home, {"sync": {}}) is None  # no token file: the server needs none
    path = home / ".soul" / "server.token"
    path.write_text("t" * 43 + "\n")
    path.chmod(0o640)
    with pytest.raises(UsageError, match="readable by group or others"):
        client_token(home, {"sync": {}})
    path.chmod(0o600)
    assert client_token(home, {"sync": {}}) == "t" * 43
    short = tmp_path / "short.token"
    short.write_text("abc")
    short.chmod(0o600)
    with pytest.raises(UsageError, match="usable token"):
        read_token_file(short)
    with pytest.raises(UsageError, match="usable token"):  # [sync] token_file wins over the default
        client_token(home, {"sync": {"token_file": str(short)}})
