"""Real deletion across replicas: `soul purge`, and the two hooks sync calls.

`plan(soul, ids, match)` says what would go (lines, log files, commits, remote) and changes nothing;
`run(soul, ids, match, yes)` is the same plan followed, with `yes`, by the journaled steps:
rewrite every ref without the lines → filter the logs on disk → commit `purges/<id>.toml` (ids
and salted hashes, never text) → scrub `.soul/` → expire reflogs and prune → push with
`--force-with-lease` → prune a local-path remote. Each step is idempotent and recorded in
`.soul/purge-state.json`, so a purge killed anywhere is finished by running it again.

Other replicas follow through sync: `on_fetch` sees a purge record on the remote that HEAD lacks
and applies the same deterministic rewrite to its own history (its unpushed commits included) before
sync merges, so the histories meet and the old one is never merged back; `assert_can_push` refuses
to push while a purge is half done or while HEAD still holds a purged line.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soul import gitutil
from soul.errors import OfflineError, SyncAttention, UsageError
from soul.ids import new_ulid, now_iso
from soul.purge import journal, records, rewrite, scrub, select, worktree

if TYPE_CHECKING:
    from soul.core import Soul

REMOTE = records.REMOTE
FOLLOWED = "purge-followed.json"
ORIGIN_STEPS = ("rewrite", "worktree", "record", "scrub", "gc", "push", "remote-gc")
FOLLOWER_STEPS = ("rewrite", "worktree", "scrub", "gc")


# ---------------------------------------------------------------------- plan


def plan(soul: Soul, ids: list[str], match: str | None) -> dict[str, Any]:
    """What a purge of `ids` (and lines matching `match`) would remove, from where. No writes."""
    if not ids and match is None:
        raise UsageError("name at least one id, or --match TEXT", hint="see `soul list` for ids")
    repo = soul.home
    refs = rewrite.plain_refs(repo, include_remotes=True)
    lines = select.collect(repo, rewrite.tip_logs(repo, refs))
    removed = select.select(lines, ids, match)
    filt = rewrite.LineFilter(removed)
    gone = sorted((ln for ln in lines.values() if filt.drops(ln.raw)), key=lambda ln: (ln.event["at"], ln.event["id"]))
    rule = rewrite.MessageRule(filt, rewrite.needles(ln.raw for ln in gone))
    stats = rewrite.rewrite_history(repo, filt, rule, refs, apply=False)
    files: dict[str, int] = {}
    for ln in gone:
        for name in ln.files:
            files[name] = files.get(name, 0) + 1
    url = records.remote_url(repo)
    local = scrub.local_remote_path(repo, url) if url else None
    return {
        "ids": sorted(removed),
        "lines": [select.describe(ln) for ln in gone],
        "files": files,
        "commits": {"total": stats.commits, "changed": stats.changed, "rewritten": stats.rehashed},
        "remote": records.redact(url) if url else None,
        "remote_cleanup": None if not url else ("pruned by soul (local path)" if local else "the server must gc"),
        "applied": False,
    }


# ---------------------------------------------------------------------- apply


def run(soul: Soul, ids: list[str], match: str | None, yes: bool) -> dict[str, Any]:
    """Plan; with `yes`, apply. A purge left half done is finished first."""
    from soul import fsutil

    state = journal.load(soul.state_dir)
    finished = None
    if state is not None and yes:
        with fsutil.file_lock(soul.state_dir / "sync.lock", timeout=120):
            finished = _resume(soul, state)
        # Running the interrupted command again is the natural way to finish it: ids it covered
        # are gone now, and that is success, not "no such id".
        ids = [i for i in ids if i not in set(state.get("ids", []))]
        if not ids and match is None:
            return {"finished": finished, "applied": True}
    elif state is not None and not ids and match is None:
        return {"pending": _pending_summary(state), "applied": False}
    result = plan(soul, ids, match)
    if finished:
        result["finished"] = finished
    elif state is not None:
        result["pending"] = _pending_summary(state)
    if not yes or not result["lines"]:
        return result
    with fsutil.file_lock(soul.state_dir / "sync.lock", timeout=120):
        state = _start(soul, result, match)
        _steps(soul, state)
    result["applied"] = True
    result["purge_id"] = state["purge"]
    return result


def _start(soul: Soul, planned: dict[str, Any], match: str | None) -> dict[str, Any]:
    repo = soul.home
    if soul.merge_in_progress():
        raise SyncAttention("a git merge is in progress in the soul", hint="run `soul sync` to finish it first")
    lease = _fetch_lease(soul)
    refs = rewrite.plain_refs(repo, include_remotes=True)
    lines = select.collect(repo, rewrite.tip_logs(repo, refs))
    filt = rewrite.LineFilter(planned["ids"])
    gone = [ln for ln in lines.values() if filt.drops(ln.raw)]
    pid = new_ulid()
    state = {
        "version": journal.VERSION,
        "role": "origin",
        "purge": pid,
        "ids": planned["ids"],
        "needles": rewrite.needles(ln.raw for ln in gone),
        # The --match text is scrubbed from .soul/ too, but never steers the history rewrite: the
        # rewrite must be reproducible by replicas that only see the record.
        "scrub": [match] if match else [],
        "record": records.record_text(pid, soul.instance, planned["ids"], gone, planned["commits"]["rewritten"]),
        "lease": lease,
        "branch": records.branch(repo),
        "done": [],
        "at": now_iso(),
    }
    journal.save(soul.state_dir, state)
    journal.crash_point("start")
    return state


def _fetch_lease(soul: Soul) -> str | None:
    """Refresh the remote-tracking ref and insist this replica is not behind: a purge pushed over
    commits it has not merged would drop them from the remote."""
    repo = soul.home
    if not records.remote_url(repo):
        return None
    branch = records.branch(repo)
    tracking = f"refs/remotes/{REMOTE}/{branch}"
    # Offline: purge locally now; the push step checks the remote again before it pushes.
    with contextlib.suppress(OfflineError):
        gitutil.run(["fetch", "-q", "--no-tags", REMOTE, f"+refs/heads/{branch}:{tracking}"], repo, network=True)
    tip = records.rev(repo, tracking)
    if tip and not records.is_ancestor(repo, tip, "HEAD"):
        raise SyncAttention(
            "the remote has changes this replica has not merged", hint="run `soul sync`, then `soul purge` again"
        )
    return tip


def _steps(soul: Soul, state: dict[str, Any]) -> None:
    from soul import fsutil

    steps = ORIGIN_STEPS if state["role"] == "origin" else FOLLOWER_STEPS
    # git.lock for the whole run: a commit slipped in between the rewrite and the filtering of the
    # logs on disk would put the removed lines back into a new commit.
    with fsutil.file_lock(soul.state_dir / "git.lock", timeout=120):
        for step in steps:
            if step in state["done"]:
                continue
            _STEP[step](soul, state)
            journal.crash_point(step)
            state["done"].append(step)
            if step == "scrub":
                # The texts were needed to find their traces; from here on the journal keeps none.
                state["needles"], state["scrub"] = [], []
            journal.save(soul.state_dir, state)
    journal.clear(soul.state_dir)
    with contextlib.suppress(OSError):
        (soul.state_dir / "purge-scratch").rmdir()


def _filters(state: dict[str, Any]) -> tuple[rewrite.LineFilter, rewrite.MessageRule]:
    filt = rewrite.LineFilter(state["ids"])
    return filt, rewrite.MessageRule(filt, [n for n in state["needles"] if len(n) >= rewrite.MIN_NEEDLE])


def _step_rewrite(soul: Soul, state: dict[str, Any]) -> None:
    filt, rule = _filters(state)
    refs = rewrite.plain_refs(soul.home, include_remotes=state["role"] == "origin")
    rewrite.rewrite_history(soul.home, filt, rule, refs, apply=True)


def _step_worktree(soul: Soul, state: dict[str, Any]) -> None:
    filt, _ = _filters(state)
    repaired = worktree.filter_worktree(soul.home, filt, soul.state_dir / "purge-scratch")
    # The index still lists the old blobs; point it at the rewritten HEAD without touching files.
    if gitutil.head(soul.home):
        gitutil.run(["read-tree", "HEAD"], soul.home)
    if repaired:
        # A commit made while a log was cut short by the crash recorded its lines as deleted; commit
        # them back before anything is pushed, or a merge elsewhere would delete them too.
        gitutil.run(["add", "--", *repaired], soul.home)
        message = "soul: restore logs after an interrupted purge"
        gitutil.run(["commit", "-q", "--no-status", "-m", message, "--", *repaired], soul.home, check=False)
    soul._views.reset()


def _step_record(soul: Soul, state: dict[str, Any]) -> None:
    from soul import fsutil
    from soul import secrets as guard

    rel = f"{records.RECORDS}/{state['purge']}.toml"
    text = guard.check(state["record"], what="purge record")
    if gitutil.run(["cat-file", "-e", f"HEAD:{rel}"], soul.home, check=False).ok:
        return
    fsutil.atomic_write(soul.home / rel, text)
    gitutil.run(["add", "--", rel], soul.home)
    message = f"soul: purge {state['purge']} ({len(state['ids'])} ids)"
    gitutil.run(["commit", "-q", "--no-status", "-m", message, "--", rel], soul.home)


def _step_scrub(soul: Soul, state: dict[str, Any]) -> None:
    ids = records.embedder_ids(soul)
    scrub.scrub_state(soul.state_dir, [*state["needles"], *state.get("scrub", [])], ids)


def _step_gc(soul: Soul, state: dict[str, Any]) -> None:
    scrub.prune_objects(soul.home, keep_fetch_head=state["role"] != "origin")


def _step_push(soul: Soul, state: dict[str, Any]) -> None:
    repo = soul.home
    if not records.remote_url(repo):
        return
    branch = state["branch"]
    tracking = f"refs/remotes/{REMOTE}/{branch}"
    for _attempt in range(4):
        # ls-remote, not fetch: fetching the old tip would bring the old objects back.
        tip = _remote_tip(repo, branch)
        if tip is not None and tip != state["lease"]:
            if records.rev(repo, tip) and records.is_ancestor(repo, tip, "HEAD"):
                state["lease"] = tip  # our own push of an earlier, interrupted run
            else:
                _absorb(soul, state, tracking)
                continue
        lease = f"--force-with-lease=refs/heads/{branch}:{state['lease'] or ''}"
        pushed = gitutil.run(
            ["push", "-q", lease, REMOTE, f"HEAD:refs/heads/{branch}"], repo, network=True, check=False
        )
        if pushed.ok:
            return
        if gitutil.looks_offline(pushed.stderr):
            raise _offline(pushed.stderr)
    raise SyncAttention("the remote kept moving during the purge", hint="run `soul purge --yes` again")


def _remote_tip(repo: Path, branch: str) -> str | None:
    try:
        out = gitutil.run(["ls-remote", "--heads", REMOTE, f"refs/heads/{branch}"], repo, network=True).stdout
    except OfflineError as exc:
        raise _offline(exc.message) from None
    return out.split()[0] if out.strip() else None


def _offline(detail: str) -> OfflineError:
    return OfflineError(
        f"purged on this replica, but the remote still has the old history ({gitutil.first_line(detail)})",
        hint="run `soul purge --yes` again when the remote is reachable; sync will not push until then",
    )


def _absorb(soul: Soul, state: dict[str, Any], tracking: str) -> None:
    """Someone pushed old-history commits after the lease was taken: purge them too, merge them."""
    branch = state["branch"]
    gitutil.run(["fetch", "-q", "--no-tags", REMOTE, f"+refs/heads/{branch}:{tracking}"], soul.home, network=True)
    state["lease"] = records.rev(soul.home, tracking)
    journal.save(soul.state_dir, state)
    filt = rewrite.LineFilter(state["ids"])
    # The journal dropped the texts after the scrub; the fetched old history names them again.
    found = [ln for lines in rewrite.tip_logs(soul.home, [tracking]).values() for ln in lines if filt.drops(ln)]
    rule = rewrite.MessageRule(filt, [*state["needles"], *rewrite.needles(found)])
    rewrite.rewrite_history(soul.home, filt, rule, [tracking], apply=True)
    merged = gitutil.run(["merge", "--no-edit", "-q", tracking], soul.home, check=False)
    if not merged.ok:
        gitutil.run(["merge", "--abort"], soul.home, check=False)
        raise SyncAttention("the remote changed during the purge and does not merge cleanly", hint="soul sync")
    scrub.prune_objects(soul.home, keep_fetch_head=False)


def _step_remote_gc(soul: Soul, state: dict[str, Any]) -> None:
    url = records.remote_url(soul.home)
    path = scrub.local_remote_path(soul.home, url) if url else None
    if path is not None:
        scrub.prune_remote(path)


_STEP = {
    "rewrite": _step_rewrite,
    "worktree": _step_worktree,
    "record": _step_record,
    "scrub": _step_scrub,
    "gc": _step_gc,
    "push": _step_push,
    "remote-gc": _step_remote_gc,
}


def _resume(soul: Soul, state: dict[str, Any]) -> dict[str, Any]:
    if state.get("broken") or state.get("role") not in ("origin", "follower"):
        raise SyncAttention(
            f"the purge journal {journal.path(soul.state_dir)} cannot be read",
            hint="run the purge again by id (`soul purge ID --yes`), then delete that file",
        )
    if "rewrite" in state["done"] and "worktree" not in state["done"]:
        # The logs on disk still held the lines when we stopped: a commit made since (a remember,
        # the daemon, sync) may have put them back into history, so rewrite again (idempotent).
        state["done"].remove("rewrite")
    _steps(soul, state)
    return _pending_summary(state)


# ---------------------------------------------------------------------- sync hooks


def on_fetch(soul: Soul, remote_ref: str) -> None:
    """Called by sync after a fetch, before any merge: follow a purge made on another replica."""
    from soul import fsutil

    state = journal.load(soul.state_dir)
    if state is not None:
        if state.get("role") != "follower":
            raise SyncAttention("a purge is half done on this replica", hint="run `soul purge --yes` to finish it")
        _resume(soul, state)
    pending = sorted(records.records(soul.home, remote_ref) - records.records(soul.home, "HEAD") - _followed(soul))
    if not pending:
        return
    removed: set[str] = set()
    for name in pending:
        removed |= set(records.read_record(soul.home, remote_ref, name).get("ids", []))
    filt = rewrite.LineFilter(removed)
    refs = rewrite.plain_refs(soul.home, include_remotes=False)
    lines = select.collect(soul.home, rewrite.tip_logs(soul.home, refs))
    gone = [ln.raw for ln in lines.values() if filt.drops(ln.raw)]
    state = {
        "version": journal.VERSION,
        "role": "follower",
        "purge": ",".join(pending),
        "ids": sorted(removed),
        "needles": rewrite.needles(gone),
        "done": [],
        "at": now_iso(),
    }
    with fsutil.file_lock(soul.state_dir / "purge.lock", timeout=120):
        journal.save(soul.state_dir, state)
        _steps(soul, state)
        # Until the merge brings the record into HEAD, a later fetch must not redo the rewrite and gc.
        fsutil.atomic_write(soul.state_dir / FOLLOWED, json.dumps(sorted(_followed(soul) | set(pending))))


def _followed(soul: Soul) -> set[str]:
    """Records this replica has already followed (a cache: losing it only repeats idempotent work)."""
    try:
        data = json.loads((soul.state_dir / FOLLOWED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {str(x) for x in data} if isinstance(data, list) else set()


def assert_can_push(soul: Soul) -> None:
    """Called by sync before a push: never send history while a purge is half done, or a HEAD
    in which a purged line came back (an old history merged in)."""
    state = journal.load(soul.state_dir)
    if state is not None:
        raise SyncAttention("a purge is half done on this replica", hint="run `soul purge --yes` to finish it")
    names = records.records(soul.home, "HEAD")
    if not names:
        return
    removed: set[str] = set()
    for name in names:
        removed |= set(records.read_record(soul.home, "HEAD", name).get("ids", []))
    filt = rewrite.LineFilter(removed)
    for lines in rewrite.tip_logs(soul.home, ["HEAD"]).values():
        if any(filt.drops(line) for line in lines):
            raise SyncAttention(
                "HEAD holds a line that a purge removed (old history came back)",
                hint="run `soul purge ID --yes` for that id again before syncing",
            )


# ---------------------------------------------------------------------- status, doctor


def status(soul: Soul) -> dict[str, Any]:
    """For `soul status`: a half-done purge here, and purges on the remote not yet followed."""
    state = journal.load(soul.state_dir)
    tracking = f"refs/remotes/{REMOTE}/{records.branch(soul.home, default='main')}"
    waiting = (
        sorted(records.records(soul.home, tracking) - records.records(soul.home, "HEAD") - _followed(soul))
        if records.rev(soul.home, tracking)
        else []
    )
    return {
        "pending": state is not None,
        "state": _pending_summary(state) if state else None,
        "remote_purges_to_follow": waiting,
        "applied": len(records.records(soul.home, "HEAD")),
    }


def doctor_check(soul: Soul) -> tuple[bool, str, str | None]:
    info = status(soul)
    if info["pending"]:
        st = info["state"]
        return (
            False,
            f"purge {st['purge']} is half done (done: {', '.join(st['done']) or 'nothing'})",
            ("soul purge --yes"),
        )
    if info["remote_purges_to_follow"]:
        return False, f"the remote has {len(info['remote_purges_to_follow'])} purge(s) not applied here", "soul sync"
    return True, f"no purge pending ({info['applied']} applied)", None


def _pending_summary(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "purge": state.get("purge"),
        "role": state.get("role"),
        "done": list(state.get("done", [])),
        "ids": len(state.get("ids", [])),
        "since": state.get("at"),
    }
