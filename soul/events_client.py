"""The client side of real-time broadcast: subscribe to a server's `/events` and hear every change.

`Subscriber(url, token, on_change)` runs in a background thread: it keeps one Server-Sent Events
stream open, calls `on_change(event)` for each `changed` event (and for the `hello` that opens a
stream when its head is new to it: on the first connection, and after a reconnect if the head moved
while it was away), and reconnects with exponential backoff and jitter. Polling by the
daemon stays the fallback, so a broken stream only costs latency, never data.

Also owns bearer-token files for both sides: a token file is used only when it belongs to this
user and no one else can read it (mode 0600), and a token is never put in a URL or a log line.
"""

from __future__ import annotations

import json
import logging
import os
import random
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from soul.errors import UsageError

log = logging.getLogger("soul.events")

TOKEN_FILE = "server.token"
BACKOFF_MIN = 0.5
BACKOFF_MAX = 60.0
READ_TIMEOUT = 60.0  # the server sends a heartbeat every 15 s: silence this long means a dead link


def default_token_path(home: Path) -> Path:
    return home / ".soul" / TOKEN_FILE


def read_token_file(path: Path) -> str:
    """The token in `path`, refusing a file that group or others could read or that another user owns."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UsageError(f"token file {path} does not exist", hint="create it with `soul serve --init-token`") from None
    problem = token_file_problem(path, st)
    if problem:
        raise UsageError(problem, hint=f"chmod 600 {path}")
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16 or any(c.isspace() for c in token):
        raise UsageError(f"token file {path} does not hold a usable token (16+ characters, no spaces)")
    return token


def token_file_problem(path: Path, st: os.stat_result | None = None) -> str | None:
    st = st or path.stat()
    if not stat.S_ISREG(st.st_mode):
        return f"token file {path} is not a regular file"
    if st.st_mode & 0o077:
        mode = f"{stat.S_IMODE(st.st_mode):04o}"
        return f"token file {path} is readable by group or others (mode {mode}); refusing to use it"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"token file {path} belongs to another user; refusing to use it"
    return None


def client_token(home: Path, config: dict[str, Any]) -> str | None:
    """The token a client sends: `[sync] token_file` if set, else `.soul/server.token` if present."""
    configured = (config.get("sync") or {}).get("token_file")
    if configured:
        return read_token_file(Path(str(configured)).expanduser())
    default = default_token_path(home)
    return read_token_file(default) if default.exists() else None


def events_url(url: str) -> str:
    """`[sync] server` may name the server or its /events endpoint; a token in the URL is refused."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"invalid server URL {url!r}", hint="use http(s)://HOST:PORT")
    if parts.query or parts.username or parts.password:
        raise UsageError("the server URL must not carry credentials or a query", hint="put the token in a token file")
    path = parts.path.rstrip("/")
    if not path.endswith("/events"):
        path += "/events"
    return f"{parts.scheme}://{parts.netloc}{path}"


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """JSON payloads of an event stream (`data:` lines joined until a blank line); junk is skipped."""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                try:
                    event = json.loads("\n".join(data))
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    yield event
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        # `event:`, `id:`, `retry:` and `:` comments carry nothing the payload does not


class Subscriber:
    """Listen to `url` (a server or its /events) in a background thread; `on_change(event)` on changes."""

    def __init__(self, url: str, token: str | None, on_change: Callable[[dict[str, Any]], None]) -> None:
        self.url = events_url(url)
        self._token = token
        self.on_change = on_change
        self.connected = False
        self.last_error: str | None = None
        self.last_head: str | None = None
        self.events = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="soul-events", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.close()  # unblocks the reading thread at once
            except Exception:
                log.debug("closing the event stream raced with the reader")
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._listen()
                failures = 0  # a stream that ended cleanly (server restart) is retried soon
            except Exception as exc:
                self.last_error = _describe(exc)
                failures += 1
                log.info("event stream: %s", self.last_error)
            self.connected = False
            self._stop.wait(backoff(failures))

    def _listen(self) -> None:
        import httpx

        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        timeout = httpx.Timeout(10.0, read=READ_TIMEOUT)
        client = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
        with client, client.stream("GET", self.url, headers=headers) as response:
            if response.status_code != 200:
                raise ConnectionError(f"{self.url} answered HTTP {response.status_code}")
            self._response = response
            self.connected = True
            self.last_error = None
            try:
                for event in parse_sse(response.iter_lines()):
                    if self._stop.is_set():
                        return
                    self._dispatch(event)
            finally:
                self._response = None

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        head = event.get("head")
        previous = self.last_head
        if isinstance(head, str):
            self.last_head = head
        if kind == "changed" or (kind == "hello" and (previous is None or head != previous)):
            # A hello with a head we have not seen means changes happened before we were listening
            # (or while we were disconnected): one pull now closes that gap.
            self.events += 1
            try:
                self.on_change(event)
            except Exception:
                log.exception("on_change failed")


def backoff(failures: int) -> float:
    """0.5 s doubling per failure up to 60 s, jittered to [50%, 100%] so clients do not stampede."""
    base: float = min(BACKOFF_MAX, BACKOFF_MIN * 2.0 ** min(max(failures - 1, 0), 16))
    return base * (0.5 + random.random() / 2)


def _describe(exc: BaseException) -> str:
    # httpx messages name the URL at most; the token lives only in a header and never appears here.
    return f"{type(exc).__name__}: {exc}"[:300]


def doctor_checks(home: Path, config: dict[str, Any]) -> list[tuple[str, bool, str, str | None]]:
    """(name, ok, message, fix) for each token file this soul uses: the server's and `[sync] token_file`."""
    paths = [default_token_path(home)]
    configured = (config.get("sync") or {}).get("token_file")
    if configured:
        paths.append(Path(str(configured)).expanduser())
    checks: list[tuple[str, bool, str, str | None]] = []
    for path in dict.fromkeys(paths):
        if not path.exists():
            if path != paths[0]:
                checks.append(
                    ("token file", False, f"{path} ([sync] token_file) does not exist", "copy the server's token there")
                )
            continue
        problem = token_file_problem(path)
        fix = f"chmod 600 {path}" if problem else None
        checks.append(("token file", problem is None, problem or f"{path} is private (0600)", fix))
    return checks
