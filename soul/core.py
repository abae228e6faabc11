"""The core API: `Soul` is the one object the CLI, the daemon and the MCP server call.

It owns behaviour; adapters parse arguments, call one method and render the result. Every
write goes through the secret guard before anything touches disk, then through `store` (the
only appender of event logs), then optionally a local git commit (never the network).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soul import config as config_mod
from soul import gitutil, store
from soul import settings as settings_mod
from soul.errors import GitError, NotASoul, NotFound, SoulError, UsageError
from soul.ids import iso_from_ms, new_ulid, now_ms
from soul.view import KINDS, View
from soul.viewcache import ViewCache


@dataclass(frozen=True)
class Remembered:
    id: str
    duplicate_of: str | None = None
    committed: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.duplicate_of:
            out["duplicate_of"] = self.duplicate_of
        return out


class Soul:
    """A soul repository opened by one instance."""

    def __init__(self, home: Path, instance: str) -> None:
        self.home = home
        self.instance = instance
        self._views = ViewCache(home)
        self._config: dict[str, Any] | None = None

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, home: Path | None = None, instance: str | None = None) -> Soul:
        root = (home or config_mod.default_home()).expanduser().absolute()
        if not (root / "soul.toml").is_file():
            raise NotASoul(
                f"no soul at {root}",
                hint="create one with `soul init` (or `soul join URL`), or point --home / SOUL_HOME at it",
            )
        return cls(root, config_mod.resolve_instance(root, instance))

    @classmethod
    def init(cls, home: Path | None = None, instance: str | None = None, remote: str | None = None) -> Soul:
        """Create (or complete) a soul at `home`; idempotent on an existing soul."""
        root = (home or config_mod.default_home()).expanduser().absolute()
        is_soul = (root / "soul.toml").is_file()
        if root.exists() and not root.is_dir():
            raise UsageError(f"{root} exists and is not a directory")
        if root.is_dir() and not is_soul and any(root.iterdir()):
            raise UsageError(
                f"{root} is not empty and is not a soul; refusing to turn it into one",
                hint="choose an empty or new directory with --home",
            )
        root.mkdir(parents=True, exist_ok=True)
        name = config_mod.resolve_instance(root, instance)
        soul = cls(root, name)
        soul._write_layout(fresh=not is_soul)
        if remote:
            soul.set_remote(remote)
        return soul

    def _write_layout(self, fresh: bool) -> None:
        from soul import fsutil

        root = self.home
        if not (root / ".git").exists():
            gitutil.run(["init", "-q", "-b", "main"], root)
        self.configure_git()
        files = {
            "soul.toml": config_mod.SOUL_TOML,
            "settings/global.toml": config_mod.GLOBAL_TOML,
            ".gitattributes": config_mod.GITATTRIBUTES,
            ".gitignore": config_mod.GITIGNORE,
        }
        for rel, content in files.items():
            path = root / rel
            if not path.exists():
                fsutil.atomic_write(path, content)
        keep = root / store.MEMORIES_DIR / self.instance / ".gitkeep"
        if not keep.exists():
            fsutil.atomic_write(keep, "")
        self.remember_instance_name()
        if fresh or gitutil.head(root) is None:
            self.commit([*files, keep.relative_to(root).as_posix()], f"soul: init ({self.instance})")

    def remember_instance_name(self) -> None:
        from soul import fsutil

        path = self.state_dir / "instance"
        if not path.exists() or path.read_text(encoding="utf-8").strip() != self.instance:
            fsutil.atomic_write(path, self.instance + "\n")

    def configure_git(self) -> None:
        """Per-clone git settings soul relies on (durability, identity, union merge)."""
        wanted = {
            "core.fsync": "objects,derived-metadata,reference",
            "core.fsyncMethod": "fsync",
            "merge.union.name": "union merge for append-only logs",
            "gc.autoDetach": "true",
        }
        current = gitutil.run(["config", "--local", "--list"], self.home, check=False).stdout
        have = dict(line.split("=", 1) for line in current.splitlines() if "=" in line)
        for key, value in wanted.items():
            if have.get(key.lower()) != value:
                gitutil.run(["config", "--local", key, value], self.home)
        email = gitutil.run(["config", "user.email"], self.home, check=False).stdout.strip()
        if not email:
            gitutil.run(["config", "--local", "user.email", f"soul@{self.instance}"], self.home)
            gitutil.run(["config", "--local", "user.name", f"soul ({self.instance})"], self.home)

    def set_remote(self, url: str) -> None:
        if url.startswith("-"):
            raise UsageError(f"invalid remote URL {url!r}")
        existing = gitutil.run(["remote", "get-url", "origin"], self.home, check=False)
        if existing.ok:
            gitutil.run(["remote", "set-url", "origin", url], self.home)
        else:
            gitutil.run(["remote", "add", "origin", url], self.home)

    # ------------------------------------------------------------------ basics

    @property
    def state_dir(self) -> Path:
        """`.soul/`: derived, local-only state (ignored by git, rebuildable)."""
        path = self.home / ".soul"
        path.mkdir(exist_ok=True)
        return path

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = config_mod.load_config(self.home)
        return self._config

    def append(
        self, op: str, fields: dict[str, Any], commit: bool = True, message: str | None = None
    ) -> dict[str, Any]:
        """Append one event to this instance's log (already guarded by the caller)."""
        ms = now_ms()
        event: dict[str, Any] = {"op": op, "id": fields.pop("id", None) or new_ulid(ms)}
        event["at"] = iso_from_ms(ms)
        event["by"] = self.instance
        event["v"] = store.SCHEMA_VERSION
        event.update(fields)
        path = store.append_event(self.home, self.instance, event)
        if commit:
            self.commit_if_enabled([path], message or f"soul: {op} {event['id']}")
        return event

    def commit_if_enabled(self, paths: list[Path], message: str) -> bool:
        if not self.config["sync"].get("commit_on_write", True):
            return False
        try:
            return self.commit([p.relative_to(self.home).as_posix() for p in paths], message)
        except SoulError:
            # The event is already durable in its log; the daemon or next sync commits it.
            return False

    def commit(self, rel_paths: list[str], message: str) -> bool:
        """Stage `rel_paths` and make a local commit (no network). Returns whether one was made."""
        from soul import fsutil

        with fsutil.file_lock(self.state_dir / "git.lock", timeout=60):
            if self.merge_in_progress():
                return False
            gitutil.clear_stale_index_lock(self.home, older_than=30.0)
            gitutil.run(["add", "-A", "--", *rel_paths], self.home)
            result = gitutil.run(
                ["commit", "-q", "--no-status", "-m", message, "--", *rel_paths],
                self.home,
                check=False,
                env=gitutil.commit_env(),
            )
            if result.ok:
                return True
            if "nothing to commit" in result.stdout + result.stderr or "no changes added" in result.stdout:
                return False
            raise GitError(f"git commit failed: {gitutil.first_line(result.stderr or result.stdout)}")

    def merge_in_progress(self) -> bool:
        git = self.home / ".git"
        return any((git / name).exists() for name in ("MERGE_HEAD", "rebase-merge", "rebase-apply", "CHERRY_PICK_HEAD"))

    def view(self) -> View:
        """The folded state; only what was appended since the last fold is folded (soul/viewcache.py)."""
        return self._views.get()

    # ------------------------------------------------------------------ memories

    def remember(
        self,
        text: str,
        kind: str = "note",
        tags: list[str] | tuple[str, ...] = (),
        project: str | None = None,
        source: str | None = None,
        redact: bool = False,
        allow_duplicate: bool = False,
        commit: bool = True,
    ) -> Remembered:
        from soul import secrets

        text = _clean_text(text)
        kind = _check_kind(kind)
        tags = [_clean_label(t, "tag") for t in tags]
        project = _clean_label(project, "project") if project else None
        text = secrets.check(text, redact=redact, what="memory text")
        for label in [*tags, project or "", source or ""]:
            secrets.check(label, what="memory label")
        if not allow_duplicate:
            existing = self.find_duplicate(text, kind, project)
            if existing is not None:
                return Remembered(existing, duplicate_of=existing)
        fields: dict[str, Any] = {"text": text, "kind": kind, "tags": tags}
        if project:
            fields["project"] = project
        if source:
            fields["source"] = source
        event = self.append("memory.add", fields, commit=commit, message=f"remember {_summary(text)}")
        return Remembered(event["id"])

    def find_duplicate(self, text: str, kind: str, project: str | None) -> str | None:
        """The id of a live memory holding the same fact, if any (hash index in .soul/, no fold)."""
        from soul import dupes

        return dupes.find(self, text, kind, project)

    def get_memory(self, memory_id: str) -> dict[str, Any]:
        mem = self.view().memory(memory_id)
        if mem is None:
            raise NotFound(f"no memory {memory_id}", hint="see `soul list` for ids")
        return mem.to_dict()

    def forget(self, memory_id: str) -> str:
        view = self.view()
        mem = view.memory(memory_id)
        if mem is None:
            raise NotFound(f"no memory {memory_id}", hint="see `soul list` for ids")
        self.append("memory.forget", {"target": mem.id}, message=f"forget {mem.id}")
        return mem.id

    def update(self, memory_id: str, text: str | None = None, tags: list[str] | None = None) -> str:
        from soul import secrets

        mem = self.view().memory(memory_id)
        if mem is None:
            raise NotFound(f"no memory {memory_id}")
        fields: dict[str, Any] = {"target": mem.id}
        if text is not None:
            fields["text"] = secrets.check(_clean_text(text), what="memory text")
        if tags is not None:
            fields["tags"] = [_clean_label(t, "tag") for t in tags]
        self.append("memory.update", fields)
        return mem.id

    def list_memories(
        self,
        kind: str | None = None,
        tag: str | None = None,
        project: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        mems = [m for m in self.view().memories if _matches(m.to_dict(), kind, tag, project, since)]
        mems.sort(key=lambda m: (m.at, m.id), reverse=True)
        return [m.to_dict() for m in mems[: limit if limit and limit > 0 else None]]

    def recall(
        self,
        query: str,
        k: int = 10,
        kind: str | None = None,
        tag: str | None = None,
        project: str | None = None,
        since: str | None = None,
    ) -> list[dict[str, Any]]:
        from soul import search

        if kind:
            _check_kind(kind)
        return search.recall(self, query, k=k, kind=kind, tag=tag, project=project, since=since)

    # ------------------------------------------------------------------ settings

    def get_setting(self, key: str, resolve: bool = False) -> tuple[Any, str]:
        """The value of `key` and where it came from: machine | global | preference | default."""
        parts = settings_mod.check_key(key)
        layers: list[tuple[str, dict[str, Any]]] = [
            ("machine", settings_mod.read(settings_mod.machine_path(self.home, self.instance))),
            ("global", settings_mod.read(settings_mod.global_path(self.home))),
            ("preference", self.accepted_preferences()),
            ("default", _nest(settings_mod.DEFAULTS)),
        ]
        for source, data in layers:
            value = settings_mod.lookup(data, parts)
            if value is not settings_mod.MISSING:
                return (settings_mod.resolve_env(value) if resolve else value), source
        raise NotFound(f"setting {key} is not set", hint=f"set it with `soul set {key} VALUE`")

    def accepted_preferences(self) -> dict[str, Any]:
        """Inferred preferences a person accepted (`soul prefs accept`); below explicit settings."""
        from soul import prefs

        return prefs.accepted_preferences(self)

    def set_setting(self, key: str, value: Any, machine: bool = False) -> Path:
        from soul import secrets

        settings_mod.check_key(key)
        secrets.check_value(value, what=f"setting {key}")
        path = self._settings_path(machine)
        settings_mod.write_key(path, key, value)
        self.commit_if_enabled([path], f"set {key}")
        return path

    def unset_setting(self, key: str, machine: bool = False) -> None:
        path = self._settings_path(machine)
        if not settings_mod.remove_key(path, key):
            raise NotFound(f"setting {key} is not set in {path.relative_to(self.home)}")
        self.commit_if_enabled([path], f"unset {key}")

    def all_settings(self) -> dict[str, Any]:
        """Effective settings, flattened, machine over global."""
        merged = settings_mod.flatten(settings_mod.read(settings_mod.global_path(self.home)))
        merged.update(settings_mod.flatten(settings_mod.read(settings_mod.machine_path(self.home, self.instance))))
        return merged

    def _settings_path(self, machine: bool) -> Path:
        if machine:
            return settings_mod.machine_path(self.home, self.instance)
        return settings_mod.global_path(self.home)

    # ------------------------------------------------------------------ feature sections
    # Each owner adds thin delegating methods under its own marker; logic lives in its module.
    # ---- methods: index (issue 3)
    def index(self) -> Any:
        """The semantic index (`soul.index.SoulIndex`), created on first use; imports nothing until then."""
        if getattr(self, "_index", None) is None:
            from soul.index import SoulIndex

            self._index = SoulIndex(self)
        return self._index

    def index_status(self) -> dict[str, Any]:
        from soul import index

        return index.status(self)

    # ---- methods: sync + daemon (issue 4)
    @classmethod
    def join(cls, url: str, home: Path | None = None, instance: str | None = None) -> Soul:
        """Clone the soul at `url` onto this machine and set it up like `init` (see soul.sync.join)."""
        from soul import sync as sync_mod

        root = (home or config_mod.default_home()).expanduser().absolute()
        return sync_mod.join(cls, url, root, instance)

    def sync(self, timeout: float | None = None) -> Any:
        """Commit, fetch, merge, push: a `soul.sync.SyncResult`; network trouble is a result, not an error."""
        from soul import sync as sync_mod

        return sync_mod.sync(self, timeout=timeout or sync_mod.DEFAULT_TIMEOUT)

    def commit_all(self, message: str | None = None) -> bool:
        """Commit every pending change after the secret guard (what the daemon and sync do)."""
        from soul import sync as sync_mod

        return sync_mod.commit_all(self, message)[0]

    # ---- methods: mcp/serve (issue 5)
    # ---- methods: instances, sessions, tasks, people, prefs, conflicts (issue 6)
    def is_registered(self) -> bool:
        from soul import instances

        return instances.is_registered(self)

    def register_instance(self, yes: bool = False) -> dict[str, Any]:
        from soul import instances

        return instances.register(self, yes=yes)

    def unregister_instance(self) -> dict[str, Any]:
        from soul import instances

        return instances.unregister(self)

    def list_instances(self) -> list[dict[str, Any]]:
        from soul import instances

        return instances.list_instances(self)

    def heartbeat(self) -> dict[str, Any]:
        from soul import instances

        return instances.heartbeat(self)

    def save_session(
        self,
        title: str,
        summary: str = "",
        next_steps: list[str] | None = None,
        open_questions: list[str] | None = None,
        cwd: str | None = None,
        project: str | None = None,
        files: list[str] | None = None,
    ) -> dict[str, Any]:
        from soul import sessions

        return sessions.save_session(self, title, summary, next_steps, open_questions, cwd, project, files)

    def resume_session(self, session_id: str | None = None, project: str | None = None) -> dict[str, Any]:
        from soul import sessions

        return sessions.resume_session(self, session_id=session_id, project=project)

    def list_sessions(self, project: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        from soul import sessions

        return sessions.list_sessions(self, project=project, status=status)

    def close_session(self, session_id: str) -> dict[str, Any]:
        from soul import sessions

        return sessions.close_session(self, session_id)

    def add_task(self, title: str, project: str | None = None, note: str | None = None) -> dict[str, Any]:
        from soul import sessions

        return sessions.add_task(self, title, project=project, note=note)

    def update_task(self, task_id: str, status: str | None = None, note: str | None = None) -> dict[str, Any]:
        from soul import sessions

        return sessions.update_task(self, task_id, status=status, note=note)

    def list_tasks(self, project: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        from soul import sessions

        return sessions.list_tasks(self, project=project, status=status)

    def note_person(
        self,
        name: str,
        text: str,
        project: str | None = None,
        style: str | None = None,
        aliases: list[str] | None = None,
    ) -> dict[str, Any]:
        from soul import people

        return people.note_person(self, name, text, project=project, style=style, aliases=aliases)

    def who_is(self, name: str) -> dict[str, Any]:
        from soul import people

        return people.who_is(self, name)

    def list_people(self) -> list[dict[str, Any]]:
        from soul import people

        return people.list_people(self)

    def observe_choice(
        self, category: str, chose: str, over: list[str] | None = None, context: str | None = None
    ) -> dict[str, Any]:
        from soul import prefs

        return prefs.observe_choice(self, category, chose, over=over, context=context)

    def preferences(self) -> list[dict[str, Any]]:
        from soul import prefs

        return prefs.preferences(self)

    def accept_preference(self, category: str) -> dict[str, Any]:
        from soul import prefs

        return prefs.accept_preference(self, category)

    def list_conflicts(self) -> list[dict[str, Any]]:
        from soul import prefs

        return prefs.list_conflicts(self)

    def resolve_conflict(self, key: str, value: object) -> dict[str, Any]:
        from soul import prefs

        return prefs.resolve_conflict(self, key, value)

    # ---- methods: install (issue 7)
    def install_links(self, w: Any) -> list[dict[str, Any]]:
        """Link dotfiles per [links]; `w` is `soul.install.Disk()` or a `Recorder()` for --dry-run."""
        from soul.install import links

        return links.apply(self, links.plan(self), w)

    def uninstall_links(self, w: Any) -> list[dict[str, Any]]:
        from soul.install import links

        return links.apply_uninstall(self, w)

    def install_mcp(self, client: str, w: Any) -> dict[str, Any]:
        from soul.install import clients

        return clients.install(self, client, w)

    def uninstall_mcp(self, client: str, w: Any) -> dict[str, Any]:
        from soul.install import clients

        return clients.uninstall(self, client, w)

    def install_service(self, kind: str, timer: bool, start: bool, w: Any) -> dict[str, Any]:
        from soul.install import services

        return services.install(self, kind, timer, start, w)

    def uninstall_service(self, w: Any) -> dict[str, Any]:
        from soul.install import services

        return services.uninstall(self, w)

    # ---- methods: hygiene, import, export (issue 11)
    def append_many(self, op: str, fields_list: list[dict[str, Any]], message: str) -> list[dict[str, Any]]:
        """Append a batch of events (already guarded) in one write and one commit; for imports."""
        ms = now_ms()
        at = iso_from_ms(ms)
        events = []
        for fields in fields_list:
            event: dict[str, Any] = {"op": op, "id": fields.pop("id", None) or new_ulid(ms)}
            event.update(at=at, by=self.instance, v=store.SCHEMA_VERSION, **fields)
            events.append(event)
        path = store.append_events(self.home, self.instance, events)
        self.commit_if_enabled([path], message)
        return events

    def import_memories(self, fmt: str, path: Path, dry_run: bool = False, progress: Any = None) -> Any:
        """`soul import`: returns an `importers.ImportReport`."""
        from soul import importers

        return importers.run(self, fmt, path, dry_run=dry_run, progress=progress)

    def export_memories(self, fmt: str, out: Any, kind: str | None = None, since: str | None = None) -> int:
        """`soul export` to the text stream `out`; returns the number of memories written."""
        from soul import export

        return export.write(self, fmt, out, kind=kind, since=since)

    def dedupe(self, threshold: float | None = None, apply: bool = False) -> dict[str, Any]:
        """Near-duplicate clusters; with `apply`, one `memory.merge` per source (see soul/dedupe.py)."""
        from soul import dedupe

        return dedupe.run(self, threshold=threshold, apply=apply)

    def unmerge(self, memory_id: str) -> list[str]:
        """Undo a merge (of `memory_id`, or of everything merged into it); returns the sources."""
        from soul import dedupe

        return dedupe.unmerge(self, memory_id)

    # ---- methods: purge (issue 12)
    def purge(self, ids: list[str], match: str | None = None, yes: bool = False) -> dict[str, Any]:
        """Plan (and with `yes` apply) the removal of events from all history; see soul/purge."""
        from soul import purge

        return purge.run(self, ids, match, yes)

    # ------------------------------------------------------------------ status & doctor

    def status(self) -> dict[str, Any]:
        view = self.view()
        quarantined = store.quarantined(self.home)
        git = self._git_status()
        info: dict[str, Any] = {
            "home": str(self.home),
            "instance": self.instance,
            "memories": len(view.memories),
            "events": view.event_count,
            "quarantined": [q.__dict__ for q in quarantined],
            "git": git,
        }
        # Sections below are filled by the index, sync, daemon, instance and purge modules.
        # ---- status: index (issue 3)
        info["index"] = self.index_status()
        # ---- status: sync + daemon (issue 4)
        from soul import daemon as daemon_mod
        from soul import sync as sync_mod

        info["sync"] = sync_mod.local_status(self)
        info["daemon"] = daemon_mod.status(self)
        # ---- status: instances/sessions (issue 6)
        from soul import instances as _instances

        info["registered"] = _instances.is_registered(self)
        info["open_sessions"] = sum(1 for s in view.sessions.values() if "title" in s and s["status"] == "open")
        info["open_tasks"] = sum(1 for t in view.tasks.values() if "title" in t and t["status"] != "done")
        info["open_conflicts"] = sum(1 for c in view.conflicts if c["resolved"] is None)
        # ---- status: purge (issue 12)
        from soul import purge as purge_mod

        info["purge"] = purge_mod.status(self)
        return info

    def _git_status(self) -> dict[str, Any]:
        head = gitutil.head(self.home)
        remote = gitutil.run(["remote", "get-url", "origin"], self.home, check=False)
        dirty = gitutil.run(["status", "--porcelain"], self.home, check=False).stdout.splitlines()
        return {
            "head": head,
            "remote": _redact_url(remote.stdout.strip()) if remote.ok else None,
            "dirty": len(dirty),
            "merge_in_progress": self.merge_in_progress(),
        }

    def doctor(self, fix: bool = False) -> list[dict[str, Any]]:
        """Checks, each {name, ok, message, fix}; `fix` names the command that repairs it."""
        checks: list[dict[str, Any]] = []

        def add(name: str, ok: bool, message: str, fix: str | None = None) -> None:
            checks.append({"name": name, "ok": ok, "message": message, "fix": fix})

        try:
            version = subprocess.run(["git", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
            add("git", True, version)
        except (OSError, subprocess.TimeoutExpired):
            add("git", False, "git is not installed or does not run", "install git")
        fsck = gitutil.run(["fsck", "--no-progress", "--connectivity-only"], self.home, check=False, timeout=120)
        add("repository", fsck.ok, "git fsck clean" if fsck.ok else gitutil.first_line(fsck.stderr), None)
        try:
            config_mod.load_config(self.home)
            settings_mod.read(settings_mod.global_path(self.home))
            settings_mod.read(settings_mod.machine_path(self.home, self.instance))
            add("settings", True, "soul.toml and settings parse")
        except SoulError as exc:
            add("settings", False, exc.message, "fix the file named above by hand")
        quarantined = store.quarantined(self.home)
        add(
            "event logs",
            not quarantined,
            f"{len(quarantined)} bad line(s) quarantined in .soul/quarantine/" if quarantined else "all lines valid",
            "inspect .soul/quarantine/index.jsonl; the rest of the soul loads normally" if quarantined else None,
        )
        import platform

        add("instance", True, f"{self.instance} on {platform.node()}")
        # Sections below are filled by the modules that own each check.
        # ---- doctor: index + embedder (issue 3)
        from soul import index as index_mod

        for name, ok, message, hint in index_mod.doctor_checks(self):
            add(name, ok, message, hint)
        # ---- doctor: remote + daemon (issue 4)
        from soul import daemon as daemon_mod
        from soul import sync as sync_mod

        for name, ok, message, fix_hint in sync_mod.doctor_checks(self) + daemon_mod.doctor_checks(self):
            add(name, ok, message, fix_hint)
        # ---- doctor: token file (issue 5)
        from soul import events_client

        for name, ok, message, fix_hint in events_client.doctor_checks(self.home, self.config):
            add(name, ok, message, fix_hint)
        # ---- doctor: links + services (issue 7)
        from soul.install import Disk, clients, links, services

        for name, module in (("links", links), ("mcp clients", clients), ("service", services)):
            try:
                ok, message, hint = module.check(self, fix, Disk())
            except SoulError as exc:
                ok, message, hint = False, exc.message, exc.hint
            add(name, ok, message, hint)
        # ---- doctor: purge (issue 12)
        from soul import purge as purge_mod

        add("purge", *purge_mod.doctor_check(self))
        return checks


# ---------------------------------------------------------------------- helpers


def _clean_text(text: str) -> str:
    if not isinstance(text, str):
        raise UsageError("memory text must be a string")
    if "\x00" in text:
        raise UsageError("memory text contains a NUL byte")
    text = text.strip()
    if not text:
        raise UsageError("memory text is empty")
    if len(text.encode("utf-8")) > 2 * 1024 * 1024:
        raise UsageError("memory text is larger than 2 MiB")
    return text


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}", hint=f"use one of: {', '.join(KINDS)}")
    return kind


def _clean_label(value: str, what: str) -> str:
    value = value.strip()
    if not value or "\x00" in value or "\n" in value or len(value) > 200:
        raise UsageError(f"invalid {what} {value!r}")
    return value


def _summary(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    return first[:60] + ("…" if len(first) > 60 else "")


def _matches(mem: dict[str, Any], kind: str | None, tag: str | None, project: str | None, since: str | None) -> bool:
    if kind and mem["kind"] != kind:
        return False
    if tag and tag not in mem["tags"]:
        return False
    if project and mem.get("project") != project:
        return False
    if since:
        from soul.ids import parse_iso

        try:
            if parse_iso(mem["at"]) < parse_iso(since):
                return False
        except ValueError:
            raise UsageError(f"invalid --since {since!r}", hint="use a date like 2026-01-31") from None
    return True


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _redact_url(url: str) -> str:
    """Never show a password embedded in a remote URL."""
    import re

    return re.sub(r"//([^/@:]+):[^/@]*@", r"//\1:***@", url)
