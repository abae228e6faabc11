"""Installing soul into a machine: dotfile links, MCP client entries, background services.

Every installer computes a plan first and then executes it against a `Writer`. `Disk` changes the
filesystem; `Recorder` only records what would change, so `--dry-run` runs exactly the code that
the real install runs and the preview cannot drift from the action (STYLE.md point 5).

Invariant: nothing here writes inside the soul repository except `.soul/` (local state such as
the links manifest); everything else written lives under the user's home.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soul import fsutil
from soul.ids import now_iso

if TYPE_CHECKING:
    from soul.core import Soul


@dataclass
class Writer:
    """The filesystem operations installers use; `Disk` applies them, `Recorder` only lists them."""

    dry_run: bool = False
    done: list[str] = field(default_factory=list)

    def _note(self, text: str) -> None:
        self.done.append(text)

    def mkdir(self, path: Path) -> None:
        self._note(f"mkdir {path}")

    def rmdir(self, path: Path) -> None:
        self._note(f"rmdir {path}")

    def rename(self, src: Path, dst: Path) -> None:
        self._note(f"move {src} -> {dst}")

    def remove(self, path: Path) -> None:
        self._note(f"remove {path}")

    def symlink(self, source: Path, target: Path) -> bool:
        """Link `target` -> `source`; returns False when the platform refused and a copy was made."""
        self._note(f"link {target} -> {source}")
        return True

    def copy(self, source: Path, target: Path) -> None:
        self._note(f"copy {source} -> {target}")

    def write(self, path: Path, data: str, mode: int = 0o644) -> None:
        self._note(f"write {path}")

    def run(self, cmd: list[str], stdin: str | None = None) -> str:
        """Run a system tool (crontab, systemctl, launchctl); returns its stdout."""
        self._note("run " + " ".join(cmd))
        return ""


class Recorder(Writer):
    """Records the operations of a plan without touching the filesystem (`--dry-run`)."""

    def __init__(self) -> None:
        super().__init__(dry_run=True)


class Disk(Writer):
    """Applies operations to the filesystem; each one is also recorded for the report."""

    def mkdir(self, path: Path) -> None:
        path.mkdir()
        super().mkdir(path)

    def rmdir(self, path: Path) -> None:
        path.rmdir()
        super().rmdir(path)

    def rename(self, src: Path, dst: Path) -> None:
        # rename, not copy: a backup keeps its content, mode, owner and times exactly.
        os.rename(src, dst)
        super().rename(src, dst)

    def remove(self, path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        super().remove(path)

    def symlink(self, source: Path, target: Path) -> bool:
        try:
            os.symlink(source, target, target_is_directory=source.is_dir())
        except OSError as exc:
            # Some filesystems (FAT, some network mounts) and sandboxes refuse symlinks; a copy
            # still installs the file. Any other error (the target appeared meanwhile) is real.
            if exc.errno not in (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            self.copy(source, target)
            return False
        return super().symlink(source, target)

    def copy(self, source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target)
        super().copy(source, target)

    def write(self, path: Path, data: str, mode: int = 0o644) -> None:
        fsutil.atomic_write(path, data, mode=mode)
        super().write(path, data, mode)

    def run(self, cmd: list[str], stdin: str | None = None) -> str:
        import subprocess

        from soul.errors import SoulError

        try:
            proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SoulError(f"could not run {cmd[0]}: {exc}") from None
        if proc.returncode != 0:
            raise SoulError(f"{' '.join(cmd)} failed: {(proc.stderr or proc.stdout).strip()[:300]}")
        super().run(cmd, stdin)
        return proc.stdout


def writer(dry_run: bool) -> Writer:
    return Recorder() if dry_run else Disk()


def soul_command() -> list[str]:
    """The command that starts this soul from a minimal environment (MCP clients, systemd, cron).

    The running executable when it is `soul`, else the `soul` beside this Python, else `soul` on
    PATH, else this Python with `-m soul`; always absolute, because none of those callers has the
    user's shell PATH."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "soul":
        found = argv0 if "/" in sys.argv[0] else Path(shutil.which(sys.argv[0]) or argv0)
        if found.is_file():
            return [str(found.absolute())]
    beside = Path(sys.executable).with_name("soul")
    if beside.is_file() and os.access(beside, os.X_OK):
        # The script installed with this interpreter: right even when its venv is not on PATH.
        return [str(beside.absolute())]
    on_path = shutil.which("soul")
    if on_path:
        return [str(Path(on_path).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "soul"]


def soul_args(home: Path, instance: str) -> list[str]:
    """Global options that pin the soul and instance explicitly (never from exported variables)."""
    return ["--home", str(home), "--instance", instance]


def backup_path(path: Path, directory: Path | None = None) -> Path:
    """A free name `<name>.soul-backup-<UTC timestamp>` beside `path` (or in `directory`)."""
    stamp = now_iso().replace(":", "").replace("-", "").replace(".", "")
    where = directory if directory is not None else path.parent
    candidate = where / f"{path.name}.soul-backup-{stamp}"
    n = 1
    while candidate.exists() or candidate.is_symlink():
        candidate = where / f"{path.name}.soul-backup-{stamp}-{n}"
        n += 1
    return candidate


def user_home() -> Path:
    """The user's home; `~` in [links] targets and client config paths are relative to it."""
    return Path(os.path.expanduser("~"))


def missing_parents(target: Path) -> list[Path]:
    """Directories to create above `target`, outermost first; a file in the way is refused."""
    from soul.errors import UsageError

    missing: list[Path] = []
    parent = target.parent
    while not (parent.exists() or parent.is_symlink()):
        missing.append(parent)
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{parent} is in the way of {target} and is not a directory")
    return list(reversed(missing))


def read_state(soul: Soul, name: str) -> dict[str, Any]:
    """An installer's record of what it did, in `.soul/<name>`; unreadable counts as empty."""
    try:
        data = json.loads((soul.state_dir / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
