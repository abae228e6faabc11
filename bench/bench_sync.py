"""Sync speed through a bare remote on disk (issue 4).

- `soul sync` with nothing to do: in-process `Soul.sync()` and the whole `soul sync` process
  (target < 300 ms), next to the floor of a bare `git fetch` of the same remote.
- `soul sync` that receives 100 memories (100 commits, one per `soul remember` on the other side).
- Time from `soul remember` on A returning to the memory being in B's view (recallable), both
  daemons running with `[sync] interval = 2`; `--default-interval` also measures it at 60 s.

Usage: python bench/bench_sync.py [--repeat N] [--latency-samples N] [--default-interval]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soul.core import Soul

from common import SOUL, print_table, summarize, time_call, time_process, write_results


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def pair(root: Path, interval: int | None = None) -> tuple[Soul, Soul, Path]:
    remote = root / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    a = Soul.init(root / "a", "alpha", remote=str(remote))
    if interval is not None:
        toml = a.home / "soul.toml"
        toml.write_text(toml.read_text().replace("interval = 60", f"interval = {interval}"))
        a.commit_all()
    assert a.sync().status == "synced"
    b = Soul.join(str(remote), root / "b", "beta")
    assert b.sync().status == "synced"
    assert a.sync().status == "synced"  # A takes B's join commit, so what follows is a fast-forward
    return a, b, remote


def bench_noop(root: Path, repeat: int) -> dict[str, Any]:
    a, _, _ = pair(root / "noop")
    a.remember("something so the log exists")
    a.sync()
    return {
        "git fetch, nothing new (floor)": time_process(["git", "fetch", "-q", "origin"], repeat, cwd=a.home),
        "Soul.sync() nothing to do (in-process)": time_call(lambda: a.sync(), repeat),
        "soul sync nothing to do (process)": time_process([SOUL, "--home", str(a.home), "sync"], repeat),
    }


def bench_incoming(root: Path, repeat: int) -> dict[str, Any]:
    samples_api: list[float] = []
    samples_cli: list[float] = []
    for i in range(repeat):
        a, b, _ = pair(root / f"in{i}")
        for cli in (False, True):
            for n in range(100):
                a.remember(f"incoming memory {n} of round {i} {cli}")
            a.sync()
            start = time.perf_counter()
            if cli:
                subprocess.run([SOUL, "--home", str(b.home), "sync"], check=True, capture_output=True)
                samples_cli.append(time.perf_counter() - start)
            else:
                result = b.sync()
                samples_api.append(time.perf_counter() - start)
                assert result.received >= 100, result
    return {
        "Soul.sync() receiving 100 memories (in-process)": summarize(samples_api),
        "soul sync receiving 100 memories (process)": summarize(samples_cli),
    }


def bench_latency(root: Path, interval: int, samples: int) -> dict[str, Any]:
    """Seconds from `soul remember` on A returning to the memory being in B's view, and to B's
    `recall` (through B's warm server when its daemon hosts one) returning it."""
    a, b, _ = pair(root / f"lat{interval}", interval=interval)
    for soul in (a, b):
        subprocess.run([SOUL, "--home", str(soul.home), "daemon", "start"], check=True, capture_output=True)
    in_view: list[float] = []
    recallable: list[float] = []
    missed = 0
    try:
        time.sleep(3)
        reader = Soul.open(b.home, "beta")
        for n in range(samples):
            marker = f"zq{os.getpid()}x{n}w{interval}"
            cmd = [SOUL, "--home", str(a.home), "remember", f"latency probe {marker}", "--json"]
            memory_id = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["id"]
            start = time.perf_counter()
            deadline = start + max(30, 4 * interval)
            while time.perf_counter() < deadline and reader.view().memory(memory_id) is None:
                time.sleep(0.02)
            in_view.append(time.perf_counter() - start)
            while time.perf_counter() < deadline and not any(h["id"] == memory_id for h in reader.recall(marker, k=3)):
                time.sleep(0.05)
            if any(h["id"] == memory_id for h in reader.recall(marker, k=3)):
                recallable.append(time.perf_counter() - start)
            else:
                missed += 1
            time.sleep(0.5 + (n % 3) * 0.37)  # desynchronise from the daemons' ticks
    finally:
        for soul in (a, b):
            subprocess.run([SOUL, "--home", str(soul.home), "daemon", "stop"], capture_output=True)
    out: dict[str, Any] = {"in_view": summarize(in_view), "missed_recall": missed}
    if recallable:
        out["recallable"] = summarize(recallable)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--latency-samples", type=int, default=10)
    parser.add_argument("--default-interval", action="store_true", help="also measure at the 60 s default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.setdefault("GIT_CONFIG_GLOBAL", str(root / "gitconfig"))
        noop = bench_noop(root, args.repeat)
        incoming = bench_incoming(root, max(3, args.repeat // 3))
        latency = {"daemons at 2 s": bench_latency(root, 2, args.latency_samples)}
        if args.default_interval:
            latency["daemons at 60 s"] = bench_latency(root, 60, max(3, args.latency_samples // 3))
    rows = [(k, v, "< 300 ms" if "process" in k and "nothing" in k else "") for k, v in {**noop, **incoming}.items()]
    for name, lat in latency.items():
        rows.append((f"remember on A -> in B's view, {name}", lat["in_view"], ""))
        if "recallable" in lat:
            rows.append(
                (f"remember on A -> recallable on B, {name}", lat["recallable"], f"missed {lat['missed_recall']}")
            )
    print_table("soul sync", rows)
    path = write_results("sync", {"noop": noop, "incoming_100": incoming, "latency": latency})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
