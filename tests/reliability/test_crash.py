"""Crash consistency: `soul remember` writers killed with SIGKILL at random points.

Acknowledged means the process printed its id and exited 0; such a memory must be in the logs
exactly once with its exact text. Killed writers may or may not have written (never twice, never
glued to another event). Kills go to the whole process group, so git children die mid-commit too.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reliability.conftest import Ledger
from reliability.helpers import SOUL_BIN, all_lines, free_locks, git_fsck, init_soul, memory_events, run_soul, soul_env
from soul import store

WORDS = [
    "deploy",
    "script",
    "lives",
    "in",
    "ops",
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "Priya",
    "prefers",
    "short",
    "PR",
    "descriptions",
    "meeting",
    "notes",
    "release",
    "train",
    "staging",
    "cluster",
    "migrations",
    "rollback",
    "plan",
]
MIN_SIZE, MAX_SIZE = 100, 1 << 20


def record_text(rng: random.Random, serial: int) -> str:
    """A unique, guard-clean text of 100 B to 1 MiB (log-uniform, so most are small)."""
    size = round(2 ** rng.uniform(7, 20))
    size = max(MIN_SIZE, min(MAX_SIZE, size))
    head = f"crash-{serial:05d}-{rng.getrandbits(32):08x} "
    body = " ".join(rng.choice(WORDS) for _ in range(size // 5 + 1))
    return (head + body)[:size].strip() + "."  # soul strips surrounding whitespace


@dataclass
class Writer:
    proc: subprocess.Popen[bytes]
    text: str
    kill_at: float | None


@dataclass
class Outcome:
    acked: dict[str, str] = field(default_factory=dict)  # id -> sha256 of text
    kills: int = 0
    spawned: int = 0
    failed_clean: int = 0  # exited non-zero without a kill (must be explained, e.g. lock timeout)
    bytes_acked: int = 0


def spawn(home: Path, text: str, scratch: Path) -> subprocess.Popen[bytes]:
    # stdin from a file, not a pipe: a kill can then never block the feeder.
    source = scratch / f"in-{time.monotonic_ns()}"
    source.write_text(text, encoding="utf-8")
    cmd = [SOUL_BIN, "--home", str(home), "--instance", "alpha", "remember", "--json", "-"]
    with source.open("rb") as stdin:
        proc = subprocess.Popen(
            cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=soul_env(), start_new_session=True
        )
    source.unlink()
    return proc


def reap(writer: Writer, outcome: Outcome) -> None:
    out, err = writer.proc.communicate(timeout=120)
    code = writer.proc.returncode
    if code == 0:
        memory_id = json.loads(out)["id"]
        assert memory_id not in outcome.acked, "one id acknowledged twice"
        outcome.acked[memory_id] = hashlib.sha256(writer.text.encode()).hexdigest()
        outcome.bytes_acked += len(writer.text)
    elif code != -signal.SIGKILL:
        outcome.failed_clean += 1
        assert err.startswith(b"soul:"), f"unexplained failure {code}: {err[-500:]!r}"


def crash_run(home: Path, kills: int, parallel: int, seed: int, budget: float) -> Outcome:
    """Keep `parallel` writers busy; kill about 60% of them at a random moment of their life."""
    rng = random.Random(seed)
    outcome = Outcome()
    running: list[Writer] = []
    deadline = time.monotonic() + budget
    serial = 0
    scratch = home.parent / "inputs"
    scratch.mkdir(exist_ok=True)
    while (outcome.kills < kills or running) and time.monotonic() < deadline:
        while len(running) < parallel and outcome.kills + sum(w.kill_at is not None for w in running) < kills:
            serial += 1
            text = record_text(rng, serial)
            kill_at = time.monotonic() + rng.uniform(0.02, 1.5) if rng.random() < 0.6 else None
            running.append(Writer(spawn(home, text, scratch), text, kill_at))
            outcome.spawned += 1
        time.sleep(0.005)
        now = time.monotonic()
        for writer in list(running):
            if writer.kill_at is not None and now >= writer.kill_at and writer.proc.poll() is None:
                os.killpg(writer.proc.pid, signal.SIGKILL)
                outcome.kills += 1
                writer.kill_at = None
                writer.proc.wait(timeout=30)
            if writer.proc.poll() is not None:
                if writer.kill_at is not None:
                    writer.kill_at = None  # finished before its kill: counts as a plain writer
                running.remove(writer)
                reap(writer, outcome)
    for writer in running:  # out of budget: finish them normally
        writer.proc.wait(timeout=120)
        reap(writer, outcome)
    return outcome


def verify(home: Path, outcome: Outcome) -> dict[str, int]:
    """Every invariant after the crashes; returns counters for the ledger."""
    # Reading is what quarantines a torn tail nobody sealed yet; it must never raise.
    for path in store.log_files(home):
        store.read_log(home, path)
    events = memory_events(home)
    by_id: dict[str, list[dict[str, object]]] = {}
    for event in events:
        by_id.setdefault(str(event["id"]), []).append(event)
    duplicated = sum(len(v) - 1 for v in by_id.values())
    lost = [i for i in outcome.acked if i not in by_id]
    wrong = [i for i, sha in outcome.acked.items() if i in by_id and _sha(by_id[i][0]) != sha]
    texts = [str(e["text"]) for e in events]
    assert not lost, f"acknowledged memories lost: {lost}"
    assert not wrong, f"acknowledged memories changed: {wrong}"
    assert duplicated == 0 and len(set(texts)) == len(texts), "a memory was written twice"
    quarantined = store.quarantined(home)
    bad_digests = {q.sha256 for q in quarantined}
    for raw in all_lines(home):
        parsed = store.parse_line(raw.rstrip(b"\n")) if raw.endswith(b"\n") else None
        if parsed is None:
            assert hashlib.sha256(raw).hexdigest() in bad_digests, f"bad line not quarantined: {raw[:80]!r}"
    for q in quarantined:
        saved = (store.quarantine_dir(home) / q.saved_as).read_bytes()
        assert len(saved) == q.length and hashlib.sha256(saved).hexdigest() == q.sha256
    fsck = git_fsck(home)
    assert fsck.returncode == 0, fsck.stderr
    run_soul("list", "--json", "--limit", "1", home=home, env=soul_env())  # the fold loads
    # Dead writers hold no flock; a git killed mid-commit may leave index.lock, which the next
    # sync must clear (no git is running) so that every surviving event gets committed.
    assert [lock for lock in free_locks(home) if lock != ".git/index.lock"] == []
    run_soul("sync", home=home, env=soul_env())
    assert free_locks(home) == []
    left = subprocess.run(["git", "status", "--porcelain", "--", "memories"], cwd=home, capture_output=True, text=True)
    assert left.stdout == "", f"events left uncommitted after sync: {left.stdout[:200]}"
    return {"lost": len(lost), "duplicated": duplicated, "quarantined": len(quarantined), "events": len(events)}


def _sha(event: dict[str, object]) -> str:
    return hashlib.sha256(str(event["text"]).encode()).hexdigest()


def _check_and_log(home: Path, outcome: Outcome, ledger: Ledger) -> None:
    result = verify(home, outcome)
    ledger.add(
        "test_crash",
        kills=outcome.kills,
        faults=outcome.kills,
        writers=outcome.spawned,
        acknowledged=len(outcome.acked),
        torn_tails_quarantined=result["quarantined"],
        data_lost=result["lost"],
        duplicated=result["duplicated"],
    )
    assert outcome.kills > 0 and outcome.acked


def test_core_fsync_is_set_on_a_new_soul(tmp_path: Path) -> None:
    home = init_soul(tmp_path / "soul")
    value = subprocess.run(["git", "config", "core.fsync"], cwd=home, capture_output=True, text=True).stdout
    assert {"objects", "reference"} <= set(value.strip().split(",")) or "committed" in value


def test_kill_writers_at_random_points(tmp_path: Path, ledger: Ledger) -> None:
    home = init_soul(tmp_path / "soul")
    outcome = crash_run(home, kills=30, parallel=3, seed=8, budget=75)
    assert outcome.kills >= 20, f"only {outcome.kills} kills within the budget"
    _check_and_log(home, outcome, ledger)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_kill_writers_at_hundreds_of_points(tmp_path: Path, ledger: Ledger) -> None:
    home = init_soul(tmp_path / "soul")
    outcome = crash_run(home, kills=300, parallel=4, seed=88, budget=1500)
    assert outcome.kills >= 250
    _check_and_log(home, outcome, ledger)


TORN_WRITER = """
import fcntl, os, signal, sys
path, data = sys.argv[1], sys.stdin.buffer.read()
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)  # the lock soul's writers take
os.write(fd, data)
os.kill(os.getpid(), signal.SIGKILL)  # dies holding the lock, mid-record
"""


def _torn_log(home: Path, tmp_path: Path) -> tuple[Path, bytes]:
    """A log ending in half an event, written by a process that died with the lock."""
    run_soul("remember", "a whole first memory", home=home, env=soul_env())
    path = store.log_files(home)[0]
    event = {"op": "memory.add", "id": "01TORNTAIL0000000000000000", "at": "2026-01-01T00:00:00.000Z", "by": "alpha"}
    whole = store.encode_event({**event, "text": "x" * 5000})
    torn = whole[: len(whole) // 2]
    proc = subprocess.run([sys.executable, "-c", TORN_WRITER, str(path)], input=torn, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes().endswith(torn)
    return path, torn


def test_torn_tail_is_sealed_by_the_next_writer_byte_exact(tmp_path: Path, ledger: Ledger) -> None:
    home = init_soul(tmp_path / "soul")
    path, torn = _torn_log(home, tmp_path)
    size_before = path.stat().st_size
    new_id = json.loads(run_soul("remember", "--json", "written after the crash", home=home, env=soul_env()).stdout)
    saved = [q for q in store.quarantined(home) if q.offset == size_before - len(torn)]
    assert len(saved) == 1
    assert (store.quarantine_dir(home) / saved[0].saved_as).read_bytes() == torn
    events, _ = store.read_log(home, path)
    assert [e["id"] for e in events][-1] == new_id["id"]
    assert all(line.endswith(b"\n") for line in path.read_bytes().splitlines(keepends=True))
    ledger.add("test_crash", faults=1, torn_tails_quarantined=1, acknowledged=1)


def test_torn_tail_is_quarantined_on_read_byte_exact(tmp_path: Path, ledger: Ledger) -> None:
    home = init_soul(tmp_path / "soul")
    path, torn = _torn_log(home, tmp_path)
    events, end = store.read_log(home, path)
    assert end == path.stat().st_size - len(torn)
    assert [q for q in store.quarantined(home) if (store.quarantine_dir(home) / q.saved_as).read_bytes() == torn]
    listed = json.loads(run_soul("list", "--json", home=home, env=soul_env()).stdout)
    assert len(listed) == len(events) == 1
    ledger.add("test_crash", faults=1, torn_tails_quarantined=1)
