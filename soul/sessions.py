"""Session handoff and tasks: save where work stands, resume it on another machine, track tasks.

Everything is an event in the writer's own log (`session.save|claim|close`, `task.add|update`),
folded in soul/view.py, so replicas agree after any sync. Claims: each names the claim its writer
saw (`after`); the claim with the longest such chain holds the session, and concurrent claims (two
machines resuming offline) are ordered by (at, by, id), so the later one wins on every replica. Claims
the holder never saw are listed in `concurrent_claims` so both sides can see what happened.
Work-repo facts are read locally with git (no network); credentials in remote URLs are dropped.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soul import gitutil
from soul.errors import NotFound, UsageError
from soul.ids import new_ulid
from soul.view import TASK_STATUSES

if TYPE_CHECKING:
    from soul.core import Soul

MAX_DIRTY = 200
MAX_ITEMS = 100
MAX_FIELD = 64 * 1024
SESSION_STATUSES = ("open", "closed")


# ---------------------------------------------------------------------- the work repository


def _strip_credentials(url: str) -> str:
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1", url, flags=re.IGNORECASE)


def repo_info(cwd: Path) -> dict[str, Any] | None:
    """Remote, branch, head and dirty files of the git work tree at `cwd` (None outside one)."""
    if not cwd.is_dir():
        return None
    top = gitutil.run(["rev-parse", "--show-toplevel"], cwd, check=False)
    if not top.ok:
        return None
    root = Path(top.stdout.strip())
    remote = gitutil.run(["remote", "get-url", "origin"], root, check=False)
    if not remote.ok:
        first = gitutil.run(["remote"], root, check=False).stdout.split()
        remote = gitutil.run(["remote", "get-url", "--", first[0]], root, check=False) if first else remote
    branch = gitutil.run(["symbolic-ref", "--short", "-q", "HEAD"], root, check=False)
    status = gitutil.run(["status", "--porcelain", "--untracked-files=normal"], root, check=False)
    dirty = [line[3:] for line in status.stdout.splitlines() if len(line) > 3]
    return {
        "root": str(root),
        "remote": _strip_credentials(remote.stdout.strip()) if remote.ok and remote.stdout.strip() else None,
        "branch": branch.stdout.strip() or None if branch.ok else None,
        "head": gitutil.head(root),
        "dirty": dirty[:MAX_DIRTY],
        "dirty_total": len(dirty),
    }


def project_of(cwd: Path, repo: dict[str, Any] | None) -> str:
    """A project name that is the same on every machine: the repository's name (from its remote,
    else its folder), else the folder's name. Paths differ between machines; names rarely do."""
    if repo and repo.get("remote"):
        name = re.split(r"[/:]", str(repo["remote"]).rstrip("/"))[-1]
        name = name.removesuffix(".git")
        if name:
            return name
    if repo:
        return Path(str(repo["root"])).name
    return cwd.name or str(cwd)


def resolve_project(project: str | None) -> str | None:
    """`--project` is a name, or a path (`.`, `~/code/x`) whose project name is derived."""
    if not project:
        return None
    path = Path(project).expanduser()
    # `./x`, `/abs`, `~/x` are paths and must exist; `team/gadget` is a path only if it is a directory.
    if project.startswith((".", os.sep, "~")) or (os.sep in project and path.is_dir()):
        if not path.is_dir():
            raise UsageError(f"--project {project}: no such directory", hint="pass a project name or an existing path")
        resolved = path.resolve()
        return project_of(resolved, repo_info(resolved))
    return project.strip()


# ---------------------------------------------------------------------- sessions


def _text(value: str | None, what: str, required: bool = False) -> str:
    value = (value or "").replace("\x00", "").strip()
    if required and not value:
        raise UsageError(f"{what} is empty")
    if len(value) > MAX_FIELD:
        raise UsageError(f"{what} is longer than {MAX_FIELD} characters")
    return value


def _items(values: list[str] | None, what: str) -> list[str]:
    if values is not None and not isinstance(values, list):
        raise UsageError(f"{what} must be a list of strings")
    items = [_text(str(v), what) for v in values or []]
    if len(items) > MAX_ITEMS:
        raise UsageError(f"at most {MAX_ITEMS} {what}")
    return [i for i in items if i]


def save_session(
    soul: Soul,
    title: str,
    summary: str = "",
    next_steps: list[str] | None = None,
    open_questions: list[str] | None = None,
    cwd: str | None = None,
    project: str | None = None,
    files: list[str] | None = None,
) -> dict[str, Any]:
    from soul import secrets

    where = Path(cwd).expanduser() if cwd else Path.cwd()
    where = where.resolve() if where.is_dir() else where
    repo = repo_info(where)
    name = resolve_project(project) or project_of(where, repo)
    fields: dict[str, Any] = {
        "session": new_ulid(),
        "title": _text(title, "title", required=True),
        "summary": _text(summary, "summary"),
        "next_steps": _items(next_steps, "next steps"),
        "open_questions": _items(open_questions, "open questions"),
        "cwd": str(where),
        "project": name,
        "repo": repo,
        "files": _items(files, "files"),
    }
    # Saving again after resuming continues the handoff: the session this instance holds for the
    # same project is closed by the new one, so `resume` never offers stale work.
    continues = [s["id"] for s in _open(soul, name) if s.get("claimed_by") == soul.instance]
    if continues:
        fields["continues"] = continues
    secrets.check_value(fields, what="session")
    soul.append("session.save", fields, message=f"session: save {fields['title'][:60]}")
    return get_session(soul, fields["session"])


def _open(soul: Soul, project: str | None) -> list[dict[str, Any]]:
    return list_sessions(soul, project=project, status="open")


def list_sessions(soul: Soul, project: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
    """Saved sessions, newest first."""
    if status and status not in SESSION_STATUSES:
        raise UsageError(f"unknown status {status!r}", hint=f"use one of: {', '.join(SESSION_STATUSES)}")
    name = resolve_project(project)
    out = [
        s
        for s in soul.view().sessions.values()
        if "title" in s
        and (not status or s["status"] == status)
        and (not name or (s.get("project") or "").casefold() == name.casefold())
    ]
    out.sort(key=lambda s: (s["at"], s["id"]), reverse=True)
    return copy.deepcopy(out)


def _find(table: dict[str, dict[str, Any]], ident: str, what: str, required: str) -> dict[str, Any]:
    """An entry by full id or unique id prefix (case-insensitive)."""
    ident = ident.strip().upper()
    if ident in table and required in table[ident]:
        return table[ident]
    hits = [v for k, v in table.items() if ident and k.startswith(ident) and required in v]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise UsageError(f"{what} id {ident} is ambiguous ({len(hits)} match)", hint="give more characters")
    raise NotFound(f"no {what} {ident}", hint=f"see `soul {what} list`")


def get_session(soul: Soul, session_id: str) -> dict[str, Any]:
    return copy.deepcopy(_find(soul.view().sessions, session_id, "session", "title"))


def close_session(soul: Soul, session_id: str) -> dict[str, Any]:
    session = get_session(soul, session_id)
    if session["status"] == "open":
        soul.append("session.close", {"session": session["id"]}, message=f"session: close {session['id']}")
    return get_session(soul, session["id"])


def resume_session(soul: Soul, session_id: str | None = None, project: str | None = None) -> dict[str, Any]:
    """Pick a session (by id, else the latest open one, for `project` if given), claim it for this
    instance, and return it with a Markdown briefing."""
    if session_id:
        session = get_session(soul, session_id)
    else:
        candidates = _open(soul, project)
        if not candidates:
            where = f" for project {resolve_project(project)}" if project else ""
            raise NotFound(f"no open session{where}", hint="save one with `soul session save --title ...`")
        session = candidates[0]
    previous = ({"by": session["claimed_by"], "at": session["claimed_at"]}) if session.get("claimed_by") else None
    if session["status"] == "open" and session.get("claimed_by") != soul.instance:
        after = session.get("claim_id")
        soul.append(
            "session.claim", {"session": session["id"], "after": after}, message=f"session: claim {session['id']}"
        )
        session = get_session(soul, session["id"])
    elif previous and previous["by"] == soul.instance:
        previous = None  # already ours: nothing was taken from anyone
    tasks = list_tasks(soul, project=session.get("project")) if session.get("project") else []
    return {
        "session": session,
        "briefing": briefing(session, previous, [t for t in tasks if t["status"] != "done"], soul.instance),
        "claimed_by": session.get("claimed_by"),
        "previous_claim": previous,
    }


def briefing(session: dict[str, Any], previous: dict[str, Any] | None, tasks: list[dict[str, Any]], me: str) -> str:
    """Markdown an assistant can act on: what was done, what is next, where the code is."""
    lines = [f"# Resuming: {session['title']}", ""]
    lines.append(
        f"Saved by **{session['by']}** at {session['at']} · project `{session.get('project') or '-'}` · "
        f"session `{session['id']}` · {session['status']}"
    )
    if previous:
        lines.append(f"\n> Note: this session was claimed by **{previous['by']}** at {previous['at']}; now by {me}.")
    for claim in session.get("concurrent_claims", []):
        lines.append(f"\n> Note: {claim['by']} also claimed it at {claim['at']} (concurrently, e.g. offline).")
    if session["status"] == "closed":
        lines.append(f"\n> This session was closed by {session.get('closed_by')} at {session.get('closed_at')}.")
    if session.get("summary"):
        lines += ["", "## Summary", "", session["summary"]]
    if session.get("next_steps"):
        lines += ["", "## Next steps", ""] + [f"{i}. {s}" for i, s in enumerate(session["next_steps"], 1)]
    if session.get("open_questions"):
        lines += ["", "## Open questions", ""] + [f"- {q}" for q in session["open_questions"]]
    lines += _repo_lines(session)
    if session.get("files"):
        lines += ["", "## Files", ""] + [f"- `{f}`" for f in session["files"]]
    if tasks:
        lines += ["", "## Open tasks", ""]
        lines += [f"- [{'~' if t['status'] == 'doing' else ' '}] {t['title']} (`{t['id'][-8:]}`)" for t in tasks]
    return "\n".join(lines) + "\n"


def _repo_lines(session: dict[str, Any]) -> list[str]:
    repo = session.get("repo")
    lines = ["", "## Where the work is", "", f"- directory (on {session['by']}): `{session.get('cwd')}`"]
    if not repo:
        return [*lines, "- not a git repository"]
    lines.append(f"- remote: `{repo.get('remote') or '(none)'}`")
    lines.append(f"- branch: `{repo.get('branch') or '(detached)'}` at `{repo.get('head') or '(no commits)'}`")
    dirty = repo.get("dirty") or []
    if dirty:
        shown = ", ".join(f"`{d}`" for d in dirty[:20])
        lines.append(f"- uncommitted at save time ({repo.get('dirty_total', len(dirty))}): {shown}")
        lines.append("  (these changes exist only on that machine unless they were committed and pushed)")
    if repo.get("branch"):
        head = str(repo.get("head"))[:12]
        lines.append(
            f"- to continue here: `git fetch && git switch {repo['branch']}`, then check HEAD contains `{head}`"
        )
    return lines


# ---------------------------------------------------------------------- tasks


def add_task(soul: Soul, title: str, project: str | None = None, note: str | None = None) -> dict[str, Any]:
    from soul import secrets

    fields: dict[str, Any] = {"task": new_ulid(), "title": _text(title, "task title", required=True)}
    name = resolve_project(project)
    if name:
        fields["project"] = name
    if note and _text(note, "note"):
        fields["note"] = _text(note, "note")
    secrets.check_value(fields, what="task")
    soul.append("task.add", fields, message=f"task: add {fields['title'][:60]}")
    return get_task(soul, fields["task"])


def get_task(soul: Soul, task_id: str) -> dict[str, Any]:
    return copy.deepcopy(_find(soul.view().tasks, task_id, "task", "title"))


def update_task(soul: Soul, task_id: str, status: str | None = None, note: str | None = None) -> dict[str, Any]:
    from soul import secrets

    if status is not None and status not in TASK_STATUSES:
        raise UsageError(f"unknown task status {status!r}", hint=f"use one of: {', '.join(TASK_STATUSES)}")
    text = _text(note, "note")
    if status is None and not text:
        raise UsageError("nothing to update", hint="pass a status (todo|doing|done) and/or a note")
    task = get_task(soul, task_id)
    fields: dict[str, Any] = {"task": task["id"]}
    if status:
        fields["status"] = status
    if text:
        fields["note"] = text
    secrets.check_value(fields, what="task")
    soul.append("task.update", fields, message=f"task: update {task['id']}")
    return get_task(soul, task["id"])


def list_tasks(soul: Soul, project: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
    """Tasks, doing first, then todo, then done; oldest first within each."""
    if status and status not in TASK_STATUSES:
        raise UsageError(f"unknown task status {status!r}", hint=f"use one of: {', '.join(TASK_STATUSES)}")
    name = resolve_project(project)
    order = {"doing": 0, "todo": 1, "done": 2}
    out = [
        t
        for t in soul.view().tasks.values()
        if "title" in t
        and (not status or t["status"] == status)
        and (not name or (t.get("project") or "").casefold() == name.casefold())
    ]
    out.sort(key=lambda t: (order.get(t["status"], 3), t["at"], t["id"]))
    return copy.deepcopy(out)
