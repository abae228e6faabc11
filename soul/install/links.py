"""`soul install links` / `soul uninstall links`: dotfiles from the soul, linked into $HOME.

The mapping is soul.toml `[links]`: `"dotfiles/CLAUDE.md" = "~/.claude/CLAUDE.md"`. Public
functions: `plan` (what install would do and every conflict), `apply` (execute a plan against a
`Writer`), `plan_uninstall`/`apply_uninstall`, `check` (for `soul doctor`).

Invariants:
- The whole plan, with every conflict, is computed before anything changes; any conflict means
  nothing is changed.
- A link only ever points into the soul's `dotfiles/`: a source with `..`, or one that resolves
  outside `dotfiles/` (a symlink planted in the soul), is refused.
- Whatever was at a target is moved aside with a timestamped name (rename keeps content and mode)
  and recorded in `.soul/links.json`; uninstall removes only what it installed and moves the
  backups back, so install + uninstall leaves the home exactly as it was.
- Where symlinks are not allowed (SOUL_NO_SYMLINKS=1, or the OS refuses), the file is copied and
  the report says so; a copy is recognised later by its content hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from soul.errors import UsageError
from soul.install import Writer, backup_path, missing_parents

if TYPE_CHECKING:
    from soul.core import Soul

MANIFEST = "links.json"


@dataclass
class Step:
    """One [links] entry: `action` is ok | link | copy | replace (back up, then link) | refresh."""

    key: str
    source: Path
    target: Path
    action: str
    backup: Path | None = None
    mkdirs: list[Path] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.key,
            "target": str(self.target),
            "action": self.action,
            "backup": str(self.backup) if self.backup else None,
            "note": self.note,
        }


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)


def manifest_path(soul: Soul) -> Path:
    return soul.state_dir / MANIFEST


def read_manifest(soul: Soul) -> dict[str, dict[str, Any]]:
    path = manifest_path(soul)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is unreadable ({exc}); soul left it untouched") from None
    return data if isinstance(data, dict) else {}


def symlinks_disabled() -> bool:
    return os.environ.get("SOUL_NO_SYMLINKS", "").lower() in ("1", "true", "yes")


def digest(path: Path) -> str:
    """Content hash of a file or a whole directory tree (names + bytes), to recognise our copies."""
    h = hashlib.sha256()
    if path.is_dir() and not path.is_symlink():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(child.relative_to(path).as_posix().encode() + b"\0" + child.read_bytes())
    elif path.is_file():
        h.update(path.read_bytes())
    return h.hexdigest()


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _source(soul: Soul, key: str) -> Path:
    rel = PurePosixPath(key)
    if rel.is_absolute() or ".." in rel.parts or len(rel.parts) < 2 or rel.parts[0] != "dotfiles":
        raise UsageError(f"source {key!r} must be a relative path under dotfiles/ without '..'")
    source = soul.home / rel
    root = (soul.home / "dotfiles").resolve()
    if not source.resolve().is_relative_to(root):
        raise UsageError(f"source {key!r} resolves outside the soul's dotfiles/; refusing to follow it")
    if not _exists(source):
        raise UsageError(f"source {key!r} does not exist in the soul")
    return source


def _target(soul: Soul, value: object) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise UsageError('target must be a path string such as "~/.claude/CLAUDE.md"')
    target = Path(os.path.expanduser(value))
    if not target.is_absolute() or ".." in target.parts:
        raise UsageError(f"target {value!r} must be absolute or start with ~, without '..'")
    home = soul.home.resolve()
    if Path(os.path.realpath(target.parent)).is_relative_to(home) or target.absolute().is_relative_to(soul.home):
        raise UsageError(f"target {value!r} is inside the soul itself")
    return target


def _is_our_link(target: Path, source: Path) -> bool:
    return target.is_symlink() and os.path.realpath(target) == os.path.realpath(source)


def _step(soul: Soul, key: str, value: object, installed: dict[str, dict[str, Any]]) -> Step:
    source = _source(soul, key)
    target = _target(soul, value)
    mode = "copy" if symlinks_disabled() else "link"
    ours = installed.get(str(target))
    if _is_our_link(target, source):
        return Step(key, source, target, "ok", note="already linked")
    if ours and ours.get("mode") == "symlink" and _is_our_link(target, Path(ours["source"])):
        # [links] now maps this target to another dotfile: our old link goes, no backup of it.
        return Step(key, source, target, "refresh", note="was linked to another dotfile; relinked")
    if ours and ours.get("mode") == "copy" and _exists(target) and digest(target) == ours.get("sha256"):
        if ours.get("sha256") == digest(source):
            return Step(key, source, target, "ok", note="already copied")
        return Step(key, source, target, "refresh", note="our copy is outdated; replaced")
    if _exists(target):
        backup = backup_path(target)
        return Step(key, source, target, "replace", backup=backup, note=f"what was there is kept as {backup.name}")
    return Step(key, source, target, mode, mkdirs=missing_parents(target))


def plan(soul: Soul) -> Plan:
    """What `install links` would do, with every conflict found up front."""
    mapping = soul.config.get("links") or {}
    if not isinstance(mapping, dict):
        raise UsageError('soul.toml [links] must be a table of "dotfiles/..." = "~/..."')
    installed = read_manifest(soul)
    result = Plan()
    seen: dict[Path, str] = {}
    for key, value in mapping.items():
        try:
            step = _step(soul, str(key), value, installed)
        except UsageError as exc:
            result.conflicts.append({"source": str(key), "target": str(value), "problem": exc.message})
            continue
        if step.target in seen:
            problem = f"{step.target} is also the target of {seen[step.target]!r}"
            result.conflicts.append({"source": step.key, "target": str(value), "problem": problem})
            continue
        seen[step.target] = step.key
        result.steps.append(step)
    return result


def apply(soul: Soul, todo: Plan, w: Writer) -> list[dict[str, Any]]:
    """Execute `todo`; with any conflict nothing at all is changed."""
    if todo.conflicts:
        lines = "".join(f"\n  {c['source']} -> {c['target']}: {c['problem']}" for c in todo.conflicts)
        raise UsageError(
            f"{len(todo.conflicts)} link conflict(s), nothing was changed:{lines}",
            hint="fix soul.toml [links] or the files named above, then run `soul install links` again",
        )
    manifest = read_manifest(soul)
    report: list[dict[str, Any]] = []
    try:
        for step in todo.steps:
            if step.action != "ok":
                entry = manifest.setdefault(str(step.target), {"backup": None, "created_dirs": []})
                _install_one(step, entry, w)
            report.append(step.to_dict())
    finally:
        if any(s.action != "ok" for s in todo.steps):
            w.write(manifest_path(soul), json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return report


def _install_one(step: Step, entry: dict[str, Any], w: Writer) -> None:
    """Apply one step, recording each change in its manifest `entry` as it happens, so that an
    error half-way still leaves uninstall enough to undo what was done."""
    entry["source"] = str(step.source)
    for directory in step.mkdirs:
        w.mkdir(directory)
        entry["created_dirs"].append(str(directory))
    if step.action == "replace":
        assert step.backup is not None
        w.rename(step.target, step.backup)
        if not (entry.get("backup") and _exists(Path(entry["backup"]))):
            # Keep the first backup: it holds what was there before soul ever touched the target.
            entry["backup"] = str(step.backup)
    elif step.action == "refresh":
        w.remove(step.target)
    linked = False
    if symlinks_disabled():
        w.copy(step.source, step.target)
    else:
        linked = w.symlink(step.source, step.target)
    if not linked:
        step.note = "symlinks are not allowed here; copied instead (re-run install after editing the soul's copy)"
        entry["mode"] = "copy"
        entry["sha256"] = digest(step.source)
    else:
        entry["mode"] = "symlink"
        entry.pop("sha256", None)


def plan_uninstall(soul: Soul) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Per installed link: what uninstall does; plus the manifest entries that must be kept."""
    manifest = read_manifest(soul)
    steps: list[dict[str, Any]] = []
    keep: dict[str, dict[str, Any]] = {}
    for key, entry in manifest.items():
        target, source = Path(key), Path(entry["source"])
        backup = Path(entry["backup"]) if entry.get("backup") else None
        if entry.get("mode") == "copy":
            ours = _exists(target) and digest(target) == entry.get("sha256")
        else:
            ours = _is_our_link(target, source)
        if _exists(target) and not ours:
            keep[key] = entry
            note = "changed since install; left alone" + (f" (backup kept at {backup})" if backup else "")
            steps.append({"target": key, "remove": False, "restore": None, "rmdirs": [], "note": note})
            continue
        restore = backup if backup is not None and _exists(backup) else None
        steps.append({"target": key, "remove": _exists(target), "restore": restore, "rmdirs": [], "note": ""})
        if restore is None:
            steps[-1]["rmdirs"] = _emptied_dirs(target, [Path(d) for d in entry.get("created_dirs", [])])
    return steps, keep


def _emptied_dirs(target: Path, created: list[Path]) -> list[Path]:
    """Directories we created that will be empty once `target` is gone, innermost first."""
    gone = {target}
    out: list[Path] = []
    for directory in sorted(created, key=lambda p: len(p.parts), reverse=True):
        if directory.is_dir() and not directory.is_symlink() and set(directory.iterdir()) <= gone:
            out.append(directory)
            gone.add(directory)
    return out


def apply_uninstall(soul: Soul, w: Writer) -> list[dict[str, Any]]:
    steps, keep = plan_uninstall(soul)
    for step in steps:
        target = Path(step["target"])
        if step["remove"]:
            w.remove(target)
        if step["restore"] is not None:
            w.rename(step["restore"], target)
        for directory in step["rmdirs"]:
            w.rmdir(directory)
    if steps:
        w.write(manifest_path(soul), json.dumps(keep, indent=2, sort_keys=True) + "\n")
    return [
        {**s, "restore": str(s["restore"]) if s["restore"] else None, "rmdirs": [str(d) for d in s["rmdirs"]]}
        for s in steps
    ]


def check(soul: Soul, fix: bool, w: Writer) -> tuple[bool, str, str | None]:
    """For `soul doctor`: (ok, message, fix hint). `fix` re-creates missing links with no conflict."""
    todo = plan(soul)
    if not todo.steps and not todo.conflicts:
        return True, "no [links] configured", None
    fixed: list[str] = []
    if fix:
        missing = Plan(steps=[s for s in todo.steps if s.action in ("link", "copy")])
        if missing.steps:
            apply(soul, missing, w)
            fixed = [str(s.target) for s in missing.steps]
            todo = plan(soul)
    pending = [s for s in todo.steps if s.action != "ok"]
    problems = [f"{c['source']}: {c['problem']}" for c in todo.conflicts]
    problems += [f"{s.target}: {'missing' if s.action in ('link', 'copy') else s.action}" for s in pending]
    done = f" (re-created {', '.join(fixed)})" if fixed else ""
    if not problems:
        return True, f"{len(todo.steps)} link(s) installed and correct{done}", None
    hint = "run `soul install links --dry-run` to see the plan, then `soul install links`"
    if todo.conflicts:
        hint = "fix soul.toml [links] or the files named, then `soul install links`"
    return False, "; ".join(problems) + done, hint
