"""A hypothesis state machine over remember / forget / set / sync / partition on three replicas of
one soul: whatever the interleaving, no acknowledged memory is ever lost and, once the network
heals and everyone syncs, the replicas hold identical trees and agree on every value."""

from __future__ import annotations

import itertools
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from soul.core import Soul

NAMES = ("alpha", "beta", "gamma")
KEYS = ("editor.theme", "ui.size")


class SyncMachine(RuleBasedStateMachine):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(dir=root))
        self.remote = self.dir / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.remote)], check=True)
        first = Soul.init(self.dir / NAMES[0], NAMES[0], remote=str(self.remote))
        assert first.sync().status == "synced"
        self.souls = [first] + [Soul.join(str(self.remote), self.dir / n, n) for n in NAMES[1:]]
        self.acknowledged: dict[str, int] = {}  # memory id -> replica that wrote it
        self.forgotten: set[str] = set()
        self.values: dict[str, set[object]] = {key: set() for key in KEYS}
        self.counter = itertools.count()
        self.offline = False

    @rule(replica=st.integers(0, 2))
    def remember(self, replica: int) -> None:
        text = f"memory {next(self.counter)} from {NAMES[replica]}"
        self.acknowledged[self.souls[replica].remember(text).id] = replica

    @rule(replica=st.integers(0, 2), pick=st.integers(0, 1000))
    def forget(self, replica: int, pick: int) -> None:
        live = sorted(m["id"] for m in self.souls[replica].list_memories(limit=0))
        if live:
            self.forgotten.add(self.souls[replica].forget(live[pick % len(live)]))

    @rule(replica=st.integers(0, 2), key=st.sampled_from(KEYS), value=st.integers(0, 5))
    def set_value(self, replica: int, key: str, value: int) -> None:
        self.values[key].add(value)  # before the write: an interrupted write may still land
        self.souls[replica].set_setting(key, value)

    @rule(replica=st.integers(0, 2))
    def sync(self, replica: int) -> None:
        result = self.souls[replica].sync(timeout=30)
        assert result.status == ("offline" if self.offline else "synced"), result.errors

    @precondition(lambda self: not self.offline)
    @rule()
    def partition(self) -> None:
        self.remote.rename(self.remote.with_name("away.git"))
        self.offline = True

    @precondition(lambda self: self.offline)
    @rule()
    def heal(self) -> None:
        self.remote.with_name("away.git").rename(self.remote)
        self.offline = False

    @invariant()
    def nothing_acknowledged_is_lost_locally(self) -> None:
        for index, soul in enumerate(self.souls):
            view = soul.view()
            for memory_id, writer in self.acknowledged.items():
                if writer == index and memory_id not in self.forgotten:
                    assert view.memory(memory_id) is not None, f"{memory_id} lost on {soul.instance}"

    def teardown(self) -> None:
        try:
            if self.offline:
                self.heal()
            self._converge()
        finally:
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)

    def _converge(self) -> None:
        for _ in range(4):
            results = [soul.sync(timeout=30) for soul in self.souls]
            assert all(r.status == "synced" for r in results), [r.errors for r in results]
            if len({_git(s.home, "rev-parse", "HEAD") for s in self.souls}) == 1:
                break
        assert len({_git(s.home, "rev-parse", "HEAD^{tree}") for s in self.souls}) == 1, "trees differ"
        want = set(self.acknowledged) - self.forgotten
        for soul in self.souls:
            fresh = Soul.open(soul.home, soul.instance)
            assert {m["id"] for m in fresh.list_memories(limit=0)} == want, soul.instance
            for key in KEYS:
                values = {Soul.open(s.home, s.instance).all_settings().get(key) for s in self.souls}
                assert len(values) == 1, f"{key} disagrees: {values}"
                assert values <= self.values[key] | {None}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def test_sync_state_machine(tmp_path: Path) -> None:
    run_state_machine_as_test(
        lambda: SyncMachine(tmp_path), settings=settings(max_examples=3, stateful_step_count=12, deadline=None)
    )


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_sync_state_machine_long(tmp_path: Path) -> None:
    run_state_machine_as_test(
        lambda: SyncMachine(tmp_path), settings=settings(max_examples=30, stateful_step_count=30, deadline=None)
    )
