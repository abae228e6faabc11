"""The view: the state of a soul, computed as a fold of all event logs.

Events are applied in (at, by, id) order, so every replica that holds the same events computes
the same view, whatever order git delivered them in. Unknown ops are ignored (a newer vessel may
write events an older one does not understand); they stay in the logs untouched.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from soul.store import Event

KINDS = ("fact", "preference", "decision", "event", "person", "note")
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """What makes two texts "the same fact": case, spacing and trailing punctuation do not count."""
    norm = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", norm).strip().rstrip(".!;").strip()


def fact_key(text: str, kind: str, project: str | None) -> str:
    raw = "\x1f".join((normalize_text(text), kind, project or ""))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass
class Memory:
    id: str
    text: str
    kind: str
    tags: list[str]
    project: str | None
    by: str
    at: str
    source: str | None = None
    updated_at: str | None = None
    aliases: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    forgotten: bool = False
    merged_into: str | None = None

    @property
    def live(self) -> bool:
        return not self.forgotten and self.merged_into is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "kind": self.kind,
            "tags": list(self.tags),
            "project": self.project,
            "by": self.by,
            "at": self.at,
        }
        if self.updated_at:
            out["updated_at"] = self.updated_at
        if self.source:
            out["source"] = self.source
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.merged:
            out["also"] = list(self.merged)
        return out


@dataclass
class View:
    all_memories: dict[str, Memory] = field(default_factory=dict)
    alias_of: dict[str, str] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    people: dict[str, dict[str, Any]] = field(default_factory=dict)
    choices: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # category -> accepted preference
    event_count: int = 0

    def resolve(self, memory_id: str) -> str:
        """The canonical id for `memory_id` (itself, or the memory it is an alias of)."""
        return self.alias_of.get(memory_id, memory_id)

    def memory(self, memory_id: str) -> Memory | None:
        mem = self.all_memories.get(self.resolve(memory_id))
        return mem if mem is not None and mem.live else None

    @property
    def memories(self) -> list[Memory]:
        return [m for m in self.all_memories.values() if m.live]


Handler = Callable[[View, Event], None]
HANDLERS: dict[str, Handler] = {}


def handles(op: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[op] = fn
        return fn

    return register


def fold(events: Iterable[Event]) -> View:
    """Apply events (already in fold order, duplicates removed) to an empty view."""
    view = View()
    fold_into(view, events)
    return view


def fold_into(view: View, events: Iterable[Event]) -> None:
    """Apply more events to `view`; equal to a full fold only if they all sort after its events."""
    for event in events:
        view.event_count += 1
        handler = HANDLERS.get(event["op"])
        if handler is not None:
            try:
                handler(view, event)
            except (KeyError, TypeError, ValueError, AttributeError):
                # A well-formed line with a malformed body must not stop the fold.
                continue


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(v) for v in value]


@handles("memory.add")
def _add(view: View, e: Event) -> None:
    if e["id"] in view.all_memories or e["id"] in view.alias_of:
        return
    kind = str(e.get("kind") or "note")
    project = e.get("project") or None
    key = fact_key(str(e["text"]), kind, project)
    existing = view.by_key.get(key)
    if existing is not None and view.all_memories[existing].live:
        # The same fact written twice (often on two machines while offline): the earliest
        # stays, later ones become aliases so they are neither shown twice nor lost.
        view.alias_of[e["id"]] = existing
        view.all_memories[existing].aliases.append(e["id"])
        return
    view.all_memories[e["id"]] = Memory(
        id=e["id"],
        text=str(e["text"]),
        kind=kind,
        tags=_str_list(e.get("tags")),
        project=project,
        by=e["by"],
        at=e["at"],
        source=e.get("source"),
    )
    view.by_key[key] = e["id"]


@handles("memory.update")
def _update(view: View, e: Event) -> None:
    mem = view.all_memories.get(view.resolve(str(e["target"])))
    if mem is None or mem.forgotten:
        return
    old_key = fact_key(mem.text, mem.kind, mem.project)
    if isinstance(e.get("text"), str):
        mem.text = e["text"]
    if isinstance(e.get("tags"), list):
        mem.tags = _str_list(e["tags"])
    mem.updated_at = e["at"]
    if view.by_key.get(old_key) == mem.id:
        del view.by_key[old_key]
    view.by_key.setdefault(fact_key(mem.text, mem.kind, mem.project), mem.id)


@handles("memory.forget")
def _forget(view: View, e: Event) -> None:
    mem = view.all_memories.get(view.resolve(str(e["target"])))
    if mem is None:
        return
    mem.forgotten = True
    key = fact_key(mem.text, mem.kind, mem.project)
    if view.by_key.get(key) == mem.id:
        del view.by_key[key]


@handles("memory.merge")
def _merge(view: View, e: Event) -> None:
    source = view.all_memories.get(view.resolve(str(e["source"])))
    target = view.all_memories.get(view.resolve(str(e["target"])))
    if source is None or target is None or source.id == target.id or not target.live:
        return
    source.merged_into = target.id
    if source.id not in target.merged:
        target.merged.append(source.id)


@handles("memory.unmerge")
def _unmerge(view: View, e: Event) -> None:
    source = view.all_memories.get(view.resolve(str(e["source"])))
    if source is None or source.merged_into is None:
        return
    target = view.all_memories.get(source.merged_into)
    if target is not None and source.id in target.merged:
        target.merged.remove(source.id)
    source.merged_into = None


# ---- handlers: sessions, tasks, people, choices, preferences, conflicts (issue 6)
# Entries are created on first sight, whichever event comes first: a claim or update folded before
# its save/add (the writer's clock was behind) must not be lost.


def _session(view: View, sid: str) -> dict[str, Any]:
    return view.sessions.setdefault(sid, {"id": sid, "status": "open", "claims": [], "concurrent_claims": []})


@handles("session.save")
def _session_save(view: View, e: Event) -> None:
    s = _session(view, str(e["session"]))
    s.update({"title": str(e["title"]), "summary": str(e.get("summary") or ""), "by": e["by"], "at": e["at"]})
    s.update({"next_steps": _str_list(e.get("next_steps")), "open_questions": _str_list(e.get("open_questions"))})
    s.update({"files": _str_list(e.get("files")), "cwd": e.get("cwd"), "project": e.get("project") or None})
    s["repo"] = e["repo"] if isinstance(e.get("repo"), dict) else None
    for older in _str_list(e.get("continues")):
        prev = view.sessions.get(older)
        if prev is not None and prev["status"] == "open" and older != s["id"]:
            prev.update({"status": "closed", "closed_by": e["by"], "closed_at": e["at"], "continued_in": s["id"]})


@handles("session.claim")
def _session_claim(view: View, e: Event) -> None:
    # `after` names the claim its writer saw as current. The holder is the claim with the longest
    # chain of such links (it saw the most), ties between concurrent claims (two machines resuming
    # offline) broken by (at, by, id): deterministic on every replica, and a knowing takeover wins
    # even from a machine whose clock is behind. Claims the holder's writer never saw are listed.
    s = _session(view, str(e["session"]))
    after = e.get("after")
    s["claims"].append(
        {"id": e["id"], "by": e["by"], "at": e["at"], "after": after if isinstance(after, str) else None}
    )
    by_id = {c["id"]: c for c in s["claims"]}

    def chain(claim: dict[str, Any]) -> list[str]:
        ids = [claim["id"]]
        while claim.get("after") in by_id and len(ids) <= len(by_id):
            claim = by_id[claim["after"]]
            ids.append(claim["id"])
        return ids

    holder = max(s["claims"], key=lambda c: (len(chain(c)), c["at"], c["by"], c["id"]))
    seen = set(chain(holder))
    s["claimed_by"], s["claimed_at"], s["claim_id"] = holder["by"], holder["at"], holder["id"]
    s["concurrent_claims"] = [
        {"by": c["by"], "at": c["at"], "displaced_by": holder["by"]}
        for c in s["claims"]
        if c["by"] != holder["by"] and c["id"] not in seen
    ]


@handles("session.close")
def _session_close(view: View, e: Event) -> None:
    s = _session(view, str(e["session"]))
    if s["status"] == "open":
        s.update({"status": "closed", "closed_by": e["by"], "closed_at": e["at"]})


TASK_STATUSES = ("todo", "doing", "done")


def _task(view: View, tid: str) -> dict[str, Any]:
    return view.tasks.setdefault(tid, {"id": tid, "status": "todo", "notes": []})


@handles("task.add")
def _task_add(view: View, e: Event) -> None:
    t = _task(view, str(e["task"]))
    t.update({"title": str(e["title"]), "project": e.get("project") or None, "by": e["by"], "at": e["at"]})
    t.setdefault("updated_at", e["at"])
    if e.get("note"):
        t["notes"].insert(0, {"text": str(e["note"]), "by": e["by"], "at": e["at"]})


@handles("task.update")
def _task_update(view: View, e: Event) -> None:
    t = _task(view, str(e["task"]))
    if e.get("status") in TASK_STATUSES:
        t["status"] = e["status"]
    if e.get("note"):
        t["notes"].append({"text": str(e["note"]), "by": e["by"], "at": e["at"]})
    t.update({"updated_at": e["at"], "updated_by": e["by"]})


@handles("person.note")
def _person_note(view: View, e: Event) -> None:
    key = str(e["person"])
    p = view.people.setdefault(key, {"person": key, "name": None, "aliases": [], "projects": [], "notes": []})
    p["name"] = p["name"] or (str(e["name"]) if e.get("name") else None) or key
    for field_name in ("aliases", "projects"):
        p[field_name] += [v for v in _str_list(e.get(field_name)) if v not in p[field_name]]
    if e.get("style"):
        p["style"] = str(e["style"])
    projects = _str_list(e.get("projects"))
    note: dict[str, Any] = {"id": e["id"], "by": e["by"], "at": e["at"], "project": projects[0] if projects else None}
    # A note's text lives once, in the `memory.add` it names (so recall finds it); a `text` field
    # (an event written by hand or an import) is shown as is.
    note.update({"memory": e["memory"]} if e.get("memory") else {"text": str(e.get("text") or "")})
    p["notes"].append(note)
    p.setdefault("first_at", e["at"])
    p["last_at"] = e["at"]


@handles("choice")
def _choice(view: View, e: Event) -> None:
    view.choices.append(
        {
            "category": str(e["category"]),
            "chose": str(e["chose"]),
            "over": _str_list(e.get("over")),
            "context": e.get("context"),
            "by": e["by"],
            "at": e["at"],
            "id": e["id"],
        }
    )


@handles("pref.accept")
def _pref_accept(view: View, e: Event) -> None:
    view.accepted[str(e["category"])] = {"value": e["value"], "by": e["by"], "at": e["at"]}


@handles("conflict")
def _conflict(view: View, e: Event) -> None:
    fields = {k: e.get(k) for k in ("key", "kept", "dropped", "from", "policy", "file")}
    view.conflicts.append({"id": e["id"], "by": e["by"], "at": e["at"], **fields, "resolved": None})


@handles("conflict.resolve")
def _conflict_resolve(view: View, e: Event) -> None:
    ids = set(_str_list(e.get("conflicts")))
    for c in view.conflicts:
        if c["id"] in ids and c["resolved"] is None:
            c["resolved"] = {"by": e["by"], "at": e["at"], "value": e.get("value")}
