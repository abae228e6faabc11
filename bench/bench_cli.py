"""Whole-process latency of the write path: `soul remember` and `soul get`, next to floors.

Floors: `python -c pass` (interpreter start) and a bare `git add && git commit` of one line.
Targets (issue 2): remember median < 150 ms including its local commit; get < 100 ms.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from itertools import count
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SOUL, print_table, time_call, time_process, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "soul"
        env = {"SOUL_HOME": str(home), "SOUL_INSTANCE": "bench"}
        subprocess.run([SOUL, "--home", str(home), "init", "--instance", "bench"], check=True, capture_output=True)
        subprocess.run([SOUL, "--home", str(home), "set", "editor.tab_width", "4"], check=True, capture_output=True)
        n = count()

        def remember() -> None:
            text = f"benchmark memory number {next(n)} about the deploy pipeline"
            subprocess.run([SOUL, "--home", str(home), "remember", text], check=True, capture_output=True)

        results = {
            "python -c pass (floor)": time_process([sys.executable, "-c", "pass"], args.repeat),
            "git add + commit one line (floor)": _git_floor(Path(tmp) / "floor", args.repeat),
            "soul remember (with local commit)": time_call(remember, args.repeat),
            "soul get": time_process([SOUL, "--home", str(home), "get", "editor.tab_width"], args.repeat, env=env),
        }
    rows = [
        ("python -c pass (floor)", results["python -c pass (floor)"], ""),
        ("git add + commit one line (floor)", results["git add + commit one line (floor)"], ""),
        ("soul remember (with local commit)", results["soul remember (with local commit)"], "< 150 ms"),
        ("soul get", results["soul get"], "< 100 ms"),
    ]
    print_table("CLI write path (whole processes)", rows)
    floor = results["python -c pass (floor)"]["median_ms"] + results["git add + commit one line (floor)"]["median_ms"]
    ratio = results["soul remember (with local commit)"]["median_ms"] / floor
    print(f"remember / (python + git commit) floors: {ratio:.2f}x")
    print(f"written {write_results('cli', {'results': results, 'remember_over_floor': round(ratio, 3)})}")


def _git_floor(repo: Path, repeat: int) -> dict[str, float]:
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "config", "user.email", "b@x"], check=True)
    subprocess.run(["git", "-C", str(repo), "config", "user.name", "b"], check=True)
    n = count()

    def commit() -> None:
        with open(repo / "log.jsonl", "a") as handle:
            handle.write(f'{{"n": {next(n)}}}\n')
        subprocess.run(["git", "-C", str(repo), "add", "log.jsonl"], check=True)
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", "x"], check=True)

    return time_call(commit, repeat)


if __name__ == "__main__":
    main()
