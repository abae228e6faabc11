"""Hostile peers against a real `soul serve` on 127.0.0.1: every abusive request carries a real
`remember` call, gets the right status code, and writes nothing; the server keeps serving.

The basic one-rule-per-test cases live in tests/test_http_server.py; here the point is the
"nothing written, still alive" invariant under abuse, and slow (slow-loris) clients.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reliability.conftest import Ledger
from reliability.helpers import SOUL_BIN, init_soul, memory_events, run_soul, soul_env

REMEMBER = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "remember", "arguments": {"text": "written by a hostile peer"}},
}
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = (home / ".soul" / "server.token").read_text().strip()
        self.log = home.parent / "serve.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [SOUL_BIN, "--home", str(home), "--instance", "alpha", "serve", "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=soul_env(),
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("soul serve did not come up")

    def headers(self, token: str | None = "valid", **extra: str) -> dict[str, str]:
        out = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if token == "valid":
            token = self.token
        if token is not None:
            out["Authorization"] = f"Bearer {token}"
        out.update(extra)
        return out

    def alive(self) -> bool:
        return self.proc.poll() is None and httpx.get(self.url + "/health", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("abuse")
    env = {"HOME": str(base), "GIT_CONFIG_GLOBAL": str(base / ".gitconfig"), "GIT_CONFIG_NOSYSTEM": "1"}
    home = base / "soul"
    old = dict(os.environ)
    os.environ.update(env)
    try:
        init_soul(home)
        run_soul("remember", "one memory before the abuse", home=home, env=soul_env())
        run_soul("serve", "--init-token", home=home, env=soul_env())
        server = Served(home)
    finally:
        os.environ.clear()
        os.environ.update(old)
    yield server
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
    assert server.token not in server.log.read_text(errors="replace"), "the token reached the log"


def _count(served: Served) -> int:
    return len(memory_events(served.home))


def _abuse(served: Served, ledger: Ledger, cases: list[tuple[str, dict[str, object], set[int]]]) -> None:
    before = _count(served)
    for label, request, statuses in cases:
        response = httpx.request(timeout=30, **request)  # type: ignore[arg-type]
        assert response.status_code in statuses, (label, response.status_code, response.text[:200])
        assert served.token not in response.text
    assert served.alive(), "the server stopped answering /health"
    assert _count(served) == before, "an abusive request wrote a memory"
    ledger.add("test_http_abuse", faults=len(cases), requests=len(cases))


def test_bad_credentials_write_nothing(served: Served, ledger: Ledger) -> None:
    body = json.dumps(REMEMBER)
    url = served.url + "/mcp"
    other = "A" * 43  # a well-formed token from some other (or an earlier, rotated) token file
    cases: list[tuple[str, dict[str, object], set[int]]] = [
        ("missing", {"method": "POST", "url": url, "content": body, "headers": served.headers(None)}, {401}),
        ("wrong", {"method": "POST", "url": url, "content": body, "headers": served.headers(other)}, {401}),
        (
            "prefix",
            {"method": "POST", "url": url, "content": body, "headers": served.headers(served.token[:-1])},
            {401},
        ),
        (
            "longer",
            {"method": "POST", "url": url, "content": body, "headers": served.headers(served.token + "A")},
            {401},
        ),
        (
            "basic",
            {
                "method": "POST",
                "url": url,
                "content": body,
                "headers": {**served.headers(None), "Authorization": "Basic " + served.token},
            },
            {401},
        ),
        (
            "lowercase scheme",
            {
                "method": "POST",
                "url": url,
                "content": body,
                "headers": {**served.headers(None), "Authorization": "bearer x"},
            },
            {401},
        ),
        (
            "query token",
            {"method": "POST", "url": f"{url}?token={served.token}", "content": body, "headers": served.headers()},
            {400},
        ),
        (
            "query token only",
            {
                "method": "POST",
                "url": f"{url}?access_token={served.token}",
                "content": body,
                "headers": served.headers(None),
            },
            {400, 401},
        ),
        (
            "events query",
            {"method": "GET", "url": f"{served.url}/events?auth={served.token}", "headers": served.headers()},
            {400},
        ),
    ]
    _abuse(served, ledger, cases)


def test_bad_host_and_origin_write_nothing(served: Served, ledger: Ledger) -> None:
    body = json.dumps(REMEMBER)
    url = served.url + "/mcp"
    cases: list[tuple[str, dict[str, object], set[int]]] = []
    for host in ("evil.example", f"evil.example:{served.port}", "localhost.evil.example", "127.0.0.1@evil.example"):
        cases.append((host, {"method": "POST", "url": url, "content": body,
                             "headers": served.headers(Host=host)}, {400, 421}))  # fmt: skip
    for origin in ("https://evil.example", "null", "http://127.0.0.1.evil.example", f"http://evil:{served.port}"):
        cases.append((origin, {"method": "POST", "url": url, "content": body,
                               "headers": served.headers(Origin=origin)}, {403}))  # fmt: skip
    _abuse(served, ledger, cases)


def test_oversized_and_malformed_bodies_write_nothing(served: Served, ledger: Ledger) -> None:
    url = served.url + "/mcp"
    huge = dict(REMEMBER, params={"name": "remember", "arguments": {"text": "x" * (5 * 1024 * 1024)}})
    bodies: list[tuple[str, bytes, set[int]]] = [
        ("oversized", json.dumps(huge).encode(), {413}),
        ("not json", b"{not json", {400, 406, 422}),
        ("no session", json.dumps(REMEMBER).encode(), {400, 404}),
        ("batch", json.dumps([REMEMBER, REMEMBER]).encode(), {400, 404, 422}),
        ("wrong version", json.dumps(dict(REMEMBER, jsonrpc="1.0")).encode(), {400, 404, 422}),
        ("no method", json.dumps({"jsonrpc": "2.0", "id": 1}).encode(), {400, 404, 422}),
        ("deep nesting", b"[" * 200_000 + b"]" * 200_000, {400, 404, 413, 422}),
        ("bad utf-8", b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe"}', {400, 404, 422}),
        ("NaN id", b'{"jsonrpc":"2.0","id":NaN,"method":"tools/call"}', {400, 404, 422}),
        ("null", b"null", {400, 404, 422}),
    ]
    cases: list[tuple[str, dict[str, object], set[int]]] = [
        (label, {"method": "POST", "url": url, "content": body, "headers": served.headers()}, statuses)
        for label, body, statuses in bodies
    ]
    cases.append(("text/plain", {"method": "POST", "url": url, "content": json.dumps(REMEMBER),
                                 "headers": served.headers(**{"Content-Type": "text/plain"})}, {400, 415}))  # fmt: skip
    bogus = served.headers(**{"Mcp-Session-Id": "../../etc"})
    cases.append(("bogus session", {"method": "POST", "url": url, "content": json.dumps(REMEMBER),
                                    "headers": bogus}, {400, 404}))  # fmt: skip
    _abuse(served, ledger, cases)


def _slow_socket(port: int, request: bytes, per_byte: float, budget: float) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    deadline = time.monotonic() + budget
    for i in range(len(request)):
        if time.monotonic() >= deadline:
            break
        try:
            sock.send(request[i : i + 1])
        except OSError:
            break  # the server hung up on us: fine
        time.sleep(per_byte)
    return sock


def test_slow_clients_do_not_block_others(served: Served, ledger: Ledger) -> None:
    body = json.dumps(REMEMBER).encode()
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\nAuthorization: Bearer {served.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body) + 100}\r\n\r\n"
    ).encode()
    before = _count(served)
    stalled = [socket.create_connection(("127.0.0.1", served.port), timeout=5) for _ in range(30)]
    for sock in stalled:  # half a request line each, then nothing
        sock.send(b"POST /mcp HT")
    trickler = _slow_socket(served.port, head, per_byte=0.1, budget=3.0)
    try:
        for _ in range(5):
            assert served.alive(), "a slow client starved the server"
        trickler.send(body)  # the body is short of its Content-Length: it stalls
        time.sleep(0.5)
        assert served.alive()
    finally:
        for sock in [*stalled, trickler]:
            sock.close()
    assert _count(served) == before
    ledger.add("test_http_abuse", faults=31, slow_clients=31)


def test_a_real_client_still_writes_after_the_abuse(served: Served, ledger: Ledger) -> None:
    """The positive control: the same server does write for a well-behaved client."""
    import anyio
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    before = _count(served)

    async def main() -> None:
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {served.token}"}) as http:
            async with Client(streamable_http_client(served.url + "/mcp", http_client=http), mode="legacy") as client:
                made = await client.call_tool("remember", {"text": "written by a well-behaved client"})
                assert not made.is_error

    anyio.run(main)
    assert _count(served) == before + 1
    ledger.add("test_http_abuse", acknowledged=1, data_lost=0)
