"""Bad input, fuzzed with hypothesis: the JSONL reader, the TOML merge, the secret guard, CLI values.

MCP tool arguments are fuzzed in test_injection.py (one real server for all calls).
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliability.conftest import Ledger
from reliability.helpers import SOUL_BIN, init_soul, memory_events, soul_env
from soul import secrets, store

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

# ---------------------------------------------------------------------- the JSONL reader

# Quarantining fsyncs; on tmpfs that is free, so the fuzzer spends its time on inputs.
SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None

_EVENT = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["memory.add", "memory.forget", "x"]),
        "id": st.text("0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=1, max_size=26),
        "at": st.just("2026-01-01T00:00:00.000Z"),
        "by": st.sampled_from(["alpha", "beta"]),
    },
    optional={"text": st.text(max_size=200)},
)
_LINE = st.one_of(
    _EVENT.map(lambda e: store.encode_event(e)),
    st.binary(max_size=200),
    st.sampled_from([b"\n", b"{}\n", b"[]\n", b"null\n", b'{"op":1}\n', b"\xff\xfe\n", b'{"a":' * 50 + b"\n"]),
)


@FUZZ
@given(chunks=st.lists(_LINE, max_size=30), tail=st.binary(max_size=100))
def test_read_log_never_raises_and_accounts_for_every_line(chunks: list[bytes], tail: bytes) -> None:
    data = b"".join(chunks) + tail
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        path = home / "memories" / "alpha" / "2026-01.jsonl"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        events, end = store.read_log(home, path)
        bad = {q.sha256 for q in store.quarantined(home)}
        parts = data.split(b"\n")
        lines = [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
        loaded = 0
        for raw in lines:
            if not raw.endswith(b"\n"):
                assert end == len(data) - len(raw)  # a last line without newline is never half-read
                if raw.strip():
                    assert hashlib.sha256(raw).hexdigest() in bad
                continue
            if not raw[:-1].strip():
                continue
            if store.parse_line(raw[:-1]) is not None:
                loaded += 1
            else:
                assert hashlib.sha256(raw).hexdigest() in bad, raw
        assert loaded == len(events)
        for q in store.quarantined(home):
            assert (store.quarantine_dir(home) / q.saved_as).read_bytes() in lines


def test_read_log_fuzz_counts(ledger: Ledger) -> None:
    ledger.add("test_fuzz", jsonl_examples=FUZZ.max_examples)


# ---------------------------------------------------------------------- the TOML three-way merge

_KEYS = st.sampled_from(["a", "b", "c", "editor", "tab_width", "x-y", "z_1"])
_SCALAR = st.one_of(
    st.integers(-(2**40), 2**40), st.booleans(), st.text(max_size=20), st.lists(st.integers(0, 9), max_size=3)
)
_TABLE = st.recursive(
    st.dictionaries(_KEYS, _SCALAR, max_size=4),
    lambda children: st.dictionaries(_KEYS, st.one_of(_SCALAR, children), max_size=4),
    max_leaves=12,
)


def _dump(data: dict[str, Any]) -> str:
    import tomlkit

    return tomlkit.dumps(data)


def _merge(base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    import tomllib

    from soul import merge

    text, _ = merge.merge_toml(_dump(base), _dump(ours), _dump(theirs), "settings/global.toml", merge.Sides())
    return tomllib.loads(text or "")


@FUZZ
@given(base=_TABLE, x=_TABLE)
def test_merge_of_identical_sides_is_that_side(base: dict[str, Any], x: dict[str, Any]) -> None:
    assert _merge(base, x, x) == x


@FUZZ
@given(base=_TABLE, y=_TABLE)
def test_merge_takes_the_only_changed_side(base: dict[str, Any], y: dict[str, Any]) -> None:
    assert _merge(base, base, y) == y
    assert _merge(base, y, base) == y


@FUZZ
@given(base=_TABLE, x=_TABLE, y=_TABLE)
def test_merge_always_parses_and_keeps_keys_only_one_side_added(
    base: dict[str, Any], x: dict[str, Any], y: dict[str, Any]
) -> None:
    result = _merge(base, x, y)
    for key in x.keys() - base.keys() - y.keys():
        assert key in result


def test_merge_fuzz_counts(ledger: Ledger) -> None:
    ledger.add("test_fuzz", toml_merge_examples=3 * FUZZ.max_examples)


# ---------------------------------------------------------------------- the secret guard: linear time

_GUARD_ALPHABET = "aA0+/=_-:.@ '\"\t$\\{}[]()<>?&%#!,;|~`*xX9zZ"
_ADVERSARIAL = [
    "a" * 4000,
    "=" * 4000,
    "key=" + "a" * 4000,
    "password: " + "'" * 4000,
    "-----BEGIN " * 400,
    "https://" + "a:" * 2000 + "@",
    "Authorization: Bearer " + "a." * 2000,
    "AKIA" + "A" * 4000,
    "ghp_" * 1000,
    "xoxb-" + "1-" * 2000,
    "${env:" * 700,
    "aB3+" * 1000,
    " ".join(["token"] * 800),
    "sk-" + "-" * 4000,
    ("a" * 39 + " ") * 100,
    "eyJ" + "a" * 2000 + "." + "b" * 2000,
    "@" * 4000,
    "mongodb://" + "u" * 2000 + ":" + "p" * 2000,
]


def _cpu_time(line: str, repeat: int = 5) -> float:
    """Median CPU time of one scan (CPU, not wall: the machine may be loaded)."""
    times = []
    for _ in range(repeat):
        start = time.thread_time()
        secrets.scan(line)
        times.append(time.thread_time() - start)
    return statistics.median(times)


def test_secret_guard_is_linear_on_adversarial_lines(ledger: Ledger) -> None:
    secrets.scan("warm up the scanner")
    slow = {line[:40]: _cpu_time(line) for line in _ADVERSARIAL}
    worst = max(slow.values())
    assert worst < 0.010, (
        f"secret guard took {worst * 1000:.1f} ms on a line: {sorted(slow.items(), key=lambda i: -i[1])[:3]}"
    )
    ledger.add("test_fuzz", guard_adversarial_lines=len(_ADVERSARIAL))
    ledger.note("test_fuzz", f"secret guard: worst hand-made line {worst * 1000:.2f} ms CPU (limit 10 ms)")


_worst_generated: list[tuple[float, str]] = []


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    unit=st.text(_GUARD_ALPHABET, min_size=1, max_size=12),
    repeat=st.integers(1, 400),
    prefix=st.sampled_from(["", "token=", "password: ", "Bearer ", "https://u:", "AKIA", "secret_key = '", "ghp_"]),
)
def test_secret_guard_generated_lines(unit: str, repeat: int, prefix: str) -> None:
    line = (prefix + unit * repeat)[:4000]
    start = time.thread_time()
    secrets.scan(line)
    _worst_generated.append((time.thread_time() - start, line))
    _worst_generated.sort(key=lambda item: -item[0])
    del _worst_generated[5:]


def test_secret_guard_worst_generated_lines_stay_under_10ms(ledger: Ledger) -> None:
    if not _worst_generated:
        pytest.skip("the generating test did not run")
    medians = [(_cpu_time(line, repeat=7), line) for _, line in _worst_generated]
    worst, line = max(medians)
    assert worst < 0.010, f"{worst * 1000:.1f} ms on {line[:80]!r}"
    ledger.add("test_fuzz", guard_generated_lines=300)
    ledger.note("test_fuzz", f"secret guard: worst generated line {worst * 1000:.2f} ms CPU (limit 10 ms)")


# ---------------------------------------------------------------------- CLI values git must never see as options

HOSTILE = ["--output=x", "--upload-pack=touch PWNED", "-rf", "--exec=x", "-c", "core.pager=x", "--", "-"]
GIT_SPY = """#!/bin/sh
for arg in "$@"; do printf '%s\\036' "$arg" >> "$SPY_LOG"; done
printf '\\035' >> "$SPY_LOG"
exec {git} "$@"
"""


@pytest.fixture
def spied(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A soul whose git is a wrapper logging every argv, to check where user values land."""
    import shutil

    bindir = tmp_path / "spybin"
    bindir.mkdir()
    spy = bindir / "git"
    spy.write_text(GIT_SPY.format(git=shutil.which("git")))
    spy.chmod(0o755)
    log = tmp_path / "git-argv.log"
    env = soul_env(PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", SPY_LOG=str(log))
    return init_soul(tmp_path / "soul"), env


def _git_calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    raw = log.read_text(errors="replace")
    return [call.split("\x1e")[:-1] for call in raw.split("\x1d") if call]


def _soul(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SOUL_BIN, "--home", str(home), "--instance", "alpha", *args], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip


def test_option_like_values_land_as_text_and_never_reach_git_as_options(
    spied: tuple[Path, dict[str, str]], ledger: Ledger
) -> None:
    home, env = spied
    cases = 0
    for value in ["--output=x", "--upload-pack=touch PWNED", "-rf", "--exec=x"]:
        proc = _soul(home, env, "remember", "--json", "--tag", value, "--project", value, "--", value)
        assert proc.returncode == 0, proc.stderr
        cases += 1
    stored = {(e["text"], tuple(e["tags"]), e.get("project")) for e in memory_events(home)}
    for value in ["--output=x", "--upload-pack=touch PWNED", "-rf", "--exec=x"]:
        assert (value, (value,), value) in stored
    for args in (["show", "--", "--output=x"], ["forget", "--", "--upload-pack=touch PWNED"], ["unset", "--", "-rf"]):
        proc = _soul(home, env, *args)
        assert proc.returncode in (1, 2) and proc.stderr.startswith("soul:"), proc.stderr
        cases += 1
    log = Path(env["SPY_LOG"])
    calls = _git_calls(log)
    assert calls, "the git spy saw nothing"
    for argv in calls:
        for i, arg in enumerate(argv):
            if arg in HOSTILE[:4]:
                before = argv[:i]
                guarded = "--" in before or "--end-of-options" in before or (before and before[-1] in ("-m", "-F"))
                assert guarded, f"git saw a user value as an option: {argv}"
    assert not (home / "PWNED").exists() and not (home / "x").exists()
    ledger.add("test_fuzz", cli_cases=cases, git_calls_checked=len(calls))


@pytest.mark.parametrize(
    "args",
    [
        ["--instance", "../evil", "remember", "x"],
        ["--instance", "a/../../b", "remember", "x"],
        ["get", "../../etc/passwd"],
        ["set", "../x", "1"],
        ["set", "--", "--output=x", "1"],
        ["get", "--", "--output=x"],
    ],
)
def test_path_like_and_option_like_names_are_refused_with_exit_2(
    soul_home: Path, args: list[str], ledger: Ledger
) -> None:
    before = sorted(p.relative_to(soul_home).as_posix() for p in soul_home.rglob("*") if ".git/" not in p.as_posix())
    proc = subprocess.run([SOUL_BIN, "--home", str(soul_home), *args], capture_output=True, text=True,
                          env=soul_env(), timeout=120)  # fmt: skip
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.startswith("soul:")
    after = sorted(p.relative_to(soul_home).as_posix() for p in soul_home.rglob("*") if ".git/" not in p.as_posix())
    assert [p for p in after if p not in before and not p.startswith(".soul/")] == []
    assert not (soul_home.parent / "evil").exists()
    ledger.add("test_fuzz", cli_cases=1)


@pytest.mark.parametrize("payload", [b"a\x00b", b"\x00", b"\xff\xfe not utf-8", b"   \n\t "])
def test_bad_bytes_on_stdin_are_refused_with_exit_2(soul_home: Path, payload: bytes, ledger: Ledger) -> None:
    proc = subprocess.run([SOUL_BIN, "--home", str(soul_home), "remember", "-"], input=payload,
                          capture_output=True, env=soul_env(), timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(b"soul:")
    assert memory_events(soul_home) == []
    ledger.add("test_fuzz", cli_cases=1)
