"""`soul serve`: the MCP server over Streamable HTTP at /mcp, change broadcast at /events, /health.

Security invariants, enforced by `Guard` on every request before any route runs:
- Host must be a loopback name or an `--allow-host` value (else 421: DNS rebinding);
- a browser Origin must be loopback or an `--allow-origin` value (else 403);
- a URL carrying anything that looks like a token is refused (400): tokens travel only in
  `Authorization: Bearer`, which is compared with `hmac.compare_digest` (else 401 with
  WWW-Authenticate) on every route except /health, which answers liveness and nothing else;
- request bodies are capped (413); the access log is off, so no URL or header is ever logged.
Binding anything but loopback needs a token file and at least one `--allow-host`.

Broadcast invariant: when the served soul changes (a write through /mcp, or commits arriving in
its repository or in the local bare repository it syncs with), every /events subscriber gets
`{"type": "changed", "head": ...}`; writes are synced to that bare repository first, so the head
announced is one a client can fetch. Heartbeat events keep idle streams (and proxies) alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from soul.errors import SoulError, UsageError
from soul.events_client import default_token_path, read_token_file
from soul.ids import now_iso

log = logging.getLogger("soul.serve")

MAX_BODY = 4 * 1024 * 1024
HEARTBEAT_SECONDS = 15.0
POLL_SECONDS = 0.2
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_TOKEN_PARAMS = {"token", "access_token", "auth", "authorization", "bearer", "api_key", "apikey", "key", "secret"}

__all__ = ["ServeOptions", "build_app", "default_token_path", "init_token", "serve"]


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    token_file: Path | None = None
    allow_hosts: list[str] = field(default_factory=list)
    allow_origins: list[str] = field(default_factory=list)
    max_body: int = MAX_BODY
    heartbeat: float = HEARTBEAT_SECONDS


def init_token(path: Path) -> bool:
    """Create `path` holding a fresh random token, mode 0600; False if a usable one already exists."""
    if path.exists():
        read_token_file(path)  # refuses a file with loose permissions instead of silently keeping it
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (secrets.token_urlsafe(32) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(options: ServeOptions, token: str | None) -> None:
    """Anything but loopback is reachable by others: demand a token and an explicit allow-list."""
    if is_loopback(options.host):
        return
    if token is None:
        raise UsageError(
            f"binding {options.host} needs a token",
            hint="run `soul serve --init-token` and pass --token-file (or keep the default .soul/server.token)",
        )
    if not options.allow_hosts:
        raise UsageError(
            f"binding {options.host} needs an explicit allow-list",
            hint="add --allow-host NAME for each name clients use (and --allow-origin for browsers)",
        )


# ---------------------------------------------------------------------- request guard


def _hostname(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """Pure ASGI middleware in front of every route (see the module docstring for the rules)."""

    def __init__(self, app: ASGIApp, token: str | None, allow_hosts: list[str], allow_origins: list[str]) -> None:
        self.app = app
        self.token = token.encode("utf-8") if token else None
        self.hosts = {h.lower() for h in (*LOOPBACK_HOSTS, *allow_hosts)}
        self.origins = {o.lower().rstrip("/") for o in allow_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host.lower() not in self.hosts and _hostname(host) not in self.hosts:
            return _plain(421, "misdirected request: Host not allowed")
        origin = headers.get("origin")
        if origin is not None and not self._origin_ok(origin):
            return _plain(403, "forbidden: Origin not allowed")
        if self._token_in_url(scope):
            return _plain(400, "tokens are never accepted in URLs; send Authorization: Bearer")
        if self.token is not None and scope["path"] != "/health":
            given = headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if not given:
                return _plain(401, "authentication required", {"WWW-Authenticate": 'Bearer realm="soul"'})
            ok = scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode("utf-8"), self.token)
            if not ok:
                challenge = 'Bearer realm="soul", error="invalid_token"'
                return _plain(401, "invalid token", {"WWW-Authenticate": challenge})
        return None

    def _origin_ok(self, origin: str) -> bool:
        origin = origin.lower().rstrip("/")
        if origin in self.origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.hostname is not None and is_loopback(parts.hostname)

    def _token_in_url(self, scope: Scope) -> bool:
        raw = scope.get("query_string", b"").decode("latin-1")
        if any(key.lower() in _TOKEN_PARAMS for key, _ in parse_qsl(raw, keep_blank_values=True)):
            return True
        if self.token is None:
            return False
        needle = self.token.decode("utf-8")
        return needle in raw or needle in str(scope.get("path", ""))


def _plain(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# ---------------------------------------------------------------------- broadcast


class Hub:
    """Fan-out of change events to every /events stream; a slow subscriber drops, never blocks."""

    def __init__(self) -> None:
        self.head: str | None = None
        self.queues: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=64)
        self.queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.queues.discard(queue)

    def publish(self, event: dict[str, Any] | None) -> None:
        for queue in list(self.queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)


def read_head(gitdir: Path) -> str | None:
    """HEAD's commit read from files (no subprocess), cheap enough to poll several times a second."""
    try:
        head = (gitdir / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head[5:].strip()
        loose = gitdir / ref
        if loose.is_file():
            return loose.read_text(encoding="utf-8").strip() or None
        packed = gitdir / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                sha, _, name = line.partition(" ")
                if name == ref:
                    return sha
    except OSError:
        return None
    return None


def local_upstream(home: Path) -> Path | None:
    """The git dir of `origin` when it is a repository on this machine (the personal-server setup)."""
    from soul import gitutil

    result = gitutil.run(["remote", "get-url", "origin"], home, check=False)
    url = result.stdout.strip() if result.ok else ""
    if url.startswith("file://"):
        url = url[len("file://") :]
    if not url or "://" in url or (":" in url.split("/")[0]):
        return None  # ssh or http remote: another machine's repo, not watchable from here
    path = (home / url).resolve() if not os.path.isabs(url) else Path(url)
    for gitdir in (path, path / ".git"):
        if (gitdir / "HEAD").is_file() and (gitdir / "refs").is_dir():
            return gitdir
    return None


class Watcher:
    """Polls the served repository (and its local upstream) and publishes changes to the hub."""

    def __init__(self, handle: Any, hub: Hub, upstream: Path | None) -> None:
        self.handle = handle
        self.hub = hub
        self.local = handle.home / ".git"
        self.upstream = upstream
        self.wake = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    def poke(self) -> None:
        """Called from worker threads after a write through /mcp."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.wake.set)

    def heads(self) -> tuple[str | None, str | None]:
        return read_head(self.local), read_head(self.upstream) if self.upstream else None

    async def run(self) -> None:
        import anyio

        last = self.heads()
        self.hub.head = last[1] or last[0]
        if self.upstream is not None:
            # Commits made while the server was down are pushed (and missed pushes pulled) at once;
            # the loop below then announces the new head.
            await anyio.to_thread.run_sync(self._sync)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
            poked = self.wake.is_set()
            self.wake.clear()
            now = self.heads()
            if self.upstream is not None and (poked or now != last):
                # Push our writes to the upstream clients fetch from, or pull what was pushed there.
                await anyio.to_thread.run_sync(self._sync)
                now = self.heads()
            if poked or now != last:
                self.hub.head = now[1] or now[0]
                self.hub.publish({"type": "changed", "head": self.hub.head, "at": now_iso()})
            last = now

    def _sync(self) -> None:
        def run(soul: Any) -> None:
            method = getattr(soul, "sync", None)
            if method is None:
                from soul import sync as sync_mod

                sync_mod.sync(soul)
            else:
                method()

        try:
            self.handle.call(run)
        except SoulError as exc:
            log.warning("sync with the upstream repository failed: %s", exc.message)
        except Exception:
            # The watcher must outlive any sync failure: announcing changes is its whole job.
            log.exception("sync with the upstream repository crashed")


# ---------------------------------------------------------------------- the app


def build_app(handle: Any, mcp: Any, options: ServeOptions, token: str | None) -> ASGIApp:
    """The whole ASGI app: Guard -> body cap -> routes (/health, /events, the SDK's /mcp)."""
    from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecuritySettings

    hub = Hub()
    watcher = Watcher(handle, hub, local_upstream(handle.home))
    handle.on_write = watcher.poke
    # Host/Origin checks live in Guard for every route, so the SDK's own copy is switched off.
    sdk_app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=options.max_body,
        host=options.host,
    )

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def events(request: Request) -> Response:
        return StreamingResponse(
            _stream(hub, options.heartbeat),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        watcher.loop = asyncio.get_running_loop()
        async with mcp.session_manager.run():
            task = asyncio.create_task(watcher.run())
            try:
                yield
            finally:
                hub.publish(None)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    routes = [Route("/health", health, methods=["GET"]), Route("/events", events, methods=["GET"]), Mount("/", sdk_app)]
    app = Starlette(routes=routes, lifespan=lifespan)
    return Guard(RequestBodyLimitMiddleware(app, options.max_body), token, options.allow_hosts, options.allow_origins)


async def _stream(hub: Hub, heartbeat: float) -> AsyncIterator[bytes]:
    queue = hub.subscribe()
    try:
        yield b"retry: 1000\n\n" + _sse({"type": "hello", "head": hub.head, "at": now_iso()})
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                event = {"type": "heartbeat", "head": hub.head, "at": now_iso()}
            if event is None:
                return
            yield _sse(event)
    finally:
        hub.unsubscribe(queue)


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


def serve(home: Path, instance: str, options: ServeOptions) -> None:
    """Run until interrupted."""
    import uvicorn

    from soul.mcp_server import SoulHandle, build_server

    token = read_token_file(options.token_file) if options.token_file else None
    check_bind(options, token)
    if os.environ.get("SOUL_SERVE_HEARTBEAT"):  # tests shorten the heartbeat; not a user-facing knob
        options.heartbeat = max(0.05, float(os.environ["SOUL_SERVE_HEARTBEAT"]))
    handle = SoulHandle(home, instance)
    app = build_app(handle, build_server(handle), options, token)
    auth = f"bearer token from {options.token_file}" if token else "none (loopback only)"
    where = f"http://{_url_host(options.host)}:{options.port}"
    sys.stderr.write(f"soul: serving {home} as {instance} at {where}/mcp (events {where}/events; auth: {auth})\n")
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level="warning",
        access_log=False,  # access lines carry URLs; nothing that could hold a credential is logged
        server_header=False,
        timeout_graceful_shutdown=2,
        lifespan="on",
    )
    uvicorn.Server(config).run()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
