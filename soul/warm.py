"""Warm recall: a Unix socket in `.soul/` that answers recall requests with the model and table loaded.

Server: `WarmServer(soul).start()` (a background thread, used by the daemon) or `serve_forever(soul)`
(`soul index serve`). Client: `recall(...)` asks the socket when one answers, else searches in-process,
and returns None only when the index cannot be used at all (the caller then ranks by keywords).

Protocol: one JSON object per line each way. Request `{"op": "recall", "query", "k", "kind", "tag",
"project", "since"}` or `{"op": "ping"}`; reply `{"ok": true, "hits": [...]}` or
`{"ok": false, "error", "hint", "code"}`.
Invariants: the socket is owner-only (0600, bound inside a 0700 directory, then renamed into place);
one server per soul (flock on `.soul/warm.lock`); the client imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soul.errors import SoulError, UsageError

if TYPE_CHECKING:
    from soul.core import Soul

SOCKET_NAME = "warm.sock"
MAX_REQUEST = 1024 * 1024
CONNECT_TIMEOUT = 0.5
# A request may wait for a catch-up that embeds new memories; past this the client searches itself.
REPLY_TIMEOUT = 120.0
MAINTENANCE_EVERY = 20.0
_warned: set[str] = set()


def socket_path(soul: Soul) -> Path:
    return soul.state_dir / SOCKET_NAME


@contextlib.contextmanager
def _short_address(path: Path) -> Any:
    """AF_UNIX paths are limited to ~107 bytes; a deep home goes through /proc/self/fd on Linux."""
    if len(os.fsencode(path)) < 100 or not Path("/proc/self/fd").is_dir():
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- client


def request(soul: Soul, payload: dict[str, Any], timeout: float = REPLY_TIMEOUT) -> dict[str, Any] | None:
    """Send one request; None when no server answers (no socket, refused, timed out, garbled)."""
    path = soul.home / ".soul" / SOCKET_NAME
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        with _short_address(path) as address:
            sock.connect(address)
        sock.settimeout(timeout)
        sock.sendall(json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n")
        data = _read_line(sock)
        reply = json.loads(data) if data else None
        return reply if isinstance(reply, dict) else None
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


def _read_line(sock: socket.socket, limit: int = 64 * 1024 * 1024) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk or size > limit:
            break
    return b"".join(chunks).split(b"\n", 1)[0]


def recall(
    soul: Soul,
    query: str,
    k: int = 10,
    kind: str | None = None,
    tag: str | None = None,
    project: str | None = None,
    since: str | None = None,
) -> list[dict[str, Any]] | None:
    """Hits from the warm server, else from the in-process index; None if neither can be used."""
    filters = {"kind": kind, "tag": tag, "project": project, "since": since}
    reply = request(soul, {"op": "recall", "query": query, "k": k, **filters})
    if reply is not None:
        if reply.get("ok") and isinstance(reply.get("hits"), list):
            if reply.get("warning"):
                _warn_once(f"soul: warning: {reply['warning']}")
            return list(reply["hits"])
        if reply.get("code") == UsageError.exit_code:
            raise UsageError(str(reply.get("error")), hint=reply.get("hint"))
    try:
        hits: list[dict[str, Any]] = soul.index().search(query, k=k, **filters)
        return hits
    except SoulError:
        raise
    except Exception as exc:  # recall must answer even when the index cannot
        _warn_once(f"soul: warning: semantic index unavailable ({type(exc).__name__}: {exc}); keyword search only")
        return None


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        sys.stderr.write(message[:500] + "\n")


# ---------------------------------------------------------------------- server


class WarmServer:
    """Serves recall over `.soul/warm.sock` from background threads; keeps the index current."""

    def __init__(self, soul: Soul) -> None:
        from soul.core import Soul as SoulClass

        # A private Soul: its view cache is not shared with the threads of whoever started us.
        self.soul = SoulClass(soul.home, soul.instance)
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._sock: socket.socket | None = None
        self._lock_fd: int | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        from soul import fsutil

        fd = fsutil.try_lock(self.soul.state_dir / "warm.lock")
        if fd is None:
            raise SoulError(f"a warm recall server already runs for {self.soul.home}")
        self._lock_fd = fd
        # Saved from _maintain, once per quiet period, rather than after every write.
        self.soul.index().snapshot_eager = False
        self._sock = self._bind()
        for target in (self._accept_loop, self._maintain):
            thread = threading.Thread(target=target, name=f"soul-warm-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _bind(self) -> socket.socket:
        final = socket_path(self.soul)
        # Bound inside a fresh 0700 directory and chmod-ed before it is renamed into place, so the
        # socket is never reachable by anyone else, not even for an instant.
        tmpdir = Path(tempfile.mkdtemp(prefix=".warm-", dir=self.soul.state_dir))
        tmp = tmpdir / "s"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _short_address(tmp) as address:
                sock.bind(address)
            os.chmod(tmp, 0o600)
            sock.listen(16)
            sock.settimeout(0.5)
            os.replace(tmp, final)
        except BaseException:
            sock.close()
            raise
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
            with contextlib.suppress(OSError):
                tmpdir.rmdir()
        return sock

    def refresh(self) -> None:
        """Catch the index up now rather than at the next maintenance round (after a pull)."""
        self._poke.set()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with contextlib.suppress(OSError):
            socket_path(self.soul).unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.1)
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                raw = _read_line(conn, MAX_REQUEST)
                reply = self.answer(raw)
            except OSError:
                return
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply, ensure_ascii=False, default=str).encode("utf-8") + b"\n")

    def answer(self, raw: bytes) -> dict[str, Any]:
        """One reply for one request line; never raises."""
        try:
            req = json.loads(raw.decode("utf-8"))
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError):
            return {"ok": False, "error": "bad request (one JSON object per line)", "code": 2}
        try:
            if req.get("op") == "ping":
                index = self.soul.index()
                return {"ok": True, "pid": os.getpid(), "home": str(self.soul.home), "embedder": index.embedder.id}
            if req.get("op") == "recall":
                hits = self._recall(req)
                emb = self.soul.index().embedder
                if emb.fallback:
                    # The server's stderr is nobody's terminal: the client prints this one.
                    reason = f"{emb.reason}; using the lexical fallback (exact words only, no meaning)"
                    return {"ok": True, "hits": hits, "warning": reason}
                return {"ok": True, "hits": hits}
            return {"ok": False, "error": f"unknown op {req.get('op')!r}", "code": 2}
        except SoulError as exc:
            return {"ok": False, "error": exc.message, "hint": exc.hint, "code": exc.exit_code}
        except Exception as exc:  # a failed request must not kill the server
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "code": 1}

    def _recall(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        from soul.search import clean_query

        query = clean_query(str(req.get("query") or ""))
        k = max(1, min(int(req.get("k") or 10), 1000))
        filters = {name: _opt_str(req.get(name)) for name in ("kind", "tag", "project", "since")}
        hits: list[dict[str, Any]] = self.soul.index().search(query, k=k, **filters)
        return hits

    def _maintain(self) -> None:
        """Warm up, then keep the index current and compact it while nobody is asking."""
        while not self._stop.is_set():
            try:
                index = self.soul.index()
                index.catch_up()
                if index.needs_optimize():
                    index.optimize()
                index.save_snapshot()
            except Exception as exc:  # maintenance retries on the next round
                _warn_once(f"soul: warm server maintenance failed: {type(exc).__name__}: {exc}")
            self._poke.wait(MAINTENANCE_EVERY)
            self._poke.clear()


def _opt_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def serve_forever(soul: Soul) -> None:
    """`soul index serve`: run the warm server in the foreground until SIGINT/SIGTERM."""
    import signal

    server = WarmServer(soul)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        del signum, frame
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    sys.stderr.write(f"soul: warm recall listening on {socket_path(server.soul)}\n")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
