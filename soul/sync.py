"""Cross-machine sync through git. The one public entry point is `sync(soul, ...) -> SyncResult`.

Algorithm (DESIGN 4), one run at a time under an flock on `.soul/sync.lock`:

1. Recover from a crash: a stale `.git/index.lock` no git process holds is removed; a merge this
   module started and did not finish (marker `.soul/sync-merge.json`) is undone, every dirty file
   first copied to `.soul/recovery/`, and redone below. A merge or rebase soul did not start is
   left alone: sync stops and says how to finish it (exit 1).
2. Commit local changes (`commit_all`): every changed file is scanned by the secret guard and
   never-sync paths are refused before anything is staged; hooks run (never `--no-verify`).
3. Fetch with a timeout, then `purge.on_fetch`. No remote configured: nothing to do (exit 0).
4. Ahead/behind: fast-forward, or `git merge --no-commit --no-ff` and resolve every path changed
   on both sides in-process (`soul.merge`: JSONL union, TOML key-wise, the loser of a conflict
   kept as a `conflict` event), verify that no conflict marker is left and every TOML/JSONL file
   parses, then commit the merge.
5. `purge.assert_can_push`, push; a rejected push retries fetch/merge/push a bounded number of
   times. Never force-push, never reset over unpushed work.
6. After a pull that brought commits, the index catches up (its errors never fail a sync).

Network failures are not errors: local work stays committed, the result is "offline" (exit 3).
Every commit takes `.soul/git.lock`, the lock `Soul.commit` uses, so writers never collide.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soul import fsutil, gitutil
from soul.errors import GitError, OfflineError, SoulError, SyncAttention
from soul.ids import now_iso

if TYPE_CHECKING:
    from soul.core import Soul

log = logging.getLogger("soul.sync")

DEFAULT_TIMEOUT = 60.0
NETWORK_OP_TIMEOUT = 30.0
PUSH_ATTEMPTS = 4
STATUS_FILE = "sync.json"
MERGE_MARKER = "sync-merge.json"
REMOTE = "origin"
# A push refused because the remote branch moved (another machine pushed first): fetch and retry.
_RACE_MARKERS = ("(fetch first)", "(non-fast-forward)", "stale info", "cannot lock ref", "failed to update ref")


@dataclass
class SyncResult:
    """What one sync did; `to_dict()` is the `soul sync --json` contract."""

    status: str = "synced"  # synced | offline | attention | local (no remote)
    message: str = ""
    sent: int = 0
    received: int = 0
    committed: int = 0
    ahead: int = 0
    behind: int = 0
    head: str | None = None
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    duration_ms: int = 0

    @property
    def exit_code(self) -> int:
        return {"offline": 3, "attention": 1}.get(self.status, 0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


# ---------------------------------------------------------------------- entry point


def sync(soul: Soul, *, timeout: float = DEFAULT_TIMEOUT, attempts: int = PUSH_ATTEMPTS) -> SyncResult:
    """Commit, fetch, merge, push (see the module docstring); never raises for network trouble.

    The semantic index is not touched: loading the model would cost a one-shot `soul sync` seconds,
    recall catches up on read, and the daemon hands its catch-up to its warm server."""
    started = time.monotonic()
    deadline = started + timeout
    result = SyncResult()
    try:
        with _sync_lock(soul, timeout):
            _run(soul, result, deadline, attempts)
    except OfflineError as exc:
        result.status, result.message = "offline", exc.message
        result.errors.append(exc.message)
    except SoulError as exc:
        result.status, result.message = "attention", exc.message + (f" ({exc.hint})" if exc.hint else "")
        result.errors.append(exc.message)
    result.head = gitutil.head(soul.home)
    result.duration_ms = int((time.monotonic() - started) * 1000)
    _write_status(soul, result)
    return result


@contextlib.contextmanager
def _sync_lock(soul: Soul, timeout: float) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(fsutil.file_lock(soul.state_dir / "sync.lock", timeout=max(1.0, timeout)))
        except SoulError:
            raise SyncAttention(
                f"another sync of this soul is still running after {timeout:.0f}s", hint="see `soul daemon status`"
            ) from None
        yield


def _run(soul: Soul, result: SyncResult, deadline: float, attempts: int) -> None:
    from soul import purge

    branch = current_branch(soul.home)
    with _git_lock(soul):
        recover(soul, result)
        _commit_into(soul, result)
    if not remote_url(soul.home):
        result.status = "local"
        result.message = "no remote configured; nothing to sync (add one with `git remote add origin URL`)"
        _flag_refusals(result)
        return
    tracking = f"refs/remotes/{REMOTE}/{branch}"
    for _attempt in range(attempts):
        has_remote = _fetch(soul, branch, tracking, deadline)
        purge.on_fetch(soul, tracking)
        with _git_lock(soul):
            result.ahead, result.behind = ahead_behind(soul.home, tracking if has_remote else None)
            if result.behind:
                received = result.behind
                if result.ahead:
                    _merge(soul, result, tracking)
                else:
                    _fast_forward(soul, tracking)
                result.received += received
                result.ahead, result.behind = ahead_behind(soul.home, tracking)
        if not result.ahead:
            break
        purge.assert_can_push(soul)
        if _push(soul, branch, deadline):
            result.sent += result.ahead
            result.ahead = 0
            break
        log.info("push rejected (the remote moved); fetching again")
    else:
        raise SyncAttention(
            f"the remote kept moving: push rejected {attempts} times",
            hint="run `soul sync` again; local work is committed and kept",
        )
    if result.received:
        refresh_duplicates(soul)
    result.message = f"synced: {result.sent} commit(s) sent, {result.received} received"
    _flag_refusals(result)


def _flag_refusals(result: SyncResult) -> None:
    """Refused files do not stop the sync of everything else, but a person must look (exit 1)."""
    if result.errors:
        result.status = "attention"
        result.message = (
            f"{result.message}; not committed: {'; '.join(result.errors)} "
            "(move the file out of the soul, or remove the secret)"
        )


# ---------------------------------------------------------------------- git helpers


_held = threading.local()


@contextlib.contextmanager
def _git_lock(soul: Soul) -> Iterator[None]:
    """`.soul/git.lock` (the lock `Soul.commit` takes), re-entrant within one thread: flock is per
    open file, so taking it twice from one process would wait on itself."""
    depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
    key = str(soul.home)
    if depth.get(key):
        depth[key] += 1
        try:
            yield
        finally:
            depth[key] -= 1
        return
    with fsutil.file_lock(soul.state_dir / "git.lock", timeout=60):
        depth[key] = 1
        try:
            yield
        finally:
            depth[key] = 0


def _git(soul: Soul, args: list[str], **kwargs: Any) -> gitutil.GitResult:
    return gitutil.run(args, soul.home, **kwargs)


def current_branch(repo: Path) -> str:
    result = gitutil.run(["symbolic-ref", "--short", "-q", "HEAD"], repo, check=False)
    name = result.stdout.strip()
    if not result.ok or not name:
        raise SyncAttention("the soul is not on a branch (detached HEAD)", hint="run `git switch main` in the soul")
    return name


def remote_url(repo: Path) -> str | None:
    result = gitutil.run(["remote", "get-url", REMOTE], repo, check=False)
    return result.stdout.strip() or None if result.ok else None


def ahead_behind(repo: Path, tracking: str | None) -> tuple[int, int]:
    """Commits only we have and only the remote-tracking ref has; local, no network."""
    if tracking is None or not gitutil.run(["rev-parse", "-q", "--verify", tracking], repo, check=False).ok:
        if gitutil.head(repo) is None:
            return 0, 0
        return int(gitutil.run(["rev-list", "--count", "HEAD"], repo).stdout.strip() or 0), 0
    out = gitutil.run(["rev-list", "--left-right", "--count", f"HEAD...{tracking}"], repo).stdout.split()
    return int(out[0]), int(out[1])


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0.5:
        raise OfflineError("sync timed out before the remote answered", hint="try again, or raise --timeout")
    return min(left, NETWORK_OP_TIMEOUT)


def _fetch(soul: Soul, branch: str, tracking: str, deadline: float) -> bool:
    """Fetch the branch; returns whether the remote has it (an empty remote does not)."""
    refspec = f"+refs/heads/{branch}:{tracking}"
    args = ["fetch", "--no-tags", "--no-recurse-submodules", "-q", REMOTE, refspec]
    result = _git(soul, args, network=True, check=False, timeout=_remaining(deadline))
    if result.ok:
        return True
    text = result.stderr + result.stdout
    if "couldn't find remote ref" in text.lower():
        return False
    if gitutil.looks_offline(text):
        raise OfflineError(f"remote unreachable: {gitutil.first_line(text)}")
    raise GitError(f"git fetch failed: {gitutil.first_line(text)}")


def _push(soul: Soul, branch: str, deadline: float) -> bool:
    """Push HEAD; False when the remote moved meanwhile (the caller fetches and merges again)."""
    args = ["push", "--porcelain", REMOTE, f"HEAD:refs/heads/{branch}"]
    result = _git(soul, args, network=True, check=False, timeout=_remaining(deadline))
    if result.ok:
        return True
    text = (result.stdout + "\n" + result.stderr).lower()
    if any(marker in text for marker in _RACE_MARKERS):
        return False
    if gitutil.looks_offline(text):
        raise OfflineError(f"remote unreachable: {gitutil.first_line(result.stderr)}")
    raise SyncAttention(f"git push failed: {gitutil.first_line(result.stderr) or gitutil.first_line(result.stdout)}")


def refresh_duplicates(soul: Soul) -> None:
    """After a pull: refresh the duplicate index now, so the next `remember` does not pay for the
    pulled events. Derived state must never fail a sync."""
    try:
        from soul import dupes

        dupes.refresh(soul)
    except Exception as exc:
        log.warning("duplicate index refresh after pull failed: %s", exc)


def catch_up_semantic_index(soul: Soul) -> None:
    """Bring an existing semantic index up to date; an index never built is left for the first
    recall to build (a sync must not embed a whole soul)."""
    try:
        from soul import index as index_mod

        if index_mod.read_state(soul):
            soul.index().catch_up()
    except Exception as exc:  # the index is derived: it must never fail a sync
        log.warning("index catch-up after pull failed: %s", exc)


# ---------------------------------------------------------------------- committing local work


def commit_all(soul: Soul, message: str | None = None) -> tuple[bool, list[str]]:
    """Commit every change in the soul (new event logs, hand edits) after the secret guard.

    Returns (whether a commit was made, refusals). Never commits during a merge or rebase, nor
    while a merge of ours awaits recovery (a half-merged file must not become a normal commit)."""
    with _git_lock(soul):
        if soul.merge_in_progress() or (soul.state_dir / MERGE_MARKER).exists():
            return False, []
        clear_stale_index_lock(soul.home)
        allowed, refused = scan_changes(soul)
        if not allowed:
            return False, refused
        _git(soul, ["add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul"], input_text="\0".join(allowed))
        text = message or f"soul: commit {len(allowed)} change(s) ({soul.instance})"
        result = _git(soul, ["commit", "-q", "--no-status", "-m", text], check=False, env=gitutil.commit_env())
        if result.ok:
            return True, refused
        if "nothing to commit" in result.stdout + result.stderr:
            return False, refused
        raise GitError(f"git commit failed: {gitutil.first_line(result.stderr or result.stdout)}")


def _commit_into(soul: Soul, result: SyncResult) -> None:
    made, refused = commit_all(soul, f"soul: sync ({soul.instance})")
    result.committed += int(made)
    result.errors.extend(refused)


def scan_changes(soul: Soul) -> tuple[list[str], list[str]]:
    """Changed paths split into (allowed, refusal messages): never-sync paths and files whose new
    content holds a secret are refused. Event logs are checked event by event, the way the write
    path checked them, so JSON escaping cannot turn an accepted memory into a refusal."""
    out = _git(soul, ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"]).stdout
    entries = [(rec[:2], rec[3:]) for rec in out.split("\0") if len(rec) > 3]
    if not entries:
        return [], []
    added = _added_lines(soul, [p for xy, p in entries if xy != "??"])
    allowed: list[str] = []
    refused: list[str] = []
    for xy, path in entries:
        if _never_sync(path):
            refused.append(f"{path}: never-sync path, not committed")
            continue
        full = soul.home / path
        if full.is_file() and not full.is_symlink():
            text = added.get(path) if xy != "??" else None
            if text is None:
                text = full.read_bytes().decode("utf-8", "replace")
            problem = _secret_problem(path, text)
            if problem:
                refused.append(problem)
                continue
        allowed.append(path)
    return allowed, refused


def _added_lines(soul: Soul, paths: list[str]) -> dict[str, str]:
    """The lines each tracked file gained since HEAD (what a commit would add)."""
    if not paths or gitutil.head(soul.home) is None:
        return {}
    args = ["-c", "core.quotePath=false", "diff", "HEAD", "--no-color", "--no-ext-diff", "--no-renames", "-U0", "--"]
    # git diff takes no pathspec file; chunks keep the command line bounded.
    out = "".join(_git(soul, [*args, *paths[i : i + 200]]).stdout for i in range(0, len(paths), 200))
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("+++ "):
            name = line[4:]
            current = found.setdefault(name[2:], []) if name.startswith("b/") else None
        elif line.startswith("+") and current is not None:
            current.append(line[1:])
    return {path: "\n".join(lines) + "\n" for path, lines in found.items()}


def _never_sync(path: str) -> bool:
    try:
        from soul import secrets

        return bool(secrets.is_never_sync_path(path))
    except (ImportError, AttributeError):
        import fnmatch

        name = path.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatch(name, pat) for pat in (".env*", "*.pem", "*.key", "id_*", ".netrc", ".pgpass"))


def _secret_problem(path: str, text: str) -> str | None:
    try:
        from soul import secrets
    except ImportError:
        return None
    try:
        if path.endswith(".jsonl"):
            for line in text.splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    secrets.check(line, redact=False, what=path)
                    continue
                secrets.check_value(event, what=path)
        else:
            secrets.check(text, redact=False, what=path)
    except SoulError as exc:
        return f"{path}: {exc.message}; not committed"
    return None


def clear_stale_index_lock(repo: Path) -> bool:
    """git leaves .git/index.lock after a kill -9; remove it when no git process runs in this
    repository (checked through /proc where there is one), else only when it is old."""
    lock = repo / ".git" / "index.lock"
    if not lock.exists():
        return False
    if Path("/proc/self").exists():
        if _git_running_in(repo):
            return False
        return gitutil.clear_stale_index_lock(repo, older_than=0.0)
    return gitutil.clear_stale_index_lock(repo, older_than=30.0)


def _git_running_in(repo: Path) -> bool:
    target = str(repo.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().strip().startswith("git"):
                continue
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == target or cwd.startswith(target + os.sep):
            return True
    return False


# ---------------------------------------------------------------------- merging


def _merge(soul: Soul, result: SyncResult, tracking: str) -> None:
    """Merge the remote-tracking ref into HEAD, resolving in-process; abort cleanly on failure."""
    from soul import merge as merge_mod

    head = _rev(soul, "HEAD")
    target = _rev(soul, tracking)
    found = _git(soul, ["merge-base", head, target], check=False)
    base = found.stdout.strip() or None if found.ok else None
    marker = soul.state_dir / MERGE_MARKER
    fsutil.atomic_write(marker, json.dumps({"head": head, "target": target, "at": now_iso()}) + "\n")
    args = ["merge", "--no-commit", "--no-ff", "-q", "--no-edit"]
    if base is None:
        args.append("--allow-unrelated-histories")
    attempt = _git(soul, [*args, target], check=False, env=gitutil.commit_env())
    if not (soul.home / ".git" / "MERGE_HEAD").exists():
        marker.unlink(missing_ok=True)
        raise SyncAttention(f"git merge did not start: {gitutil.first_line(attempt.stderr or attempt.stdout)}")
    appended: list[str] = []
    try:
        policy = str(soul.config["sync"].get("settings_policy") or "newest")
        _paths, conflicts = merge_mod.resolve_merge(soul, base, head, target, policy)
        _verify_merge(soul, head, target)
        for conflict in conflicts:
            appended.append(_record_conflict(soul, conflict))
        message = f"soul: merge {target[:10]} into {soul.instance}"
        _git(soul, ["commit", "-q", "--no-status", "--no-edit", "-m", message], env=gitutil.commit_env())
    except (merge_mod.MergeError, SoulError) as exc:
        _undo_merge(soul, head, target, drop_ids=set(appended))
        text = str(exc) if isinstance(exc, merge_mod.MergeError) else exc.message
        raise SyncAttention(
            f"merge stopped, nothing was lost: {text}", hint="fix the file named, then `soul sync`"
        ) from None
    marker.unlink(missing_ok=True)
    result.conflicts.extend(c.to_fields() for c in conflicts)


def _fast_forward(soul: Soul, tracking: str) -> None:
    """A kill -9 in the middle of the checkout leaves HEAD behind a half-updated tree; the
    marker lets `recover` put those files back instead of committing them as local edits."""
    marker = soul.state_dir / MERGE_MARKER
    head, target = _rev(soul, "HEAD"), _rev(soul, tracking)
    fsutil.atomic_write(marker, json.dumps({"head": head, "target": target, "at": now_iso(), "ff": True}) + "\n")
    _git(soul, ["merge", "--ff-only", "-q", target])
    marker.unlink(missing_ok=True)


def _rev(soul: Soul, name: str) -> str:
    return _git(soul, ["rev-parse", "--verify", "-q", name + "^{commit}"]).stdout.strip()


def _verify_merge(soul: Soul, head: str, target: str) -> None:
    from soul import merge as merge_mod

    left = _git(soul, ["diff", "--name-only", "-z", "--diff-filter=U"]).stdout.strip("\0")
    if left:
        raise merge_mod.MergeError(f"unresolved paths remain: {', '.join(left.split(chr(0)))}")
    staged = _git(soul, ["diff", "--cached", "--name-only", "-z", "--no-renames", "HEAD"]).stdout.split("\0")
    for path in staged:
        full = soul.home / path
        if not path.endswith((".toml", ".jsonl")) or not full.is_file():
            continue
        parents = tuple(_show(soul, rev, path) for rev in (head, target))
        problem = merge_mod.verify(path, full.read_bytes(), parents)
        if problem:
            raise merge_mod.MergeError(problem)


def _show(soul: Soul, rev: str, path: str) -> bytes | None:
    found = _git(soul, ["cat-file", "blob", f"{rev}:{path}"], check=False)
    return found.stdout.encode("utf-8") if found.ok else None


def _record_conflict(soul: Soul, conflict: Any) -> str:
    """Append the losing value as a `conflict` event and stage it into the merge commit."""
    from soul import store

    fields = conflict.to_fields()
    try:
        from soul import secrets

        secrets.check_value(fields, what="conflict record")
    except ImportError:
        pass
    except SoulError:
        # A hand-edited file held a secret; the event keeps the key, never the credential.
        fields["kept"] = fields["dropped"] = "[REDACTED]"
    event = soul.append("conflict", fields, commit=False)
    _git(soul, ["add", "--", f"{store.MEMORIES_DIR}/{soul.instance}"])
    return str(event["id"])


# ---------------------------------------------------------------------- recovery


def recover(soul: Soul, result: SyncResult) -> None:
    """Undo what a crash left: a stale index.lock, a half-done merge of ours (redone later)."""
    if clear_stale_index_lock(soul.home):
        result.recovered.append("removed a stale .git/index.lock left by an interrupted git")
    git_dir = soul.home / ".git"
    if any((git_dir / name).exists() for name in ("rebase-merge", "rebase-apply", "CHERRY_PICK_HEAD")):
        raise SyncAttention(
            "a git rebase or cherry-pick is in progress in the soul", hint=f"finish or abort it with git in {soul.home}"
        )
    marker = soul.state_dir / MERGE_MARKER
    try:
        mark = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        mark = None
    merge_head = git_dir / "MERGE_HEAD"
    if merge_head.exists():
        if not mark or merge_head.read_text().strip() != mark.get("target"):
            raise SyncAttention(
                "a git merge soul did not start is in progress",
                hint=f"finish it (`git commit`) or undo it (`git merge --abort`) in {soul.home}",
            )
        _undo_merge(soul, mark["head"], mark["target"])
        result.recovered.append("undid a merge interrupted by a crash; it is redone now")
    elif mark:
        head = gitutil.head(soul.home)
        if head == mark.get("head") and _dirty(soul, _changed(soul, head, mark["target"])):
            # Killed while git merge was writing files, before it recorded MERGE_HEAD.
            _undo_merge(soul, mark["head"], mark["target"])
            result.recovered.append("undid a merge interrupted by a crash; it is redone now")
        marker.unlink(missing_ok=True)


def _changed(soul: Soul, a: str | None, b: str) -> list[str]:
    found = _git(soul, ["diff", "--name-only", "-z", "--no-renames", a or "HEAD", b], check=False)
    return [p for p in found.stdout.split("\0") if p] if found.ok else []


def _dirty(soul: Soul, paths: list[str]) -> list[str]:
    if not paths:
        return []
    out = _git(soul, ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"]).stdout
    changed = {rec[3:] for rec in out.split("\0") if len(rec) > 3}
    return [p for p in paths if p in changed]


def _undo_merge(soul: Soul, head: str, target: str, drop_ids: set[str] | None = None) -> None:
    """Return the files a merge touched to HEAD without losing anything: our own logs keep every
    event they gained (union), any other changed file is copied to `.soul/recovery/` first."""
    from soul import merge as merge_mod

    touched = sorted(set(_changed(soul, head, target)) | set(_staged(soul)))
    dirty = _dirty(soul, touched)
    own = {p: (soul.home / p).read_bytes() for p in dirty if _own_log(soul, p) and (soul.home / p).is_file()}
    others = [p for p in dirty if p not in own and (soul.home / p).is_file()]
    if others:
        backup = soul.state_dir / "recovery" / now_iso().replace(":", "")
        for path in others:
            dest = backup / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes((soul.home / path).read_bytes())
        log.warning("files changed during an interrupted merge were copied to %s", backup)
    in_head = set(_git(soul, ["ls-tree", "-r", "-z", "--name-only", head]).stdout.split("\0"))
    keep = [p for p in touched if p in in_head]
    gone = [p for p in touched if p not in in_head]
    if keep:
        restore = [
            "restore",
            "--source",
            head,
            "--staged",
            "--worktree",
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
        ]
        _git(soul, restore, input_text="\0".join(keep))
    for path in gone:
        _git(soul, ["rm", "-q", "-f", "--cached", "--ignore-unmatch", "--", path])
        (soul.home / path).unlink(missing_ok=True)
    if (soul.home / ".git" / "MERGE_HEAD").exists():
        _git(soul, ["merge", "--quit"])
    for path, saved in own.items():
        current = (soul.home / path).read_bytes() if (soul.home / path).exists() else b""
        merged = merge_mod.merge_jsonl(None, current, saved)
        if drop_ids:
            merged = b"".join(ln for ln in merged.splitlines(keepends=True) if _line_id(ln) not in drop_ids)
        merge_mod.write_own_log(soul.home / path, merged)
    (soul.state_dir / MERGE_MARKER).unlink(missing_ok=True)


def _staged(soul: Soul) -> list[str]:
    out = _git(soul, ["diff", "--cached", "--name-only", "-z", "--no-renames"], check=False).stdout
    return [p for p in out.split("\0") if p]


def _own_log(soul: Soul, path: str) -> bool:
    return path.startswith(f"memories/{soul.instance}/") and path.endswith(".jsonl")


def _line_id(line: bytes) -> str | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data.get("id") if isinstance(data, dict) else None


# ---------------------------------------------------------------------- join


def join(cls: type[Soul], url: str, home: Path, instance: str | None, timeout: float = 600.0) -> Soul:
    """Clone the soul at `url` into `home` (missing or empty) and set it up like `init` does."""
    import shutil

    from soul import config as config_mod
    from soul.errors import UsageError

    if not url or url.startswith("-"):
        raise UsageError(f"invalid remote URL {url!r}")
    name = config_mod.check_instance(instance) if instance else None
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        raise UsageError(f"{home} exists and is not empty", hint="choose a new directory with --home")
    created = not home.exists()
    home.parent.mkdir(parents=True, exist_ok=True)
    try:
        args = ["clone", "--no-tags", "-q", "--origin", REMOTE, "--", url, str(home)]
        gitutil.run(args, home.parent, network=True, timeout=timeout)
        empty = gitutil.head(home) is None
        if not empty and not (home / "soul.toml").is_file():
            raise UsageError(f"{url} is a git repository but not a soul (no soul.toml)")
        if empty:
            gitutil.run(["symbolic-ref", "HEAD", "refs/heads/main"], home)
        soul = cls(home, config_mod.resolve_instance(home, name))
        soul._write_layout(fresh=empty)
    except BaseException:
        if created:
            shutil.rmtree(home, ignore_errors=True)
        else:
            for child in home.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        raise
    if not empty:
        commit_all(soul, f"soul: join ({soul.instance})")
    return soul


# ---------------------------------------------------------------------- status


def _write_status(soul: Soul, result: SyncResult) -> None:
    path = soul.state_dir / STATUS_FILE
    previous = read_status(soul)
    now = now_iso()
    status: dict[str, Any] = {
        "last_sync": now,
        "last_result": result.status,
        "last_ok": now if result.status in ("synced", "local") else previous.get("last_ok"),
        "last_error": "; ".join(result.errors) or None,
        "offline_since": (previous.get("offline_since") or now) if result.status == "offline" else None,
        "sent": result.sent,
        "received": result.received,
    }
    try:
        fsutil.atomic_write(path, json.dumps(status, indent=1) + "\n")
    except OSError as exc:
        log.warning("could not write %s: %s", path, exc)


def read_status(soul: Soul) -> dict[str, Any]:
    try:
        data = json.loads((soul.home / ".soul" / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def local_status(soul: Soul) -> dict[str, Any]:
    """Cheap sync facts for `soul status`: no network, a couple of local git calls."""
    info = read_status(soul)
    out: dict[str, Any] = {
        "remote": remote_url(soul.home) is not None,
        "last_sync": info.get("last_sync"),
        "last_result": info.get("last_result"),
        "last_ok": info.get("last_ok"),
        "last_error": info.get("last_error"),
        "offline_since": info.get("offline_since"),
    }
    try:
        branch = current_branch(soul.home)
        out["ahead"], out["behind"] = ahead_behind(soul.home, f"refs/remotes/{REMOTE}/{branch}")
    except SoulError:
        out["ahead"] = out["behind"] = None
    return out


def doctor_checks(soul: Soul) -> list[tuple[str, bool, str, str | None]]:
    """(name, ok, message, fix): is a remote configured, and does it answer within 10 s."""
    url = remote_url(soul.home)
    if url is None:
        return [("remote", True, "no remote configured (local-only soul)", None)]
    try:
        gitutil.run(["ls-remote", "--heads", REMOTE], soul.home, network=True, timeout=10)
    except OfflineError as exc:
        return [("remote", False, f"remote unreachable: {exc.message}", "check the network, the URL and credentials")]
    except GitError as exc:
        return [("remote", False, exc.message, "check `git remote get-url origin` in the soul")]
    return [("remote", True, "remote reachable", None)]
