"""`soul purge` on histories of N commits (one memory per commit, 1,000 per monthly log), the worst
case for the rewrite: the purged memory is the 10th, so every later version of its log is filtered.

Measures, in-process: the plan (dry run), the whole purge on a soul without a remote, a replica
following the purge (`on_fetch` after a fetch), and the per-sync cost of the hooks when there is
nothing to follow (`on_fetch` + `assert_can_push` with one purge recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, summarize, time_call, write_results

PER_MONTH = 1000


def git(repo: Path, *args: str, data: bytes | None = None) -> str:
    out = subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True, check=True)
    return out.stdout.decode()


def build(home: Path, n: int) -> str:
    """A soul whose history has `n` remember commits, made with fast-import; returns the secret id."""
    from soul.core import Soul

    Soul.init(home, "alpha")
    stream: list[bytes] = [b"reset refs/heads/main\nfrom refs/heads/main^0\n\n"]
    logs: dict[str, bytes] = {}
    secret = ""
    for i in range(n):
        month = f"2026-{1 + (i // PER_MONTH) % 12:02d}"
        mid = f"01BENCH{i:019d}"
        text = "Zanzibar secret" if i == 10 else f"memory {i} about the deploy pipeline and its many steps"
        secret = mid if i == 10 else secret
        event = {"op": "memory.add", "id": mid, "at": f"{month}-01T00:00:00.000Z", "by": "alpha", "v": 1}
        event.update({"text": text, "kind": "note", "tags": []})
        path = f"memories/alpha/{month}.jsonl"
        logs[path] = logs.get(path, b"") + (json.dumps(event) + "\n").encode()
        msg = f"remember {text}\n".encode()
        stream.append(
            b"commit refs/heads/main\ncommitter b <b@b> %d +0000\ndata %d\n%s" % (1_700_000_000 + i, len(msg), msg)
            + b"M 100644 inline %s\ndata %d\n%s\n\n" % (path.encode(), len(logs[path]), logs[path])
        )
    git(home, "fast-import", "--quiet", data=b"".join(stream))
    git(home, "reset", "-q", "--hard", "main")
    return secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    data: dict[str, object] = {}
    for n in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp) / "base"
            secret = build(base, n)
            copies = []
            for r in range(args.repeat):
                copy = Path(tmp) / f"c{r}"
                shutil.copytree(base, copy, symlinks=True)
                copies.append(copy)
            plan_t, apply_t = _plan_and_apply(base, copies, secret)
            follow_t, hooks_t = _follow(Path(tmp), base, secret, args.repeat)
        for name, stats in (("plan", plan_t), ("purge --yes", apply_t), ("follow", follow_t), ("hooks", hooks_t)):
            rows.append((f"{name} ({n} commits)", stats, ""))
            data[f"{name} n={n}"] = stats
    print_table("soul purge", rows)
    print(write_results("purge", {"results": data}))


def _plan_and_apply(base: Path, copies: list[Path], secret: str) -> tuple[dict[str, float], dict[str, float]]:
    from soul import purge
    from soul.core import Soul

    plan_t = time_call(lambda: purge.plan(Soul.open(base, "alpha"), [secret], None), len(copies))
    it = iter(copies)
    apply_t = time_call(lambda: purge.run(Soul.open(next(it), "alpha"), [secret], None, True), len(copies))
    return plan_t, apply_t


def _follow(tmp: Path, base: Path, secret: str, repeat: int) -> tuple[dict[str, float], dict[str, float]]:
    """A replica with the old history fetching a purged remote and following it."""
    from soul import purge
    from soul.core import Soul

    remote = tmp / "remote.git"
    git(tmp, "clone", "-q", "--bare", str(base), str(remote))
    origin = tmp / "origin"
    git(tmp, "clone", "-q", str(remote), str(origin))
    replicas = []
    for r in range(repeat):
        replica = tmp / f"replica{r}"
        git(tmp, "clone", "-q", str(remote), str(replica))
        Soul.init(replica, f"r{r}")
        replicas.append(replica)
    Soul.init(origin, "alpha")
    purge.run(Soul.open(origin, "alpha"), [secret], None, True)
    samples = []
    for replica in replicas:
        git(replica, "fetch", "-q", "origin")
        soul = Soul.open(replica, replica.name)
        import time

        start = time.perf_counter()
        purge.on_fetch(soul, "refs/remotes/origin/main")
        samples.append(time.perf_counter() - start)
        git(replica, "merge", "-q", "--no-edit", "refs/remotes/origin/main")
    soul = Soul.open(replicas[0], replicas[0].name)

    def hooks() -> None:
        purge.on_fetch(soul, "refs/remotes/origin/main")
        purge.assert_can_push(soul)

    return summarize(samples), time_call(hooks, max(repeat, 10))


if __name__ == "__main__":
    os.environ.setdefault("GIT_AUTHOR_NAME", "bench")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "bench@soul.invalid")
    os.environ.setdefault("GIT_COMMITTER_NAME", "bench")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "bench@soul.invalid")
    main()
