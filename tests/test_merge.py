"""soul.merge: JSONL union and TOML key-wise three-way merge, with hypothesis properties."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soul import merge
from soul.merge import MISSING, Conflict, MergeError, Sides, merge_jsonl, merge_toml, resolve, verify


def ev(i: int, by: str = "a", at: str | None = None) -> bytes:
    event = {"op": "memory.add", "id": f"ID{i:05d}", "at": at or f"2026-01-01T00:00:{i % 60:02d}.{i:03d}Z", "by": by}
    event["text"] = f"memory {i}"
    return (json.dumps(event, separators=(",", ":")) + "\n").encode()


def ids(data: bytes) -> list[str]:
    return [json.loads(line)["id"] for line in data.splitlines() if line.strip()]


# ---------------------------------------------------------------------- JSONL


def test_jsonl_union_keeps_everything_once() -> None:
    base = ev(1) + ev(2)
    ours = base + ev(3)
    theirs = base + ev(4, "b") + ev(3)  # the same event arrived on both sides
    out = merge_jsonl(base, ours, theirs)
    assert ids(out) == ["ID00001", "ID00002", "ID00003", "ID00004"]
    assert out.endswith(b"\n")


def test_jsonl_ours_is_a_byte_prefix_and_theirs_follow_in_fold_order() -> None:
    ours = ev(5) + ev(1)  # append order, not time order
    theirs = ev(9, at="2026-01-01T00:00:09.000Z") + ev(7, at="2026-01-01T00:00:01.000Z")
    out = merge_jsonl(None, ours, theirs)
    assert out.startswith(ours)
    assert ids(out)[2:] == ["ID00007", "ID00009"]


def test_jsonl_dedupes_by_id_even_when_bytes_differ() -> None:
    a = ev(1)
    b = a.replace(b'"text":"memory 1"', b'"text": "memory 1"')
    assert ids(merge_jsonl(None, a, b)) == ["ID00001"]


def test_jsonl_respects_a_deletion_on_one_side() -> None:
    base = ev(1) + ev(2) + ev(3)
    purged = ev(1) + ev(3)
    out = merge_jsonl(base, base + ev(4), purged)
    assert ids(out) == ["ID00001", "ID00003", "ID00004"]


def test_jsonl_keeps_lines_that_are_not_events_and_tolerates_missing_newline() -> None:
    out = merge_jsonl(None, ev(1) + b"garbage line\n", ev(2).rstrip(b"\n"))
    assert b"garbage line\n" in out
    assert ids(merge_jsonl(None, b"", ev(2).rstrip(b"\n"))) == ["ID00002"]
    assert out.count(b"\n") == 3


events_st = st.lists(st.integers(min_value=0, max_value=60), unique=True, max_size=25)


@settings(max_examples=80, deadline=None)
@given(base=events_st, extra_o=events_st, extra_t=events_st)
def test_jsonl_property_union_exact_once_and_symmetric(base: list[int], extra_o: list[int], extra_t: list[int]) -> None:
    b = b"".join(ev(i) for i in base)
    o = b + b"".join(ev(100 + i) for i in extra_o if i % 3) + b"".join(ev(200 + i) for i in extra_t[:3])
    t = b + b"".join(ev(200 + i) for i in extra_t)
    out = merge_jsonl(b, o, t)
    got = ids(out)
    assert len(got) == len(set(got)), "an event appears twice"
    assert set(got) == set(ids(o)) | set(ids(t)), "an event was lost or invented"
    assert out.startswith(o), "ours' bytes must stay a prefix"
    assert set(ids(merge_jsonl(b, t, o))) == set(got)
    assert merge_jsonl(b, out, out) == out  # idempotent


# ---------------------------------------------------------------------- TOML


def sides(policy: str = "newest", ours_t: float = 0.0, theirs_t: float = 0.0) -> Sides:
    times = {"ours": ours_t, "theirs": theirs_t}
    return Sides(policy, lambda side, _key: times[side], "alpha", "beta")


BASE = """# shared settings
[editor]
# tabs or spaces
tab = 4
theme = "dark"

[git]
sign = false
"""


def test_toml_one_side_changes_are_taken_and_comments_kept() -> None:
    ours = BASE.replace("tab = 4", "tab = 2")
    theirs = BASE.replace('theme = "dark"', 'theme = "light"') + "\n[new]\nkey = 1\n"
    text, conflicts = merge_toml(BASE, ours, theirs, "settings/global.toml", sides())
    assert text is not None and not conflicts
    data = tomllib.loads(text)
    assert data == {"editor": {"tab": 2, "theme": "light"}, "git": {"sign": False}, "new": {"key": 1}}
    assert "# tabs or spaces" in text and "# shared settings" in text


@pytest.mark.parametrize(
    ("policy", "ours_t", "theirs_t", "kept", "dropped", "loser"),
    [
        ("local", 1.0, 9.0, 2, 8, "beta"),
        ("remote", 9.0, 1.0, 8, 2, "alpha"),
        ("newest", 9.0, 1.0, 2, 8, "beta"),
        ("newest", 1.0, 9.0, 8, 2, "alpha"),
    ],
)
def test_toml_conflict_follows_policy_and_records_the_loser(
    policy: str, ours_t: float, theirs_t: float, kept: int, dropped: int, loser: str
) -> None:
    ours = BASE.replace("tab = 4", "tab = 2")
    theirs = BASE.replace("tab = 4", "tab = 8")
    text, conflicts = merge_toml(BASE, ours, theirs, "settings/global.toml", sides(policy, ours_t, theirs_t))
    assert text is not None
    assert tomllib.loads(text)["editor"]["tab"] == kept
    assert conflicts == [Conflict("editor.tab", kept, dropped, loser, policy, "settings/global.toml")]
    fields = conflicts[0].to_fields()
    assert set(fields) == {"key", "kept", "dropped", "from", "policy", "file"}


def test_toml_newest_tie_is_decided_alike_on_both_sides() -> None:
    ours = BASE.replace("tab = 4", "tab = 2")
    theirs = BASE.replace("tab = 4", "tab = 8")
    one, _ = merge_toml(BASE, ours, theirs, "f.toml", sides())
    two, _ = merge_toml(BASE, theirs, ours, "f.toml", sides())
    assert one is not None and two is not None
    assert tomllib.loads(one) == tomllib.loads(two)


def test_toml_delete_versus_edit_is_a_conflict_and_delete_alone_applies() -> None:
    ours = BASE.replace("tab = 4\n", "")
    theirs = BASE.replace("tab = 4", "tab = 8")
    text, conflicts = merge_toml(BASE, ours, theirs, "f.toml", sides("local"))
    assert text is not None and "tab" not in tomllib.loads(text)["editor"]
    assert conflicts[0].kept is None and conflicts[0].dropped == 8
    text, conflicts = merge_toml(BASE, ours, BASE, "f.toml", sides())
    assert text is not None and not conflicts and "tab" not in tomllib.loads(text)["editor"]


def test_toml_table_deleted_on_one_side_goes_away() -> None:
    theirs = BASE.replace("[git]\nsign = false\n", "")
    text, conflicts = merge_toml(BASE, BASE.replace("tab = 4", "tab = 3"), theirs, "f.toml", sides())
    assert text is not None and not conflicts
    assert tomllib.loads(text) == {"editor": {"tab": 3, "theme": "dark"}}


def test_toml_value_versus_table_conflict_still_parses() -> None:
    ours = "a = 1\n"
    theirs = "[a]\nb = 2\n"
    text, conflicts = merge_toml(None, ours, theirs, "f.toml", sides("remote"))
    assert text is not None and tomllib.loads(text) == {"a": {"b": 2}}
    assert conflicts[0].key == "a"


def test_toml_invalid_input_raises() -> None:
    with pytest.raises(MergeError, match="not valid TOML"):
        merge_toml(BASE, "tab = = 1", BASE, "f.toml", sides())
    with pytest.raises(MergeError, match="settings_policy"):
        merge_toml(BASE, BASE, BASE, "f.toml", sides("sometimes"))


def test_toml_both_added_same_table_with_different_keys() -> None:
    ours = BASE + "\n[ui]\nfont = 'mono'\n"
    theirs = BASE + "\n[ui]\nsize = 12\n"
    text, conflicts = merge_toml(BASE, ours, theirs, "f.toml", sides())
    assert text is not None and not conflicts
    assert tomllib.loads(text)["ui"] == {"font": "mono", "size": 12}


LEAVES = ["a.x", "a.y", "b.z", "c", "d.e.f", "d.g"]
value_st = st.one_of(st.just(MISSING), st.integers(-3, 3), st.sampled_from(["s", "t", "ü"]), st.booleans())
flat_st = st.fixed_dictionaries({leaf: value_st for leaf in LEAVES})


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if value is MISSING:
            continue
        node = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def to_toml(flat: dict[str, Any]) -> str:
    import tomlkit

    return tomlkit.dumps(nest(flat))


def flatten(data: dict[str, Any]) -> dict[str, Any]:
    from soul.settings import flatten as settings_flatten

    return settings_flatten(data)


def same(a: Any, b: Any) -> bool:
    return a is b if MISSING in (a, b) else (type(a) is type(b) and a == b)


@settings(max_examples=120, deadline=None)
@given(base=flat_st, ours=flat_st, theirs=flat_st, policy=st.sampled_from(["local", "remote"]))
def test_toml_property_keywise_three_way(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any], policy: str
) -> None:
    text, conflicts = merge_toml(to_toml(base), to_toml(ours), to_toml(theirs), "f.toml", sides(policy))
    got = tomllib.loads(text) if text is not None else {}
    expected: dict[str, Any] = {}
    want_conflicts = set()
    for leaf in LEAVES:
        b, o, t = base[leaf], ours[leaf], theirs[leaf]
        if same(o, t) or same(b, t):
            value = o
        elif same(b, o):
            value = t
        else:
            want_conflicts.add(leaf)
            value = o if policy == "local" else t
        expected[leaf] = value
    # Compared leaf by leaf: a table emptied by deletions on both sides may stay as `[d]`.
    assert flatten(got) == flatten(nest(expected))
    assert {c.key for c in conflicts} == want_conflicts
    for c in conflicts:
        loser = theirs if policy == "local" else ours
        assert c.dropped == merge._plain(loser[c.key])


@settings(max_examples=60, deadline=None)
@given(base=flat_st, ours=flat_st, theirs=flat_st)
def test_toml_property_newest_converges_whichever_side_merges(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]
) -> None:
    b, o, t = to_toml(base), to_toml(ours), to_toml(theirs)
    one, _ = merge_toml(b, o, t, "f.toml", sides("newest", 5.0, 5.0))
    two, _ = merge_toml(b, t, o, "f.toml", sides("newest", 5.0, 5.0))
    assert tomllib.loads(one or "") == tomllib.loads(two or "")


# ---------------------------------------------------------------------- resolve + verify


def test_resolve_shortcuts_and_whole_file_policy() -> None:
    assert resolve("x.bin", b"a", b"a", b"b", sides(), ("1", "2")) == (b"b", [])
    assert resolve("x.bin", b"a", b"b", b"a", sides(), ("1", "2")) == (b"b", [])
    data, conflicts = resolve("dotfiles/x.md", b"a", b"b", b"c", sides("remote"), ("o1", "t2"))
    assert data == b"c"
    assert conflicts == [Conflict("dotfiles/x.md", "git:t2", "git:o1", "alpha", "remote", "dotfiles/x.md")]


def test_verify_catches_markers_and_bad_syntax() -> None:
    assert verify("a.toml", b"<<<<<<< HEAD\nx = 1\n=======\nx = 2\n>>>>>>> theirs\n") is not None
    assert verify("a.toml", b"x = \n") is not None
    assert verify("m.jsonl", ev(1) + b"{broken\n") is not None
    assert verify("m.jsonl", ev(1) + b"{broken\n", (b"{broken\n",)) is None
    assert verify("a.toml", b"x = 1\n") is None
