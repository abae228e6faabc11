"""The background daemon (`soul daemon run|start|stop|status`): commits and syncs so nobody has to.

One loop on the main thread does one step at a time: a debounced auto-commit (the repo has been
quiet 2 s, or 30 s have passed since the first unsaved change, so a write storm yields at most
one commit per 30 s), a periodic sync (`[sync] interval`, default 60 s; exponential backoff with
jitter while offline; at once when the `[sync] server` announces a change), a heartbeat when this
instance is registered. It starts with a full scan (commit whatever changed while it was away,
index catch-up) and hosts the warm recall server when `soul.warm` is available.

Invariants: one daemon per soul (flock on `.soul/daemon.lock`, pid in `.soul/daemon.pid`); a
sync error is logged and retried later, never fatal; SIGTERM lets the current step finish; its
state is in `.soul/daemon.json` (pid, started, last sync, last error, offline since), read by
`soul status`; it logs to `.soul/daemon.log`. watchdog is imported only when the daemon runs.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soul import fsutil
from soul.errors import SoulError
from soul.ids import now_iso

if TYPE_CHECKING:
    from soul.core import Soul

log = logging.getLogger("soul.daemon")

LOCK_FILE = "daemon.lock"
PID_FILE = "daemon.pid"
STATUS_FILE = "daemon.json"
LOG_FILE = "daemon.log"
QUIET = 2.0
MAX_WAIT = 30.0
TICK = 0.25
MAX_BACKOFF = 15 * 60.0
HEARTBEAT_EVERY = 5 * 60.0
_IGNORED_TOP = {".git", ".soul"}


def ignored(home: Path, path: str) -> bool:
    """Events the daemon must not react to: git's and soul's own dirs, atomic-write temp files,
    editor swap files."""
    try:
        rel = Path(path).relative_to(home)
    except ValueError:
        return True
    if not rel.parts or rel.parts[0] in _IGNORED_TOP:
        return True
    name = rel.name
    return (
        (name.startswith(".") and name.endswith(".tmp"))
        or name.endswith(("~", ".swp", ".swx", ".swpx"))
        or name.startswith(".#")
        or name == "4913"
    )


class Daemon:
    """The loop behind `soul daemon run`; `request_stop()` is what SIGTERM calls."""

    def __init__(self, soul: Soul, interval: float | None = None, warm: bool = True) -> None:
        self.soul = soul
        self.warm = warm
        self.interval = float(interval or soul.config["sync"].get("interval") or 60)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._mutex = threading.Lock()
        self._first_change: float | None = None
        self._last_change: float | None = None
        self._sync_requested = False
        self._failures = 0
        self._next_sync = 0.0
        self._next_heartbeat = 0.0
        # When the warm server runs, it alone holds this process's index (model and matrix):
        # a second SoulIndex here would double the memory at 100k memories.
        self._warm_server: Any = None
        self.state: dict[str, Any] = {"pid": os.getpid(), "started": now_iso(), "commits": 0, "syncs": 0}

    # -------------------------------------------------------------- signals from other threads

    def changed(self) -> None:
        now = time.monotonic()
        with self._mutex:
            self._first_change = self._first_change or now
            self._last_change = now

    def request_sync(self) -> None:
        with self._mutex:
            self._sync_requested = True
        self._wake.set()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    # -------------------------------------------------------------- the loop

    def run(self) -> None:
        lock_fd = fsutil.try_lock(self.soul.state_dir / LOCK_FILE)
        if lock_fd is None:
            raise SoulError(f"a daemon is already running for {self.soul.home}", hint="see `soul daemon status`")
        pid_path = self.soul.state_dir / PID_FILE
        helpers: list[Any] = []
        try:
            fsutil.atomic_write(pid_path, f"{os.getpid()}\n")
            log.info("daemon started (pid %d, interval %.0fs) for %s", os.getpid(), self.interval, self.soul.home)
            self.state["running"] = True
            self._write_state()
            helpers = self._start_helpers()
            self._full_scan()
            while not self._stop.is_set():
                self._step()
                self._wake.wait(TICK)
                self._wake.clear()
        finally:
            _stop_helpers(helpers)
            self.state["running"] = False
            self.state["stopped"] = now_iso()
            self._write_state()
            pid_path.unlink(missing_ok=True)
            os.close(lock_fd)
            log.info("daemon stopped")

    def _full_scan(self) -> None:
        from soul import sync as sync_mod

        self._commit()
        sync_mod.refresh_duplicates(self.soul)
        self._refresh_index()
        self._next_sync = time.monotonic()

    def _step(self) -> None:
        now = time.monotonic()
        with self._mutex:
            first, last = self._first_change, self._last_change
            due = first is not None and last is not None and (now - last >= QUIET or now - first >= MAX_WAIT)
            if due:
                self._first_change = self._last_change = None
            sync_now = self._sync_requested or now >= self._next_sync
            self._sync_requested = False
        if due:
            self._commit()
            # Push what was just written instead of waiting out the interval; while offline the
            # backoff decides, so a storm of writes does not become a storm of connection attempts.
            sync_now = sync_now or (self._failures == 0 and self._unpushed())
        if sync_now and not self._stop.is_set():
            self._sync()
        if now >= self._next_heartbeat and not self._stop.is_set():
            self._next_heartbeat = now + HEARTBEAT_EVERY
            self._heartbeat()

    def _unpushed(self) -> bool:
        from soul import sync as sync_mod

        home = self.soul.home
        try:
            if sync_mod.remote_url(home) is None:
                return False
            tracking = f"refs/remotes/{sync_mod.REMOTE}/{sync_mod.current_branch(home)}"
            return sync_mod.ahead_behind(home, tracking)[0] > 0
        except SoulError:
            return False

    def _commit(self) -> None:
        from soul import sync as sync_mod

        try:
            made, refused = sync_mod.commit_all(self.soul, f"soul: auto-commit ({self.soul.instance})")
        except Exception as exc:  # a failed commit is retried on the next change or sync
            self._error(f"auto-commit failed: {exc}")
            return
        if made:
            self.state["commits"] += 1
            log.info("committed local changes")
        if refused:
            self._error("; ".join(refused))
        self._write_state()

    def _sync(self) -> None:
        from soul import sync as sync_mod

        try:
            result = sync_mod.sync(self.soul, timeout=max(30.0, min(self.interval, 120.0)))
            if result.received:
                self._refresh_index()
        except Exception as exc:  # never exit on a sync error: log it and try again later
            self._error(f"sync failed: {type(exc).__name__}: {exc}")
            self._next_sync = time.monotonic() + self.interval
            return
        self.state["syncs"] += 1
        self.state["last_sync"] = now_iso()
        self.state["last_result"] = result.status
        if result.status == "offline":
            self._failures += 1
            self.state["offline_since"] = self.state.get("offline_since") or now_iso()
            delay = backoff(self.interval, self._failures)
            log.info("offline (%s); next try in %.0fs", result.message, delay)
        else:
            self._failures = 0
            self.state["offline_since"] = None
            delay = self.interval
            if result.sent or result.received or result.conflicts:
                log.info("%s; %d conflict(s)", result.message, len(result.conflicts))
        if result.status == "attention":
            self._error(result.message)
        elif result.status != "offline":
            self.state["last_error"] = None
        self._next_sync = time.monotonic() + delay
        self._write_state()

    def _heartbeat(self) -> None:
        soul: Any = self.soul
        if not (hasattr(soul, "is_registered") and hasattr(soul, "heartbeat")):
            return
        try:
            if soul.is_registered():
                soul.heartbeat()
        except Exception as exc:  # liveness is best effort
            log.warning("heartbeat failed: %s", exc)

    def _error(self, message: str) -> None:
        log.error("%s", message)
        self.state["last_error"] = message
        self.state["last_error_at"] = now_iso()
        self._write_state()

    def _write_state(self) -> None:
        state = {**self.state, "interval": self.interval}
        _quietly(lambda: fsutil.atomic_write(self.soul.state_dir / STATUS_FILE, json.dumps(state) + "\n"), "status")

    # -------------------------------------------------------------- helpers: watcher, warm, events

    def _start_helpers(self) -> list[Any]:
        helpers: list[Any] = []
        for make in (self._watcher, self._warm, self._subscriber):
            try:
                helper = make()
            except Exception as exc:  # a missing helper degrades the daemon, never stops it
                log.warning("%s unavailable: %s", make.__name__.strip("_"), exc)
                continue
            if helper is not None:
                helpers.append(helper)
        return helpers

    def _watcher(self) -> Any:
        return _Watcher(self.soul.home, self.changed)

    def _warm(self) -> Any:
        if not self.warm:
            return None
        try:
            from soul.warm import WarmServer  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return None
        server = WarmServer(self.soul)
        server.start()
        self._warm_server = server
        return server

    def _refresh_index(self) -> None:
        if self._warm_server is not None:
            self._warm_server.refresh()
        else:
            from soul import sync as sync_mod

            sync_mod.catch_up_semantic_index(self.soul)

    def _subscriber(self) -> Any:
        url = self.soul.config["sync"].get("server")
        if not url:
            return None
        try:
            from soul.events_client import Subscriber  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return None

        def on_change(*_args: Any) -> None:
            self.request_sync()

        sub = Subscriber(str(url), _server_token(self.soul), on_change)
        sub.start()
        return sub


class _Watcher:
    """watchdog on the repo: the top level, plus each top-level directory but .git/ and .soul/
    recursively, so git's own churn under .git/objects costs no inotify watches at all."""

    def __init__(self, home: Path, on_change: Any) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                if event.is_directory and event.event_type == "modified":
                    return
                paths = [os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or "")]
                relevant = [p for p in paths if p and not ignored(home, p)]
                if not relevant:
                    return
                if event.is_directory and event.event_type in ("created", "moved"):
                    watcher.watch(Path(relevant[-1]))
                on_change()

        self.home = home
        self.handler = Handler()
        self.observer = Observer()
        self.watched: set[Path] = set()
        self.observer.schedule(self.handler, str(home), recursive=False)
        for child in home.iterdir():
            if child.is_dir() and child.name not in _IGNORED_TOP:
                self.watch(child)
        self.observer.start()

    def watch(self, path: Path) -> None:
        if path.parent == self.home and path not in self.watched and path.is_dir():
            self.watched.add(path)
            self.observer.schedule(self.handler, str(path), recursive=True)

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)


def _stop_helpers(helpers: list[Any], wait: float = 3.0) -> None:
    """Stop helpers in parallel, waiting a bounded time: a helper stuck in a slow call (a model
    load) must not hold SIGTERM hostage; its threads are daemon threads and end with us."""
    threads = [threading.Thread(target=_quietly, args=(h.stop, "stopping a helper"), daemon=True) for h in helpers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + wait
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


def backoff(interval: float, failures: int) -> float:
    """Exponential backoff with jitter, so machines that lost the same server do not retry in step."""
    base = min(MAX_BACKOFF, interval * (2 ** min(failures - 1, 10)))
    return float(base * random.uniform(0.5, 1.0) + random.uniform(0, min(5.0, interval)))


def _server_token(soul: Soul) -> str | None:
    """`[sync] token_file`, else `.soul/server.token` when present; None: the server needs none."""
    from soul import events_client

    configured = soul.config["sync"].get("token_file")
    path = Path(str(configured)).expanduser() if configured else events_client.default_token_path(soul.home)
    if not configured and not path.exists():
        return None
    return events_client.read_token_file(path)


def _quietly(fn: Any, what: str) -> None:
    try:
        fn()
    except Exception as exc:
        log.warning("%s failed: %s", what, exc)


# ---------------------------------------------------------------------- run / start / stop / status


def run(soul: Soul, interval: float | None = None) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT."""
    _setup_logging(soul)
    daemon = Daemon(soul, interval)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: daemon.request_stop())
    daemon.run()


def _setup_logging(soul: Soul) -> None:
    from logging.handlers import RotatingFileHandler

    root = logging.getLogger("soul")
    root.setLevel(logging.INFO)
    handler = RotatingFileHandler(soul.state_dir / LOG_FILE, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if sys.stderr.isatty():
        root.addHandler(logging.StreamHandler())


def start(soul: Soul, wait: float = 20.0) -> dict[str, Any]:
    """Start a detached daemon (its own session) and return once it holds the lock."""
    current = status(soul)
    if current["running"]:
        return {**current, "already_running": True}
    args = [sys.executable, "-m", "soul", "--home", str(soul.home), "--instance", soul.instance, "daemon", "run"]
    with open(soul.state_dir / LOG_FILE, "ab") as out:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, close_fds=True
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        current = status(soul)
        if current["running"] and current["pid"] == proc.pid:
            return {**current, "already_running": False}
        if proc.poll() is not None:
            raise SoulError(f"the daemon exited at start (code {proc.returncode})", hint=f"see {_log_path(soul)}")
        time.sleep(0.05)
    raise SoulError(f"the daemon did not come up within {wait:.0f}s", hint=f"see {_log_path(soul)}")


def stop(soul: Soul, wait: float = 30.0) -> bool:
    """SIGTERM the daemon and wait until it has let go of its lock; False if none was running."""
    current = status(soul)
    if not current["running"] or not current["pid"]:
        return False
    try:
        os.kill(int(current["pid"]), signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not _lock_held(soul):
            return True
        time.sleep(0.05)
    raise SoulError(
        f"the daemon (pid {current['pid']}) did not stop within {wait:.0f}s",
        hint=f"it may be in a long sync; wait, or `kill -9 {current['pid']}`",
    )


def status(soul: Soul) -> dict[str, Any]:
    """Daemon facts for `soul status` and `soul daemon status`: a file read and a lock probe."""
    state_dir = soul.home / ".soul"
    try:
        data = json.loads((state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    running = _lock_held(soul)
    pid: int | None = None
    if running:
        try:
            pid = int((state_dir / PID_FILE).read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            pid = None
    keys = ("started", "last_sync", "last_result", "last_error", "offline_since", "commits", "syncs", "interval")
    return {"running": running, "pid": pid, **{k: data.get(k) for k in keys}}


def _lock_held(soul: Soul) -> bool:
    path = soul.home / ".soul" / LOCK_FILE
    if not path.exists():
        return False
    fd = fsutil.try_lock(path)
    if fd is None:
        return True
    os.close(fd)
    return False


def _log_path(soul: Soul) -> Path:
    return soul.state_dir / LOG_FILE


def doctor_checks(soul: Soul) -> list[tuple[str, bool, str, str | None]]:
    info = status(soul)
    if info["running"]:
        note = f"; last error: {info['last_error']}" if info.get("last_error") else ""
        return [("daemon", True, f"running (pid {info['pid']}){note}", None)]
    return [("daemon", True, "not running (sync runs only on `soul sync`)", "soul daemon start")]
