"""Commands: session save|resume|list|close, task add|update|list (issue 6)."""

from __future__ import annotations

from typing import Any

import typer

from soul.cli.app import app, emit_json, err, open_soul

session_app = typer.Typer(help="Hand work over between machines and assistants.", no_args_is_help=True)
task_app = typer.Typer(help="Tasks that survive across sessions and machines.", no_args_is_help=True)
app.add_typer(session_app, name="session")
app.add_typer(task_app, name="task")

_SAVE_KEYS = ("title", "summary", "next_steps", "open_questions", "cwd", "project", "files")


def _stdin_json() -> dict[str, Any]:
    import json
    import sys

    from soul.errors import UsageError

    try:
        data = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"--stdin-json: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError("--stdin-json: expected a JSON object")
    unknown = sorted(set(data) - set(_SAVE_KEYS))
    if unknown:
        raise UsageError(f"--stdin-json: unknown field(s) {', '.join(unknown)}", hint=f"use {', '.join(_SAVE_KEYS)}")
    return data


@session_app.command()
def save(
    title: str | None = typer.Option(None, "--title", "-t", help="What this session was about."),
    summary: str = typer.Option("", "--summary", "-s", help="What was done and where it stands."),
    next_step: list[str] = typer.Option([], "--next", "-n", help="A next step (repeatable)."),
    question: list[str] = typer.Option([], "--question", "-q", help="An open question (repeatable)."),
    cwd: str | None = typer.Option(None, "--cwd", help="The work directory (default: the current one)."),
    project: str | None = typer.Option(None, "--project", "-p", help="Project name or path (default: from cwd)."),
    file: list[str] = typer.Option([], "--file", "-f", help="A file that matters for the next step (repeatable)."),
    stdin_json: bool = typer.Option(
        False, "--stdin-json", help=f"Read the fields as a JSON object on stdin ({', '.join(_SAVE_KEYS)})."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the saved session as JSON."),
) -> None:
    """Save where the work stands (plus the work repo's remote, branch, head and dirty files)."""
    from soul.errors import UsageError

    fields: dict[str, Any] = {
        "title": title,
        "summary": summary,
        "next_steps": next_step,
        "open_questions": question,
        "cwd": cwd,
        "project": project,
        "files": file,
    }
    if stdin_json:
        fields.update({k: v for k, v in _stdin_json().items() if v is not None})
    if not fields["title"]:
        raise UsageError("a session needs a title", hint='pass --title TEXT (or a "title" field with --stdin-json)')
    session = open_soul().save_session(**fields)
    if as_json:
        emit_json(session)
    else:
        err(f"saved session {session['id']} ({session['project']})")


@session_app.command()
def resume(
    session_id: str | None = typer.Argument(None, help="A session id or prefix (default: the latest open one)."),
    project: str | None = typer.Option(None, "--project", "-p", help="Only sessions of this project (name or path)."),
    as_json: bool = typer.Option(False, "--json", help="Print {session, briefing, claimed_by, previous_claim}."),
) -> None:
    """Claim a session for this instance and print a briefing an assistant can act on."""
    result = open_soul().resume_session(session_id=session_id, project=project)
    if as_json:
        emit_json(result)
        return
    prev = result["previous_claim"]
    if prev:
        err(f"note: {prev['by']} claimed this session at {prev['at']}; it is now claimed by {result['claimed_by']}")
    print(result["briefing"], end="")


@session_app.command("list")
def list_sessions(
    project: str | None = typer.Option(None, "--project", "-p", help="Only this project (name or path)."),
    status: str | None = typer.Option(None, "--status", help="open|closed"),
    as_json: bool = typer.Option(False, "--json", help="Print the sessions as JSON."),
) -> None:
    """Saved sessions, newest first."""
    rows = open_soul().list_sessions(project=project, status=status)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        err("no sessions")
    for s in rows:
        claim = f" claimed by {s['claimed_by']}" if s.get("claimed_by") else ""
        print(
            f"{s['id']}  {s['status']:<6} {s['at'][:16]}  [{s.get('project') or '-'}] {s['title']}  "
            f"(by {s['by']}{claim})"
        )


@session_app.command()
def close(
    session_id: str = typer.Argument(..., help="A session id or prefix."),
    as_json: bool = typer.Option(False, "--json", help="Print the session as JSON."),
) -> None:
    """Mark a session done so `resume` no longer offers it."""
    session = open_soul().close_session(session_id)
    if as_json:
        emit_json(session)
    else:
        err(f"closed session {session['id']}")


@task_app.command("add")
def task_add(
    title: str = typer.Argument(..., help="What needs doing."),
    project: str | None = typer.Option(None, "--project", "-p", help="Project name or path."),
    note: str | None = typer.Option(None, "--note", help="A first note."),
    as_json: bool = typer.Option(False, "--json", help="Print the task as JSON."),
) -> None:
    """Add a task (status todo)."""
    task = open_soul().add_task(title, project=project, note=note)
    if as_json:
        emit_json(task)
    else:
        err(f"added task {task['id']}")


@task_app.command("update")
def task_update(
    task_id: str = typer.Argument(..., help="A task id or prefix."),
    status: str | None = typer.Option(None, "--status", help="todo|doing|done"),
    note: str | None = typer.Option(None, "--note", help="A note to add."),
    as_json: bool = typer.Option(False, "--json", help="Print the task as JSON."),
) -> None:
    """Change a task's status and/or add a note."""
    task = open_soul().update_task(task_id, status=status, note=note)
    if as_json:
        emit_json(task)
    else:
        err(f"task {task['id']} is {task['status']}")


@task_app.command("list")
def task_list(
    project: str | None = typer.Option(None, "--project", "-p", help="Only this project (name or path)."),
    status: str | None = typer.Option(None, "--status", help="todo|doing|done"),
    as_json: bool = typer.Option(False, "--json", help="Print the tasks as JSON."),
) -> None:
    """Tasks: doing, then todo, then done."""
    rows = open_soul().list_tasks(project=project, status=status)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        err("no tasks")
    marks = {"todo": "[ ]", "doing": "[~]", "done": "[x]"}
    for t in rows:
        print(f"{marks.get(t['status'], '[?]')} {t['id']}  [{t.get('project') or '-'}] {t['title']}")
