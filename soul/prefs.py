"""Preferences (explicit, inferred, accepted) and settings conflicts.

Choices are evidence (`choice` events). A preference is inferred for a category when it has at
least MIN_OBSERVATIONS choices and one option's Wilson lower bound (z = 1.2816, one-sided 90 %)
on its share of them is above MIN_CONFIDENCE: three unanimous choices give 0.646, 3 of 4 give 0.43.
Inference never changes a setting by itself: `accept_preference` records a `pref.accept` event,
and accepted preferences sit below machine and global settings in `Soul.get_setting`, so an
explicit setting always wins. Conflicts are `conflict` events written by sync when a settings key
changed on two machines; `resolve_conflict` sets the value and records a `conflict.resolve`.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from soul import settings as settings_mod
from soul.errors import NotFound, UsageError

if TYPE_CHECKING:
    from soul.core import Soul

MIN_OBSERVATIONS = 3
MIN_CONFIDENCE = 0.6
Z = 1.2816
MAX_OPTION = 200


def wilson_lower(wins: int, n: int, z: float = Z) -> float:
    """Lower bound of the Wilson score interval for a proportion wins/n (0 when n == 0)."""
    if n <= 0:
        return 0.0
    p = wins / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (centre - margin) / (1 + z2 / n)


def _option(value: str, what: str) -> str:
    value = " ".join(str(value or "").replace("\x00", "").split())
    if not value or len(value) > MAX_OPTION:
        raise UsageError(f"invalid {what} {value!r}", hint=f"1 to {MAX_OPTION} characters")
    return value


def observe_choice(
    soul: Soul, category: str, chose: str, over: list[str] | None = None, context: str | None = None
) -> dict[str, Any]:
    """Record that `chose` was picked (over the alternatives `over`) in `category`."""
    from soul import secrets

    settings_mod.check_key(category)
    fields: dict[str, Any] = {"category": category, "chose": _option(chose, "choice")}
    fields["over"] = [o for o in (_option(x, "alternative") for x in over or []) if o != fields["chose"]]
    if context and context.strip():
        fields["context"] = context.strip()[:2000]
    secrets.check_value(fields, what="choice")
    event = soul.append("choice", fields, message=f"observe {category} = {fields['chose'][:40]}")
    return {"id": event["id"], **fields, "inference": infer(soul).get(category)}


def infer(soul: Soul) -> dict[str, dict[str, Any]]:
    """Per category: observations, evidence counts, leader, confidence and the inferred value."""
    by_category: dict[str, Counter[str]] = {}
    last: dict[str, str] = {}
    for choice in soul.view().choices:
        by_category.setdefault(choice["category"], Counter())[choice["chose"]] += 1
        last[choice["category"]] = choice["at"]
    out: dict[str, dict[str, Any]] = {}
    for category, counts in by_category.items():
        n = sum(counts.values())
        # Ties are broken by name so every replica names the same leader; a tie never passes anyway.
        leader, wins = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        confidence = wilson_lower(wins, n)
        inferred = n >= MIN_OBSERVATIONS and confidence > MIN_CONFIDENCE
        out[category] = {
            "observations": n,
            "evidence": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            "leader": leader,
            "confidence": round(confidence, 4),
            "inferred": leader if inferred else None,
            "last_observed": last[category],
        }
    return out


def preferences(soul: Soul) -> list[dict[str, Any]]:
    """Every explicit setting and every observed category, with where its value comes from:
    machine | global (explicit) > accepted > inferred (not applied until accepted) > undecided."""
    entries: dict[str, dict[str, Any]] = {}
    for source in ("global", "machine"):
        path = settings_mod.machine_path(soul.home, soul.instance) if source == "machine" else None
        data = settings_mod.read(path or settings_mod.global_path(soul.home))
        for key, value in settings_mod.flatten(data).items():
            entries[key] = {"category": key, "value": value, "source": source}
    stats = infer(soul)
    accepted = soul.view().accepted
    for category in sorted(set(stats) | set(accepted)):
        entry = entries.setdefault(category, {"category": category, "value": None, "source": None})
        entry["accepted"] = accepted[category]["value"] if category in accepted else None
        entry.update(stats.get(category, {"observations": 0, "inferred": None}))
        if entry["source"] is None:
            if entry["accepted"] is not None:
                entry.update(value=entry["accepted"], source="accepted")
            else:
                entry.update(value=entry.get("inferred"), source="inferred" if entry.get("inferred") else "undecided")
    return [entries[k] for k in sorted(entries)]


def accept_preference(soul: Soul, category: str) -> dict[str, Any]:
    """Turn the inferred preference of `category` into a setting-like value (a `pref.accept`)."""
    from soul import secrets

    settings_mod.check_key(category)
    stats = infer(soul).get(category)
    if stats is None:
        raise NotFound(f"no choices observed for {category}", hint=f"record some with `soul observe {category} VALUE`")
    if stats["inferred"] is None:
        raise UsageError(
            f"{category}: not enough evidence ({stats['observations']} observation(s); {stats['leader']!r} at "
            f"confidence {stats['confidence']:.2f}; needs >= {MIN_OBSERVATIONS} and > {MIN_CONFIDENCE})",
            hint=f"set it explicitly with `soul set {category} VALUE`",
        )
    # The option is read like a `soul set` value: "4" becomes 4, "true" becomes true.
    value = settings_mod.parse_value(stats["inferred"])
    fields = {"category": category, "value": value, "confidence": stats["confidence"]}
    fields["observations"] = stats["observations"]
    secrets.check_value(fields, what="preference")
    soul.append("pref.accept", fields, message=f"prefs: accept {category}")
    try:
        _, source = soul.get_setting(category)
    except NotFound:
        source = "preference"
    return {**fields, "effective_source": source}


def accepted_preferences(soul: Soul) -> dict[str, Any]:
    """Accepted preferences as a nested dict (the shape settings files have), for get_setting.

    `soul get` must stay fast, so this does not fold the logs: it scans them for `pref.accept`
    lines only, and caches what it found per log file (size, mtime) in `.soul/`."""
    latest: dict[str, tuple[tuple[str, str, str], Any]] = {}
    for event in _accept_events(soul):
        key = (str(event["at"]), str(event["by"]), str(event["id"]))
        category = str(event.get("category"))
        if category not in latest or key > latest[category][0]:
            latest[category] = (key, event.get("value"))
    out: dict[str, Any] = {}
    for category in sorted(latest):
        parts = category.split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break  # "a" accepted as a value and "a.b" too: the shorter key keeps its value
            node = child
        else:
            if not isinstance(node.get(parts[-1]), dict):
                node[parts[-1]] = latest[category][1]
    return out


def _accept_events(soul: Soul) -> list[dict[str, Any]]:
    import json

    from soul import fsutil, store

    cache_path = soul.state_dir / "accepted-prefs.json"
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    fresh: dict[str, Any] = {}
    for path in store.log_files(soul.home):
        st = path.stat()
        rel = path.relative_to(soul.home).as_posix()
        hit = cache.get(rel) if isinstance(cache, dict) else None
        if isinstance(hit, dict) and hit.get("stamp") == [st.st_size, st.st_mtime_ns]:
            fresh[rel] = hit
            continue
        data = path.read_bytes()
        found = []
        if b"pref.accept" in data:
            for line in data.split(b"\n"):
                event = store.parse_line(line) if b"pref.accept" in line else None
                if event is not None and event["op"] == "pref.accept" and isinstance(event.get("category"), str):
                    found.append(event)
        fresh[rel] = {"stamp": [st.st_size, st.st_mtime_ns], "events": found}
    if fresh != cache:
        fsutil.atomic_write(cache_path, json.dumps(fresh))
    seen: set[str] = set()
    events = []
    for entry in fresh.values():
        for event in entry["events"]:
            if event["id"] not in seen:
                seen.add(event["id"])
                events.append(event)
    return events


# ---------------------------------------------------------------------- conflicts


def list_conflicts(soul: Soul) -> list[dict[str, Any]]:
    """Unresolved settings conflicts, newest first."""
    out = [copy.deepcopy(c) for c in soul.view().conflicts if c["resolved"] is None]
    out.sort(key=lambda c: (c["at"], c["id"]), reverse=True)
    return out


def resolve_conflict(soul: Soul, key: str, value: object) -> dict[str, Any]:
    """Set `key` to `value` in the file the conflict was in and mark its conflicts settled."""
    from soul import secrets

    settings_mod.check_key(key)
    open_ = [c for c in list_conflicts(soul) if c.get("key") == key]
    if not open_:
        raise NotFound(f"no open conflict for {key}", hint="see `soul conflicts`")
    own = f"settings/machines/{soul.instance}.toml"
    files = {str(c.get("file") or "settings/global.toml") for c in open_}
    foreign = sorted(f for f in files if f.startswith("settings/machines/") and f != own)
    if foreign:
        owner = foreign[0].rsplit("/", 1)[-1].removesuffix(".toml")
        raise UsageError(f"{key} conflicts in {foreign[0]}, which only {owner} writes", hint=f"resolve it on {owner}")
    secrets.check_value(value, what=f"setting {key}")
    machine = own in files
    path = soul.set_setting(key, value, machine=machine)
    ids = [c["id"] for c in open_]
    soul.append("conflict.resolve", {"key": key, "value": value, "conflicts": ids}, message=f"conflicts: resolve {key}")
    return {"key": key, "value": value, "resolved": ids, "file": path.relative_to(soul.home).as_posix()}
