"""Disk faults during `soul remember`: a full filesystem, a file-size limit, a failing fsync.

Each must end in a non-zero exit with a `soul:` message, no id printed (no acknowledgement) and
no trace of the event in the log; the next write after the fault must work and the log must load.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reliability.conftest import Ledger
from reliability.helpers import SOUL_BIN, all_lines, init_soul, run_soul, soul_env
from soul import store

TEXT = "a memory written while the disk misbehaves " + "lorem ipsum " * 800


def remember(home: Path, text: str, env: dict[str, str] | None = None,
             preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [SOUL_BIN, "--home", str(home), "--instance", "alpha", "remember", "--json", "-"],
        input=text,
        capture_output=True,
        text=True,
        env=env or soul_env(),
        preexec_fn=preexec,
        timeout=120,
    )


def assert_refused(home: Path, proc: subprocess.CompletedProcess[str], marker: str) -> None:
    assert proc.returncode != 0, "a write on a failing disk was acknowledged"
    assert proc.stdout.strip() == "", f"an id was printed: {proc.stdout!r}"
    assert proc.stderr.startswith("soul:"), proc.stderr
    assert not any(marker.encode() in line for line in all_lines(home)), "the refused event is in the log"
    for path in store.log_files(home):
        assert path.read_bytes().endswith(b"\n") or path.stat().st_size == 0


def assert_recovers(home: Path) -> None:
    proc = remember(home, "written after the fault")
    assert proc.returncode == 0, proc.stderr
    memory_id = json.loads(proc.stdout)["id"]
    events = [e for path in store.log_files(home) for e in store.read_log(home, path)[0]]
    assert memory_id in {e["id"] for e in events}
    assert store.quarantined(home) == []


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode(errors='replace').strip()})")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=60)


def fill(directory: Path) -> None:
    """Fill the filesystem under `directory` to the last byte (unbuffered: no flush at close)."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * chunk) == chunk:
                    pass
    finally:
        os.close(fd)


def test_full_disk_refuses_and_leaves_no_trace(tmp_path: Path, ledger: Ledger) -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root and mount(8) for a tiny tmpfs")
    home = init_soul(tmp_path / "soul")
    logs = home / "memories" / "alpha"
    with tiny_tmpfs(logs, "256k"):
        assert remember(home, "fits before the disk fills").returncode == 0
        fill(logs)
        proc = remember(home, TEXT)
        assert_refused(home, proc, "while the disk misbehaves")
        assert "disk full" in proc.stderr or os.strerror(errno.ENOSPC).lower() in proc.stderr.lower()
        (logs / "filler").unlink()
        assert_recovers(home)
    ledger.add("test_disk_faults", faults=1, acknowledged=2, data_lost=0)


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_file_size_limit_efbig_refuses(tmp_path: Path, ledger: Ledger) -> None:
    home = init_soul(tmp_path / "soul")
    run_soul("remember", "a first memory so the log exists", home=home, env=soul_env())
    size = store.log_files(home)[0].stat().st_size
    proc = remember(home, TEXT, preexec=_limit_file_size(size + 512))
    assert_refused(home, proc, "while the disk misbehaves")
    assert store.log_files(home)[0].stat().st_size == size, "the short write was not rolled back"
    assert_recovers(home)
    ledger.add("test_disk_faults", faults=1, acknowledged=2, data_lost=0)


SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* fsync/fdatasync fail with EIO on *.jsonl files (the event logs); everything else is real. */
static int is_log(int fd) {
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = 0;
    return n > 6 && strcmp(target + n - 6, ".jsonl") == 0;
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (is_log(fd)) { errno = EIO; return -1; }
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (is_log(fd)) { errno = EIO; return -1; }
    return real(fd);
}
"""


@pytest.fixture(scope="module")
def fsync_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("gcc"):
        pytest.skip("gcc not available to build the fsync shim")
    base = tmp_path_factory.mktemp("shim")
    (base / "shim.c").write_text(SHIM)
    out = base / "failfsync.so"
    proc = subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(out), str(base / "shim.c"), "-ldl"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"could not build the fsync shim: {proc.stderr[-300:]}")
    return out


def test_failing_fsync_eio_refuses(tmp_path: Path, fsync_shim: Path, ledger: Ledger) -> None:
    home = init_soul(tmp_path / "soul")
    run_soul("remember", "a first memory so the log exists", home=home, env=soul_env())
    size = store.log_files(home)[0].stat().st_size
    proc = remember(home, TEXT, env=soul_env(LD_PRELOAD=str(fsync_shim)))
    assert_refused(home, proc, "while the disk misbehaves")
    assert "sync" in proc.stderr.lower() or "input/output" in proc.stderr.lower()
    assert store.log_files(home)[0].stat().st_size == size
    assert_recovers(home)
    ledger.add("test_disk_faults", faults=1, acknowledged=2, data_lost=0)


def test_failing_fsync_on_a_new_log_file_refuses(tmp_path: Path, fsync_shim: Path, ledger: Ledger) -> None:
    """The very first event of a month creates the file; a failed fsync must not leave a half event."""
    home = init_soul(tmp_path / "soul")
    proc = remember(home, TEXT, env=soul_env(LD_PRELOAD=str(fsync_shim)))
    assert_refused(home, proc, "while the disk misbehaves")
    assert_recovers(home)
    ledger.add("test_disk_faults", faults=1, acknowledged=1, data_lost=0)
