"""Benchmark `soul import`: 10,000 memories in under 10 s (issue 11), and memory stays bounded.

Runs the real CLI (`soul import FORMAT FILE --json`) on a fresh soul per run, for an mcp-memory
file and a soul jsonl export of N memories each, and once more on the same soul to time the
idempotent re-import. With `--big-mb M` it also imports an M-megabyte jsonl file and records the
peak RSS of the importing process, which must not grow with the file.

    /work/venv/bin/python bench/bench_import.py [--n 10000] [--runs 3] [--big-mb 0]

Prints a table and writes bench/results/import.json (medians, min, max).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOUL = str(Path(sys.executable).with_name("soul"))
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
]


def sentence(i: int) -> str:
    words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(8)]
    return f"Fact {i}: the {words[0]} service talks to {words[1]} through {' '.join(words[2:])}"


def make_mcp(path: Path, n: int) -> None:
    per_entity = 10
    with path.open("w", encoding="utf-8") as out:
        for e in range(n // per_entity):
            observations = [sentence(e * per_entity + k) for k in range(per_entity)]
            out.write(
                json.dumps(
                    {"type": "entity", "name": f"entity-{e}", "entityType": "service", "observations": observations}
                )
                + "\n"
            )


def make_jsonl(path: Path, n: int, start: int = 0) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(start, start + n):
            out.write(json.dumps({"text": sentence(i), "kind": "fact", "tags": ["bench", f"t{i % 50}"]}) + "\n")


def fresh_soul(root: Path, name: str) -> Path:
    home = root / name
    subprocess.run([SOUL, "--home", str(home), "init", "--instance", "bench"], check=True, capture_output=True)
    return home


def timed_import(home: Path, fmt: str, path: Path) -> tuple[float, dict[str, object], int]:
    env = dict(os.environ, SOUL_HOME=str(home))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(
        [SOUL, "--home", str(home), "import", fmt, str(path), "--json"], capture_output=True, text=True, env=env
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"import failed: {proc.stderr}")
    peak_kb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return elapsed, json.loads(proc.stdout), peak_kb


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmark soul import")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=0, help="also import a jsonl file of this many MB")
    args = parser.parse_args()
    results: dict[str, object] = {"n": args.n, "runs": args.runs, "cpus": os.cpu_count()}
    results["load_average_at_start"] = round(os.getloadavg()[0], 1)  # this machine is shared: say how busy
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = {"mcp-memory": root / "memory.jsonl", "jsonl": root / "export.jsonl"}
        make_mcp(files["mcp-memory"], args.n)
        make_jsonl(files["jsonl"], args.n)
        for fmt, path in files.items():
            first, again = [], []
            for run in range(args.runs):
                home = fresh_soul(root, f"{fmt}-{run}")
                seconds, report, _ = timed_import(home, fmt, path)
                assert report["imported"] == args.n, report
                first.append(seconds)
                seconds, report, _ = timed_import(home, fmt, path)
                assert report["imported"] == 0, report
                again.append(seconds)
            results[fmt] = {"import_s": summary(first), "reimport_s": summary(again)}
            med = statistics.median(first)
            rows.append((fmt, med, min(first), max(first), statistics.median(again), args.n / med))
        if args.big_mb:
            big = root / "big.jsonl"
            lines = 0
            while big.exists() is False or big.stat().st_size < args.big_mb * 1024 * 1024:
                make_jsonl(root / "part.jsonl", 50_000, start=lines)
                with big.open("ab") as out:
                    out.write((root / "part.jsonl").read_bytes())
                lines += 50_000
            home = fresh_soul(root, "big")
            seconds, report, peak_kb = timed_import(home, "jsonl", big)
            results["big"] = {
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "load_average": round(os.getloadavg()[0], 1),
                "mb": round(big.stat().st_size / 2**20, 1),
                "memories": report["imported"],
                "seconds": round(seconds, 2),
                "peak_rss_mb": round(peak_kb / 1024, 1),
            }
    print(f"{'format':<12}{'median s':>10}{'min s':>8}{'max s':>8}{'re-import s':>13}{'memories/s':>12}")
    for fmt, med, low, high, reimport, rate in rows:
        print(f"{fmt:<12}{med:>10.2f}{low:>8.2f}{high:>8.2f}{reimport:>13.2f}{rate:>12.0f}")
    if "big" in results:
        print(f"big file: {results['big']}")
    result_path = ROOT / "bench" / "results" / "import.json"
    result_path.parent.mkdir(parents=True, exist_ok=True)
    if "big" not in results and result_path.exists():
        # A run without --big-mb keeps the last big-file measurement (it takes minutes).
        previous = json.loads(result_path.read_text())
        if "big" in previous:
            results["big"] = previous["big"]
    result_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {result_path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
