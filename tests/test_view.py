"""The fold: deterministic state from events, exact-duplicate aliases, merges."""

from __future__ import annotations

from typing import Any

from soul.view import fact_key, fold, normalize_text


def ev(op: str, id: str, at: str, by: str = "a", **fields: Any) -> dict[str, Any]:
    return {"op": op, "id": id, "at": at, "by": by, "v": 1, **fields}


def test_add_update_forget() -> None:
    view = fold(
        [
            ev("memory.add", "M1", "2026-01-01T00:00:00.000Z", text="tabs", kind="preference", tags=["style"]),
            ev("memory.update", "U1", "2026-01-02T00:00:00.000Z", target="M1", text="tabs, width 4"),
            ev("memory.add", "M2", "2026-01-03T00:00:00.000Z", text="other"),
            ev("memory.forget", "F1", "2026-01-04T00:00:00.000Z", target="M2"),
        ]
    )
    assert [m.id for m in view.memories] == ["M1"]
    assert view.memory("M1").text == "tabs, width 4"  # type: ignore[union-attr]
    assert view.memory("M2") is None


def test_same_fact_twice_becomes_alias_of_earliest() -> None:
    view = fold(
        [
            ev("memory.add", "M1", "2026-01-01T00:00:00.000Z", by="a", text="Deploys happen on Friday."),
            ev("memory.add", "M2", "2026-01-01T00:00:01.000Z", by="b", text="deploys  happen on friday"),
        ]
    )
    assert [m.id for m in view.memories] == ["M1"]
    assert view.memory("M2").id == "M1"  # type: ignore[union-attr]
    assert view.memory("M1").aliases == ["M2"]  # type: ignore[union-attr]


def test_forgetting_an_alias_forgets_the_fact() -> None:
    view = fold(
        [
            ev("memory.add", "M1", "2026-01-01T00:00:00.000Z", text="x is y"),
            ev("memory.add", "M2", "2026-01-01T00:00:01.000Z", by="b", text="X is y"),
            ev("memory.forget", "F", "2026-01-02T00:00:00.000Z", target="M2"),
        ]
    )
    assert view.memories == []
    # The same fact can be remembered again after it was forgotten.
    again = fold(
        [
            ev("memory.add", "M1", "2026-01-01T00:00:00.000Z", text="x is y"),
            ev("memory.forget", "F", "2026-01-02T00:00:00.000Z", target="M1"),
            ev("memory.add", "M3", "2026-01-03T00:00:00.000Z", text="x is y"),
        ]
    )
    assert [m.id for m in again.memories] == ["M3"]


def test_kind_and_project_make_different_facts() -> None:
    assert fact_key("a", "note", None) != fact_key("a", "fact", None)
    assert fact_key("a", "note", "p") != fact_key("a", "note", None)
    assert normalize_text("  Hello   World. ") == "hello world"


def test_merge_and_unmerge_are_reversible() -> None:
    base = [
        ev("memory.add", "M1", "2026-01-01T00:00:00.000Z", text="likes dark mode"),
        ev("memory.add", "M2", "2026-01-01T00:00:01.000Z", text="prefers a dark theme"),
        ev("memory.merge", "G1", "2026-01-02T00:00:00.000Z", source="M2", target="M1"),
    ]
    merged = fold(base)
    assert [m.id for m in merged.memories] == ["M1"]
    assert merged.memory("M1").merged == ["M2"]  # type: ignore[union-attr]
    restored = fold([*base, ev("memory.unmerge", "G2", "2026-01-03T00:00:00.000Z", source="M2")])
    assert sorted(m.id for m in restored.memories) == ["M1", "M2"]


def test_malformed_bodies_and_unknown_ops_do_not_stop_the_fold() -> None:
    view = fold(
        [
            ev("memory.add", "M0", "2026-01-01T00:00:00.000Z"),  # no text
            ev("future.op", "X", "2026-01-01T00:00:00.000Z", anything=1),
            ev("memory.add", "M1", "2026-01-01T00:00:01.000Z", text="fine"),
        ]
    )
    assert [m.id for m in view.memories] == ["M1"]
    assert view.event_count == 3
