"""`soul install service`: generated systemd units, launchd plists and cron lines, under a temp HOME.

Units are checked with `systemd-analyze verify` when it exists, and parsed in any case. `--start`
is never used here: it would talk to the real user's service manager."""

from __future__ import annotations

import configparser
import os
import plistlib
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from test_install_links import snapshot

from soul.core import Soul
from soul.install import Disk, Recorder, services

from conftest import run_soul


@pytest.fixture
def soul_home(tmp_path: Path) -> Path:
    """Initialised in-process (faster than conftest's CLI `soul init`, which test_cli covers)."""
    home = tmp_path / "soul"
    Soul.init(home, "alpha")
    return home


@pytest.fixture
def home() -> Path:
    return Path(os.environ["HOME"])


def parse_unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def verify(paths: list[Path]) -> None:
    """systemd's own checker: exit 0 and no complaint about our files (it only warns on bad keys)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return
    proc = subprocess.run([tool, "verify", *map(str, paths)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in proc.stderr.splitlines() if any(p.name in line for p in paths)]
    assert proc.returncode == 0 and not complaints, proc.stderr


def test_systemd_daemon_unit(core: Soul, home: Path) -> None:
    before = snapshot(home)
    report = services.install(core, "systemd", timer=False, start=False, w=Disk())
    path = home / ".config" / "systemd" / "user" / "soul.service"
    assert list(report["files"]) == [str(path)] and path.is_file()
    unit = parse_unit(path.read_text())
    assert unit["Service"]["Restart"] == "always"
    assert unit["Install"]["WantedBy"] == "default.target"
    words = shlex.split(unit["Service"]["ExecStart"])
    assert Path(words[0]).is_absolute() and os.access(words[0], os.X_OK)
    assert words[-6:] == ["--home", str(core.home), "--instance", "alpha", "daemon", "run"]
    verify([path])
    assert report["commands"][-1] == ["systemctl", "--user", "enable", "--now", "soul.service"]
    w = Disk()
    services.install(core, "systemd", timer=False, start=False, w=w)
    assert not any(op.startswith("write " + str(path)) for op in w.done)  # idempotent
    wants = path.parent / "default.target.wants" / "soul.service"
    wants.parent.mkdir()
    os.symlink(path, wants)  # what a manual `systemctl --user enable soul.service` leaves
    out = services.uninstall(core, Disk())
    assert out["removed"] == [str(path), str(wants)] and not out["stopped"]
    assert snapshot(home) == before


def test_systemd_timer_variant(core: Soul, home: Path) -> None:
    report = services.install(core, "systemd", timer=True, start=False, w=Disk())
    paths = [Path(p) for p in report["files"]]
    assert [p.name for p in paths] == ["soul-sync.service", "soul-sync.timer"]
    service, timer = (parse_unit(p.read_text()) for p in paths)
    assert service["Service"]["Type"] == "oneshot"
    assert shlex.split(service["Service"]["ExecStart"])[-1] == "sync"
    assert timer["Timer"]["OnUnitActiveSec"] == f"{core.config['sync']['interval']}s"
    assert timer["Timer"]["Unit"] == "soul-sync.service"
    verify(paths)
    assert report["commands"][-1][-1] == "soul-sync.timer"


def test_paths_with_spaces_and_percent_are_quoted(tmp_path: Path) -> None:
    odd = Soul.init(tmp_path / "my soul 100%", "alpha")
    text = next(iter(services.render_systemd(odd, timer=False).values()))
    line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    assert '"--home"' not in line and f'"{tmp_path}/my soul 100%%"' in line
    path = tmp_path / "check" / "soul.service"
    path.parent.mkdir()
    path.write_text(text)
    verify([path])
    assert services.systemd_quote('a"b\\c') == '"a\\"b\\\\c"' and services.systemd_quote("$HOME") == '"$$HOME"'


def test_launchd_plists(core: Soul) -> None:
    ((daemon_path, daemon_text),) = services.render_launchd(core, timer=False).items()
    plist = plistlib.loads(daemon_text.encode())
    assert daemon_path.name == "dev.soul.daemon.plist" and plist["Label"] == "dev.soul.daemon"
    assert plist["KeepAlive"] is True and plist["RunAtLoad"] is True
    assert plist["ProgramArguments"][-6:] == ["--home", str(core.home), "--instance", "alpha", "daemon", "run"]
    assert Path(plist["ProgramArguments"][0]).is_absolute()
    ((_, sync_text),) = services.render_launchd(core, timer=True).items()
    sync = plistlib.loads(sync_text.encode())
    assert sync["StartInterval"] == core.config["sync"]["interval"] and "KeepAlive" not in sync
    assert services.MARKER in sync_text


@pytest.fixture
def fake_crontab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in `crontab` (the real one edits the real user's table) storing into a file."""
    store = tmp_path / "crontab.txt"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "crontab"
    script.write_text(
        "#!/bin/sh\n"
        f'STORE="{store}"\n'
        'if [ "$1" = "-l" ]; then [ -f "$STORE" ] || { echo "no crontab for you" >&2; exit 1; }; cat "$STORE"; '
        'elif [ "$1" = "-" ]; then cat > "$STORE"; else exit 2; fi\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return store


def test_cron_line_install_idempotent_uninstall_restores(core: Soul, fake_crontab: Path) -> None:
    original = "MAILTO=me\n0 3 * * * /usr/bin/backup\n"
    fake_crontab.write_text(original)
    report = services.install(core, "cron", timer=False, start=False, w=Disk())
    line = report["cron"]
    assert fake_crontab.read_text() == original + line + "\n"
    fields = line.split(" ", 5)
    assert fields[:5] == ["*", "*", "*", "*", "*"]
    words = shlex.split(fields[5], comments=True)
    assert Path(words[0]).is_absolute() and words[-7:-2] == ["--home", str(core.home), "--instance", "alpha", "sync"]
    assert words[-2:] == [f">>{core.home}/.soul/sync.log", "2>&1"]
    services.install(core, "cron", timer=False, start=False, w=Disk())
    assert fake_crontab.read_text().count(services.CRON_TAG) == 1
    services.uninstall(core, Disk())
    assert fake_crontab.read_text() == original


def test_dry_run_prints_and_writes_nothing(soul_home: Path, home: Path) -> None:
    before = snapshot(home)
    proc = run_soul("install", "service", "--systemd", "--dry-run", home=soul_home)
    assert "Restart=always" in proc.stdout and "would write" in proc.stderr
    assert snapshot(home) == before
    rec = Recorder()
    services.install(Soul.open(soul_home, "alpha"), "systemd", timer=True, start=False, w=rec)
    assert any("soul-sync.timer" in op for op in rec.done) and snapshot(home) == before
    both = run_soul("install", "service", "--systemd", "--cron", home=soul_home, check=False)
    assert both.returncode == 2


def test_foreign_file_is_backed_up(core: Soul, home: Path) -> None:
    path = home / ".config" / "systemd" / "user" / "soul.service"
    path.parent.mkdir(parents=True)
    path.write_text("[Service]\nExecStart=/bin/true\n")
    report = services.install(core, "systemd", timer=False, start=False, w=Disk())
    (backup,) = report["backups"]
    assert Path(backup).read_text() == "[Service]\nExecStart=/bin/true\n"


def test_doctor_service_check_and_fix(core: Soul, home: Path) -> None:
    check = next(c for c in core.doctor() if c["name"] == "service")
    assert check["ok"] and "no service" in check["message"]
    services.install(core, "systemd", timer=False, start=False, w=Disk())
    assert next(c for c in core.doctor() if c["name"] == "service")["ok"]
    path = home / ".config" / "systemd" / "user" / "soul.service"
    path.write_text(path.read_text().replace(str(core.home), "/moved/away"))
    stale = next(c for c in core.doctor() if c["name"] == "service")
    assert not stale["ok"] and "soul.service" in stale["message"] and stale["fix"]
    assert next(c for c in core.doctor(fix=True) if c["name"] == "service")["ok"]
    assert str(core.home) in path.read_text()


def test_start_and_stop_call_the_service_manager(core: Soul, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--start runs systemctl; uninstall stops only what install started (a stand-in systemctl logs calls)."""
    log = tmp_path / "systemctl.log"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    services.install(core, "systemd", timer=True, start=True, w=Disk())
    assert log.read_text().splitlines() == ["--user daemon-reload", "--user enable --now soul-sync.timer"]
    out = services.uninstall(core, Disk())
    assert "systemctl --user disable --now soul-sync.timer" in out["stopped"]
    assert "--user disable --now soul-sync.timer" in log.read_text().splitlines()
    log.unlink()
    services.install(core, "systemd", timer=False, start=False, w=Disk())
    services.uninstall(core, Disk())
    assert not log.exists()  # not started by soul: not stopped by soul
