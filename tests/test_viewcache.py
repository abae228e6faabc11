"""The incremental fold (soul/viewcache.py) always equals a full fold, and takes the fast path
only when that is provably the same thing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from soul import store
from soul.core import Soul
from soul.view import fold
from soul.viewcache import ViewCache


def state(view: Any) -> list[dict[str, Any]]:
    return sorted(
        [m.to_dict() | {"forgotten": m.forgotten, "aliases": list(m.aliases)} for m in view.all_memories.values()],
        key=lambda m: m["id"],
    )


def full(home: Path) -> list[dict[str, Any]]:
    return state(fold(store.read_all(home)))


def test_appends_fold_only_the_tail_and_equal_a_full_fold(core: Soul) -> None:
    cache = ViewCache(core.home)
    first = core.remember("the staging server restarts at 3am", commit=False).id
    assert state(cache.get()) == full(core.home) and cache.full_folds == 1
    second = core.remember("my dentist is Dr. Alvarez", commit=False).id
    core.update(first, text="the staging server restarts at 4am")
    core.forget(second)
    core.remember("my dentist is Dr. Alvarez", commit=False)  # a new fact again after the forget
    core.remember("the staging server restarts at 4am", allow_duplicate=True, commit=False)  # an alias
    assert state(cache.get()) == full(core.home)
    assert cache.full_folds == 1  # all of that was folded from the tails
    assert cache.get() is cache.get()  # nothing changed: no work at all


def test_a_new_segment_file_is_folded_from_its_start(core: Soul, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ViewCache(core.home)
    core.remember("first memory", commit=False)
    cache.get()
    monkeypatch.setattr(store, "SEGMENT_BYTES", 1)  # the next append rolls over to a new file
    core.remember("second memory, in the next segment", commit=False)
    assert len(store.log_files(core.home)) == 2
    assert state(cache.get()) == full(core.home) and cache.full_folds == 1


def test_an_event_that_sorts_earlier_forces_a_full_fold(core: Soul, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ViewCache(core.home)
    mine = core.remember("the build cache lives on the second disk", commit=False).id
    cache.get()
    # Another machine whose clock is a day behind wrote the same fact: in fold order its event comes
    # first, so it is the canonical memory and ours becomes its alias (folding it last would not).
    monkeypatch.setenv("SOUL_CLOCK_SKEW", "-86400")
    other = Soul(core.home, "laptop")
    theirs = other.append("memory.add", {"text": "the build cache lives on the second disk", "kind": "note"})["id"]
    view = cache.get()
    assert state(view) == full(core.home) and cache.full_folds == 2
    assert view.alias_of.get(mine) == theirs


def test_a_rewritten_or_removed_log_forces_a_full_fold(core: Soul) -> None:
    cache = ViewCache(core.home)
    core.remember("alpha bravo charlie", commit=False)
    core.remember("delta echo foxtrot", commit=False)
    cache.get()
    log = store.log_files(core.home)[0]
    lines = log.read_bytes().splitlines(keepends=True)
    # A merge-style rewrite to a *longer* file whose prefix changed: the first line now comes last.
    log.write_bytes(b"".join([*lines[1:], lines[0], lines[1]]))
    assert state(cache.get()) == full(core.home) and cache.full_folds == 2
    log.unlink()
    assert state(cache.get()) == full(core.home) == [] and cache.full_folds == 3


def test_a_torn_tail_is_not_folded_until_it_is_whole(core: Soul) -> None:
    cache = ViewCache(core.home)
    core.remember("complete line", commit=False)
    cache.get()
    log = store.log_files(core.home)[0]
    with open(log, "ab") as handle:
        handle.write(b'{"op": "memory.add", "id": "01TORN')  # a write in progress
    assert state(cache.get()) == state(fold(store.read_all(core.home)))
    assert cache.full_folds == 1


def test_the_soul_view_is_the_cached_incremental_fold(core: Soul) -> None:
    core.remember("one", commit=False)
    view = core.view()
    core.remember("two", commit=False)
    assert core.view() is view and len(view.memories) == 2  # the same object, folded further
    assert core._views.full_folds == 1
