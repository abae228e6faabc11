"""Recall speed: warm recall at 1k/10k(/100k) memories against a numpy brute-force floor, cold and warm
`soul recall` processes, index build throughput and catch-up after 100 new memories.

Usage: /work/venv/bin/python bench/bench_recall.py [--sizes 1000,10000] [--big] [--model-dir DIR]
Writes bench/results/recall.json (medians, min, max) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2-onnx"
SOUL = str(Path(sys.executable).with_name("soul"))
WORDS = [
    "server",
    "deploy",
    "meeting",
    "invoice",
    "dentist",
    "garden",
    "kettle",
    "laptop",
    "python",
    "release",
    "review",
    "budget",
    "sister",
    "flight",
    "password",
    "backup",
    "coffee",
    "report",
    "migraine",
    "tomato",
    "pipeline",
    "dashboard",
    "passport",
    "insurance",
    "birthday",
    "contract",
    "monday",
    "friday",
    "morning",
    "evening",
    "berlin",
    "lisbon",
    "tokyo",
    "porto",
    "marco",
    "priya",
    "lena",
    "tomas",
    "renata",
    "yusuf",
    "database",
    "postgres",
    "redis",
    "kafka",
    "latency",
    "cache",
    "token",
    "quota",
    "allergy",
    "vitamin",
    "running",
    "cycling",
    "piano",
    "kanji",
    "novel",
    "recipe",
]
QUERIES = [
    "who looks after my teeth",
    "which database does invoicing use",
    "when is the team meeting",
    "where do I keep my passport",
    "what time does the server restart",
    "how do I take my coffee",
    "Priya escalation",
    "release 4.0 python support",
]


def stats(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {"median_ms": round(statistics.median(ms), 2), "min_ms": round(min(ms), 2), "max_ms": round(max(ms), 2)}


def sentence(rng: random.Random, i: int) -> str:
    return f"memory {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18)))


def make_soul(base: Path, model_dir: Path) -> Path:
    from soul.core import Soul

    home = base / "soul"
    Soul.init(home, "bench")
    toml = home / "soul.toml"
    text = toml.read_text().replace(
        'model = "BAAI/bge-small-en-v1.5"\n',
        f'model = "sentence-transformers/all-MiniLM-L6-v2"\nmodel_path = "{model_dir}"\n',
    )
    (home / "soul.toml").write_text(text.replace("[index]\n", "[index]\nduplicate_threshold = false\n"))
    return home


def add_memories(home: Path, start: int, count: int, rng: random.Random) -> None:
    from soul import store
    from soul.ids import iso_from_ms, new_ulid, now_ms

    batch = []
    for i in range(start, start + count):
        ms = now_ms()
        batch.append(
            {
                "op": "memory.add",
                "id": new_ulid(ms),
                "at": iso_from_ms(ms),
                "by": "bench",
                "v": 1,
                "text": sentence(rng, i),
                "kind": "note",
                "tags": [rng.choice(["a", "b", "c"])],
            }
        )
        if len(batch) == 5000:
            store.append_events(home, "bench", batch)
            batch = []
    if batch:
        store.append_events(home, "bench", batch)


def bench_size(home: Path, n: int, have: int, rng: random.Random) -> dict[str, Any]:
    import numpy as np

    from soul import index as index_mod
    from soul.core import Soul

    add_memories(home, have, n - have, rng)
    soul = Soul.open(home, "bench")
    idx = soul.index()
    _ = idx.embedder  # model load is not part of the build
    # Build throughput: the new memories are embedded (nothing of them is cached) and added.
    t = time.perf_counter()
    idx.catch_up()
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    idx.rebuild()
    rebuild_cached_s = time.perf_counter() - t
    warm: list[float] = []
    embed_only: list[float] = []
    floor: list[float] = []
    ids, vecs = index_mod.memory_vectors(soul)
    for round_ in range(6):
        for q in QUERIES:
            t = time.perf_counter()
            idx.search(q, k=10)
            took = time.perf_counter() - t
            t = time.perf_counter()
            qv = idx.embedder.embed_query(q)
            e = time.perf_counter() - t
            t = time.perf_counter()
            scores = vecs @ qv
            top = np.argpartition(-scores, 10)[:10]
            _ = [ids[i] for i in top[np.argsort(-scores[top])]]
            f = time.perf_counter() - t
            if round_:  # the first round warms caches
                warm.append(took)
                embed_only.append(e)
                floor.append(e + f)
    add_memories(home, n, 100, rng)
    t = time.perf_counter()
    result = idx.catch_up()
    catch_up_s = time.perf_counter() - t
    assert result["added"] == 100, result
    return {
        "memories": n,
        "built_new": n - have,
        "build_per_s": round((n - have) / build_s, 1),
        "build_s": round(build_s, 2),
        "rebuild_from_cache_s": round(rebuild_cached_s, 2),
        "warm_recall": stats(warm),
        "query_embedding": stats(embed_only),
        "numpy_floor": stats(floor),
        "catch_up_100_s": round(catch_up_s, 3),
        "fragments": idx.fragments(),
    }


def bench_processes(home: Path, runs: int) -> dict[str, Any]:
    env = {**os.environ, "SOUL_HOME": str(home)}
    cmd = [SOUL, "recall", "which database does invoicing use", "--json", "-k", "5"]

    def timed() -> float:
        t = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True, timeout=120)
        return time.perf_counter() - t

    cold = [timed() for _ in range(runs)]
    server = subprocess.Popen([SOUL, "index", "serve"], env=env, stderr=subprocess.DEVNULL)
    try:
        sock = home / ".soul" / "warm.sock"
        deadline = time.monotonic() + 120
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        timed()
        warm = [timed() for _ in range(runs * 2)]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    return {"cold_process": stats(cold), "warm_process": stats(warm)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated memory counts")
    parser.add_argument("--big", action="store_true", help="also run 100,000 memories (minutes)")
    parser.add_argument("--model-dir", default=str(DEFAULT_MODEL), help="local ONNX model folder")
    parser.add_argument("--runs", type=int, default=5, help="process runs for cold/warm soul recall")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")} | ({100_000} if args.big else set()))
    rng = random.Random(42)
    base = Path(tempfile.mkdtemp(prefix="soul-bench-"))
    os.environ["HOME"] = str(base / "home")
    home = make_soul(base, Path(args.model_dir))
    results: dict[str, Any] = {"sizes": [], "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()}}
    try:
        have = 0
        for n in sizes:
            row = bench_size(home, n, have, rng)
            have = n + 100
            results["sizes"].append(row)
            print(json.dumps(row), flush=True)
            if n == 10_000 or (n == sizes[-1] and "process" not in results):
                results["process"] = {"memories": have, **bench_processes(home, args.runs)}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    results["machine"]["load_after"] = os.getloadavg()
    out = ROOT / "bench" / "results" / "recall.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    print(
        f"\n{'memories':>9} {'warm recall':>12} {'numpy floor':>12} {'q-embed':>8} {'build/s':>8} {'catch-up100':>11}"
    )
    for row in results["sizes"]:
        print(
            f"{row['memories']:>9} {row['warm_recall']['median_ms']:>10.1f}ms"
            f" {row['numpy_floor']['median_ms']:>10.1f}ms"
            f" {row['query_embedding']['median_ms']:>6.1f}ms {row['build_per_s']:>8.0f} {row['catch_up_100_s']:>10.2f}s"
        )
    proc = results.get("process")
    if proc:
        print(
            f"\nsoul recall process at {proc['memories']} memories: cold {proc['cold_process']['median_ms']:.0f} ms,"
            f" warm (socket) {proc['warm_process']['median_ms']:.0f} ms (medians)"
        )


if __name__ == "__main__":
    main()
