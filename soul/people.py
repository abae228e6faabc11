"""People: who someone is, what they work on, how they like to communicate, recent interactions.

A note is two events appended together: a `memory.add` of kind "person" (tagged `person:<key>`,
so `recall` and the index find it like any memory) and a `person.note` naming that memory plus the
structured facts (name, aliases, projects, style). The text exists once, in the memory: forgetting
or purging the memory removes it from the person too. A person's key is a slug of the name first
used, so two machines that meet the same new name offline still agree on one person.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from typing import TYPE_CHECKING, Any

from soul.errors import NotFound, UsageError

if TYPE_CHECKING:
    from soul.core import Soul

MAX_NAME = 120
MAX_NOTES_SHOWN = 50


def slug(name: str) -> str:
    norm = unicodedata.normalize("NFKC", name).casefold()
    return re.sub(r"[^\w]+", "-", norm).strip("-_")[:80]


def _fold(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def _clean_name(name: str, what: str = "name") -> str:
    name = " ".join((name or "").replace("\x00", "").split())
    if not name or not slug(name) or len(name) > MAX_NAME:
        raise UsageError(f"invalid {what} {name!r}", hint=f"1 to {MAX_NAME} characters, with letters or digits")
    return name


def find_person(soul: Soul, name: str) -> dict[str, Any] | None:
    """A person by key, name or alias, case-insensitive."""
    wanted = _fold(name)
    people = soul.view().people
    key = slug(name)
    if key in people:
        return people[key]
    for person in people.values():
        names = [person.get("name") or "", *person.get("aliases", [])]
        if any(_fold(n) == wanted for n in names):
            return person
    return None


def note_person(
    soul: Soul,
    name: str,
    text: str,
    project: str | None = None,
    style: str | None = None,
    aliases: list[str] | None = None,
) -> dict[str, Any]:
    from soul import secrets

    name = _clean_name(name)
    alias_list = [_clean_name(a, "alias") for a in aliases or []]
    existing = find_person(soul, name)
    key = existing["person"] if existing else slug(name)
    display = existing["name"] if existing and existing.get("name") else name
    fields: dict[str, Any] = {"person": key, "name": display, "aliases": [], "projects": []}
    known = {_fold(n) for n in [display, *(existing or {}).get("aliases", [])]}
    fields["aliases"] = [a for a in [name, *alias_list] if _fold(a) not in known]
    if project and project.strip():
        fields["projects"] = [project.strip()]
    if style and style.strip():
        fields["style"] = style.strip()
    secrets.check_value(fields, what="person note")
    # The memory carries the name so a search for the person finds their notes by meaning too.
    mem = soul.remember(
        f"{display}: {text.strip()}" if text and text.strip() else "",
        kind="person",
        tags=[f"person:{key}"],
        project=project.strip() if project and project.strip() else None,
        commit=False,
    )
    fields["memory"] = mem.id
    soul.append("person.note", fields, commit=False)
    # Both events may straddle two log segments: commit this instance's whole log directory.
    soul.commit_if_enabled([soul.home / "memories" / soul.instance], f"person: note {display}")
    return who_is(soul, key)


def who_is(soul: Soul, name: str) -> dict[str, Any]:
    person = find_person(soul, name)
    if person is None:
        raise NotFound(f"nobody called {name!r}", hint="see `soul person list`, or add one with `soul person note`")
    return _render(soul, person)


def _render(soul: Soul, person: dict[str, Any]) -> dict[str, Any]:
    view = soul.view()
    out = copy.deepcopy({k: v for k, v in person.items() if k != "notes"})
    notes: list[dict[str, Any]] = []
    seen: set[str] = set()
    prefix = f"{person.get('name')}: "
    for note in reversed(person["notes"]):
        if "memory" in note:
            mem = view.memory(str(note["memory"]))
            if mem is None or mem.id in seen:
                continue  # forgotten or purged: the person forgets it too
            seen.add(mem.id)
            text = mem.text.removeprefix(prefix)
            notes.append({"text": text, "memory": mem.id, "by": note["by"], "at": note["at"], "project": mem.project})
        elif note.get("text"):
            notes.append({"text": note["text"], "by": note["by"], "at": note["at"], "project": note.get("project")})
    out["notes"] = notes[:MAX_NOTES_SHOWN]
    out["note_count"] = len(notes)
    out.setdefault("style", None)
    return out


def list_people(soul: Soul) -> list[dict[str, Any]]:
    """Everyone, most recently noted first (notes left out: see `who_is`)."""
    out = []
    for person in soul.view().people.values():
        rendered = _render(soul, person)
        rendered["last_note"] = rendered["notes"][0]["text"] if rendered["notes"] else None
        del rendered["notes"]
        out.append(rendered)
    out.sort(key=lambda p: (p.get("last_at") or "", p["person"]), reverse=True)
    return out
