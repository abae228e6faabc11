"""Concurrency: many writers, the daemon and an MCP server on one soul at once.

Exactly the expected memories, every log line one whole event, no lock left behind; the log lock
is a `flock`, which (unlike POSIX `lockf`) survives another descriptor of the file being closed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import anyio
import pytest

from reliability.conftest import Ledger
from reliability.helpers import (
    SOUL_BIN,
    all_lines,
    free_locks,
    git_fsck,
    init_soul,
    mcp_client,
    memory_events,
    run_soul,
    soul_env,
)
from soul import fsutil, store


def _core_writer(home: str, worker: int, count: int, commit: bool) -> None:
    from soul.core import Soul

    soul = Soul.open(Path(home), "alpha")
    for i in range(count):
        soul.remember(f"core worker {worker} memory {i}", commit=commit)


def core_writers(home: Path, processes: int, each: int, commit: bool) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_core_writer, args=(str(home), w, each, commit)) for w in range(processes)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=900)
        assert proc.exitcode == 0, f"writer exited {proc.exitcode}"


def check_lines(home: Path, expected: int) -> None:
    lines = all_lines(home)
    assert all(line.endswith(b"\n") for line in lines), "a line without its newline"
    parsed = [store.parse_line(line[:-1]) for line in lines]
    assert all(p is not None for p in parsed), "an interleaved or broken line"
    events = memory_events(home)
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) == expected, f"{len(ids)} memories, {len(set(ids))} ids, expected {expected}"
    assert store.quarantined(home) == []


def test_four_processes_250_each_through_the_core(tmp_path: Path, ledger: Ledger) -> None:
    """The full count through the core API (commits off: git is serialised and slow here)."""
    home = init_soul(tmp_path / "soul")
    core_writers(home, processes=4, each=250, commit=False)
    check_lines(home, 1000)
    assert free_locks(home) == []
    ledger.add("test_concurrency", acknowledged=1000, data_lost=0, writer_processes=4)


def test_log_lock_survives_closing_another_descriptor(tmp_path: Path, ledger: Ledger) -> None:
    """Hold soul's log lock, open and close the file elsewhere in this process; a real writer
    (another process) must stay blocked until we release, or it would interleave with us."""
    home = init_soul(tmp_path / "soul")
    run_soul("remember", "first", home=home, env=soul_env())
    path = store.log_files(home)[0]
    size = path.stat().st_size
    with fsutil.file_lock(path, timeout=5):
        other = os.open(path, os.O_RDONLY)
        os.close(other)  # with lockf this close would drop our lock
        with path.open("rb"):
            pass
        writer = subprocess.Popen(
            [SOUL_BIN, "--home", str(home), "--instance", "alpha", "remember", "--json", "second"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=soul_env(),
        )
        time.sleep(3.0)  # ample for a remember that is not blocked (it would have appended)
        assert path.stat().st_size == size, "the writer got in while we held the lock"
        assert writer.poll() is None
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert json.loads(out)["id"] in {e["id"] for e in memory_events(home)}
    ledger.add("test_concurrency", faults=1)


def _start_daemon(home: Path) -> subprocess.Popen[bytes]:
    toml = home / "soul.toml"
    toml.write_text(toml.read_text().replace("interval = 60", "interval = 2"))
    return subprocess.Popen(
        [SOUL_BIN, "--home", str(home), "--instance", "alpha", "daemon", "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=soul_env(),
        start_new_session=True,
    )


def _mcp_remembers(home: Path, count: int, ids: list[str], errors: list[str]) -> None:
    async def main() -> None:
        async with mcp_client(home) as client:
            for i in range(count):
                result = await client.call_tool("remember", {"text": f"mcp memory {i}", "tags": ["mcp"]})
                if result.is_error:
                    errors.append(str(result.content))
                else:
                    ids.append(result.structured_content["id"])

    try:
        anyio.run(main)
    except Exception as exc:  # reported by the test thread
        errors.append(repr(exc))


def _cli_writer(home: Path, worker: int, count: int, ids: list[str]) -> None:
    for i in range(count):
        proc = run_soul("remember", "--json", f"cli worker {worker} memory {i}", home=home, env=soul_env())
        ids.append(json.loads(proc.stdout)["id"])


def mixed_run(tmp_path: Path, bare_remote: Path, cli_each: int, mcp_count: int, core_each: int) -> dict[str, int]:
    home = init_soul(tmp_path / "soul")
    run_soul("init", "--instance", "alpha", "--remote", str(bare_remote), home=home)
    daemon = _start_daemon(home)
    cli_ids: list[str] = []
    mcp_ids: list[str] = []
    mcp_errors: list[str] = []
    threads = [threading.Thread(target=_cli_writer, args=(home, w, cli_each, cli_ids)) for w in range(4)]
    threads.append(threading.Thread(target=_mcp_remembers, args=(home, mcp_count, mcp_ids, mcp_errors)))
    try:
        for thread in threads:
            thread.start()
        core_writers(home, processes=2, each=core_each, commit=True)
        for thread in threads:
            thread.join(timeout=900)
        assert not mcp_errors, mcp_errors
        assert len(cli_ids) == 4 * cli_each and len(mcp_ids) == mcp_count
        assert daemon.poll() is None, "the daemon died under load"
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
    expected = 4 * cli_each + mcp_count + 2 * core_each
    check_lines(home, expected)
    assert set(cli_ids + mcp_ids) <= {e["id"] for e in memory_events(home)}
    assert free_locks(home) == [], "a lock is still held after every writer and the daemon stopped"
    assert git_fsck(home).returncode == 0
    run_soul("sync", home=home, env=soul_env())  # everything reaches the remote; nothing stuck
    status = subprocess.run(["git", "status", "--porcelain", "--", "memories"], cwd=home, capture_output=True,
                            text=True, check=True)  # fmt: skip
    assert status.stdout == "", "memories left uncommitted"
    return {"expected": expected}


def test_writers_daemon_and_mcp_at_once(tmp_path: Path, bare_remote: Path, ledger: Ledger) -> None:
    result = mixed_run(tmp_path, bare_remote, cli_each=3, mcp_count=12, core_each=12)
    ledger.add("test_concurrency", acknowledged=result["expected"], data_lost=0, daemons=1, mcp_servers=1)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_four_by_250_cli_processes_with_daemon_and_mcp(tmp_path: Path, bare_remote: Path, ledger: Ledger) -> None:
    result = mixed_run(tmp_path, bare_remote, cli_each=250, mcp_count=250, core_each=0)
    ledger.add("test_concurrency", acknowledged=result["expected"], data_lost=0, daemons=1, mcp_servers=1)
