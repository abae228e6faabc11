"""Scale series: soul at 1k, 10k and 100k memories (generated, realistic lengths) on one growing soul.

At each size: `soul remember` (whole process, with its local commit), recall warm (in-process search
with model and table loaded) and cold (a fresh `soul recall` process, no daemon), the numpy floor over
the index's own vectors, index rebuild, `soul sync` no-op and with incoming changes (a second replica
B pushed 3 memories), the A -> B sync latency (A remembers and syncs, B syncs), repository size on
disk, and the RSS of the daemon (`soul daemon start`, warmed by recalls through its socket).

Setup speed: events are written with `soul.store.append_events` in batches and committed once. The
first `--pool` memories (300) are embedded for real by the offline MiniLM model (timed: the embedding
throughput); the vectors of all other memories are seeded into the embedding cache as noisy copies of
those real vectors, so index build, search and sync run on real code and realistic data
without spending hours embedding. Recall *quality* is measured elsewhere (bench_recall, bench_peers).

    /work/venv/bin/python bench/bench_scale.py [--sizes 1000,10000,100000] [--repeat 5] [--quick]

Prints a table and writes bench/results/scale.json (medians, min, max per figure).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_floors import numpy_topk_floor

from common import MODEL_DIR, ROOT, SOUL, summarize, write_results

EVAL = ROOT / "tests" / "data" / "recall_eval.json"
FILLER_TEXT = (
    "because the team agreed after the review that this is simpler to maintain and we should keep it "
    "until the next release when we revisit the decision with the people on call and the budget owner"
)
FILLER = FILLER_TEXT.split()


class Env:
    """The two replicas A and B of one soul, sharing a bare remote, with a private $HOME."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.a = base / "a"
        self.b = base / "b"
        self.remote = base / "remote.git"
        self.env = {**os.environ, "HOME": str(base / "home"), "GIT_TERMINAL_PROMPT": "0"}
        self.env.pop("SOUL_HOME", None)
        self.env.pop("SOUL_INSTANCE", None)

    def soul(self, home: Path, *args: str, check: bool = True, timeout: float = 900) -> str:
        cmd = [SOUL, "--home", str(home), *args]
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr[-2000:]}")
        return out.stdout

    def git(self, home: Path, *args: str) -> None:
        subprocess.run(["git", "-C", str(home), *args], env=self.env, check=True, capture_output=True)

    def timed(self, home: Path, *args: str) -> float:
        start = time.perf_counter()
        self.soul(home, *args)
        return time.perf_counter() - start


def setup(env: Env) -> None:
    (env.base / "home").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(env.remote)], check=True)
    env.soul(env.a, "init", "--instance", "a", "--remote", str(env.remote))
    toml = env.a / "soul.toml"
    text = toml.read_text().replace(
        'model = "BAAI/bge-small-en-v1.5"', 'model = "sentence-transformers/all-MiniLM-L6-v2"'
    )
    toml.write_text(text.replace('# model_path = "/path/to/onnx-folder"', f'model_path = "{MODEL_DIR}"'))
    env.git(env.a, "commit", "-q", "-am", "bench: local model")
    env.soul(env.a, "sync")
    env.soul(env.b, "join", str(env.remote), "--instance", "b")


def make_texts(rng: random.Random, start: int, count: int) -> list[str]:
    """Memory-like sentences: an evaluation-set memory, a tail of filler, a serial; 30-600 chars."""
    bases = json.loads(EVAL.read_text())["memories"]
    texts = []
    for i in range(start, start + count):
        target = min(600, max(30, int(rng.lognormvariate(4.5, 0.6))))  # median ~90 chars
        words = [rng.choice(bases).rstrip(".")]
        while sum(len(w) + 1 for w in words) < target:
            words.append(rng.choice(FILLER))
        texts.append(" ".join(words) + f" (#{i}).")
    return texts


def append_memories(env: Env, texts: list[str]) -> None:
    from soul import store
    from soul.ids import iso_from_ms, new_ulid, now_ms

    kinds = ["fact", "preference", "decision", "note"]
    for start in range(0, len(texts), 5000):
        batch = []
        for j, text in enumerate(texts[start : start + 5000]):
            ms = now_ms()
            batch.append(
                {
                    "op": "memory.add",
                    "id": new_ulid(ms),
                    "at": iso_from_ms(ms),
                    "by": "a",
                    "v": 1,
                    "text": text,
                    "kind": kinds[j % 4],
                    "tags": [f"t{j % 7}"],
                }
            )
        store.append_events(env.a, "a", batch)
    env.git(env.a, "add", "-A", "memories")
    env.git(env.a, "commit", "-q", "-m", f"bench: {len(texts)} memories")


def embed_pool(env: Env, pool_texts: list[str]) -> float:
    """Embed the pool for real into the soul's embedding cache (model loaded first); returns seconds."""
    from soul import embed
    from soul.core import Soul

    idx = Soul.open(env.a, "a").index()
    emb = idx.embedder
    start = time.perf_counter()
    embed.embed_cached(emb, idx.cache, pool_texts)
    took = time.perf_counter() - start
    idx.cache.close()
    return took


def seed_vectors(env: Env, pool_texts: list[str], texts: list[str], rng_seed: int) -> None:
    """Noisy copies of the real pool vectors, stored under the keys the index will look up."""
    import numpy as np

    from soul import embed

    emb_id = "fastembed:sentence-transformers/all-MiniLM-L6-v2"
    cache = embed.EmbeddingCache(env.a / ".soul" / "embeddings.sqlite")
    known = cache.get_many([embed.cache_key(emb_id, t) for t in pool_texts])
    pool = np.stack(list(known.values()))
    rng = np.random.default_rng(rng_seed)
    for start in range(0, len(texts), 5000):
        chunk = texts[start : start + 5000]
        vecs = pool[rng.integers(0, len(pool), len(chunk))] + rng.standard_normal((len(chunk), pool.shape[1])) * 0.03
        vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
        cache.put_many([(embed.cache_key(emb_id, t), vecs[i]) for i, t in enumerate(chunk)])
    cache.close()


def index_figures(env: Env, repeat: int, queries: list[str]) -> dict[str, Any]:
    """Index rebuild (vectors cached), warm in-process recall, numpy floor on the same vectors."""
    from soul.core import Soul

    soul = Soul.open(env.a, "a")
    idx = soul.index()
    _ = idx.embedder  # model load is timed by the floors, not here
    out: dict[str, Any] = {}
    rebuilds = []
    for _ in range(repeat):
        fresh = Soul.open(env.a, "a").index()
        fresh._embedder = idx.embedder  # the same loaded model: we time fold + table + matrix, not model load
        start = time.perf_counter()
        fresh.rebuild()
        rebuilds.append(time.perf_counter() - start)
    out["rebuild"] = summarize(rebuilds)
    idx = Soul.open(env.a, "a").index()
    idx._embedder = fresh._embedder
    for q in queries:  # first round warms the table and caches
        idx.search(q, k=10)
    warm = []
    for _ in range(3):
        for q in queries:
            start = time.perf_counter()
            idx.search(q, k=10)
            warm.append(time.perf_counter() - start)
    out["recall_warm_in_process"] = summarize(warm)
    _, vecs = idx.vectors()
    qvecs, embed_s = [], []
    for q in queries * 2:  # the query-embedding floor, taken here so it shares this step's load
        start = time.perf_counter()
        qvecs.append(idx.embedder.embed_query(q))
        embed_s.append(time.perf_counter() - start)
    out["query_embedding"] = summarize(embed_s[len(queries) :])
    qvecs = qvecs[: len(queries)]
    out["numpy_floor_same_vectors"] = numpy_topk_floor(vecs, qvecs)
    out["vectors"] = int(vecs.shape[0])
    return out


def cli_figures(env: Env, n: int, repeat: int, cold_runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["remember"] = summarize(
        [
            env.timed(env.a, "remember", f"Scale note {n}-{i}: the build cache lives on the second disk")
            for i in range(repeat)
        ]
    )
    env.soul(env.a, "sync")
    question = ("recall", "which database does invoicing use", "-k", "5", "--json")
    # The first recall after new memories also catches the index up (LanceDB, embedding, snapshot);
    # the next ones find the index current: two different figures, never one median of both.
    out["recall_cold_catch_up"] = summarize([env.timed(env.a, *question)])
    out["recall_cold_process"] = summarize([env.timed(env.a, *question) for _ in range(cold_runs)])
    out["sync_noop"] = summarize([env.timed(env.a, "sync") for _ in range(repeat)])
    env.soul(env.b, "sync")  # B catches up with the new size (not timed: a one-off bulk pull)
    incoming = []
    for i in range(max(2, repeat // 2)):
        for k in range(3):
            env.soul(env.b, "remember", f"From B at {n}: round {i} note {k} about the release train")
        env.soul(env.b, "sync")
        incoming.append(env.timed(env.a, "sync"))
    out["sync_incoming_3"] = summarize(incoming)
    parts: dict[str, list[float]] = {"remember_a": [], "sync_a_push": [], "sync_b_pull": [], "total": []}
    for i in range(max(2, repeat // 2)):
        marker = f"handover-{n}-{i}-{random.random():.6f}"
        r = env.timed(env.a, "remember", f"Latency probe {marker}: the VPN config moved to the wiki")
        p = env.timed(env.a, "sync")
        q = env.timed(env.b, "sync")
        if not _grep(env.b, marker):
            raise RuntimeError("the memory did not reach B")
        for key, value in (("remember_a", r), ("sync_a_push", p), ("sync_b_pull", q), ("total", r + p + q)):
            parts[key].append(value)
    out["a_to_b"] = {key: summarize(values) for key, values in parts.items()}
    out["disk"] = disk(env.a)
    return out


def _grep(home: Path, needle: str) -> bool:
    return any(needle in p.read_text(errors="replace") for p in (home / "memories").rglob("*.jsonl"))


def disk(home: Path) -> dict[str, int]:
    def size(path: Path) -> int:
        if not path.exists():
            return 0
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

    total = size(home)
    git = size(home / ".git")
    state = size(home / ".soul")
    return {"git_bytes": git, "worktree_bytes": total - git - state, "index_and_cache_bytes": state}


def daemon_figures(env: Env, runs: int) -> dict[str, Any]:
    """Start the daemon, warm it through its socket, read its RSS, time warm `soul recall` processes."""
    env.soul(env.a, "daemon", "start", timeout=300)
    try:
        pid = int((env.a / ".soul" / "daemon.pid").read_text().strip())
        env.soul(env.a, "recall", "warm up the daemon", "--json", timeout=600)
        # Steady state: after start the warm server catches up and saves its snapshot (seconds at
        # 100k); recalls timed during that measure the catch-up, which has its own figure above.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            info = json.loads(env.soul(env.a, "index", "status", "--json"))
            if info.get("snapshot") and not info.get("stale"):
                break
            time.sleep(1)
        warm = [
            env.timed(env.a, "recall", "which database does invoicing use", "-k", "5", "--json") for _ in range(runs)
        ]
        return {"recall_warm_process": summarize(warm), **rss(pid)}
    finally:
        env.soul(env.a, "daemon", "stop", check=False, timeout=120)


def rss(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return {"daemon_rss_bytes": fields.get("VmRSS", 0), "daemon_peak_rss_bytes": fields.get("VmHWM", 0)}


def run(sizes: list[int], repeat: int, cold_runs: int, pool: int, seed: int = 42) -> dict[str, Any]:
    """`pool` memories are embedded for real; every other vector is a noisy copy of one of theirs."""
    rng = random.Random(seed)
    queries = [q for q, _ in json.loads(EVAL.read_text())["paraphrase"][:8]]
    base = Path(tempfile.mkdtemp(prefix="soul-scale-"))
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(base / "home")
    rows: list[dict[str, Any]] = []
    try:
        env = Env(base)
        setup(env)
        have, pool_texts = 0, list[str]()
        for n in sorted(sizes):
            t0 = time.perf_counter()
            texts = make_texts(rng, have, n - have)
            append_memories(env, texts)
            row: dict[str, Any] = {"memories": n}
            if not pool_texts:
                pool_texts = texts[:pool]
                took = embed_pool(env, pool_texts)
                row["pool_embedding_s"] = round(took, 2)
                row["embedding_per_s"] = round(len(pool_texts) / took, 1)
                texts = texts[pool:]
            seed_vectors(env, pool_texts, texts, seed + n)
            row["setup_s"] = round(time.perf_counter() - t0, 2)
            rebuilds = max(1, repeat // 2) if n >= 100_000 else repeat // 2 + 1
            row.update(index_figures(env, rebuilds, queries))
            row.update(cli_figures(env, n, repeat, cold_runs))
            row.update(daemon_figures(env, repeat))
            rows.append(row)
            # Written after every size: a run stopped by its time limit still reports the sizes it finished.
            write_results(
                "scale",
                {
                    "sizes": rows,
                    "pool_embedded_for_real": pool,
                    "repeat": repeat,
                    "cold_runs": cold_runs,
                    "partial": True,
                },
            )
            print(json.dumps({k: v for k, v in row.items() if k != "a_to_b"}), flush=True)
            have = n
    finally:
        if old_home is not None:
            os.environ["HOME"] = old_home
        shutil.rmtree(base, ignore_errors=True)
    return {"sizes": rows, "pool_embedded_for_real": pool, "repeat": repeat, "cold_runs": cold_runs}


def print_rows(result: dict[str, Any]) -> None:
    cols = [
        "remember",
        "recall_warm_in_process",
        "numpy_floor_same_vectors",
        "recall_cold_process",
        "recall_warm_process",
        "rebuild",
        "sync_noop",
        "sync_incoming_3",
    ]
    print("\nScale series (medians, ms)")
    print(f"{'memories':>9} " + " ".join(f"{c[:14]:>14}" for c in cols) + f" {'A->B':>9} {'git MB':>7} {'RSS MB':>7}")
    for row in result["sizes"]:
        cells = " ".join(f"{row[c]['median_ms']:>14.1f}" for c in cols)
        print(
            f"{row['memories']:>9} {cells} {row['a_to_b']['total']['median_ms']:>9.0f}"
            f" {row['disk']['git_bytes'] / 1e6:>7.1f} {row['daemon_rss_bytes'] / 1e6:>7.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated memory counts")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure")
    parser.add_argument("--cold-runs", type=int, default=3, help="runs of the cold `soul recall` process")
    parser.add_argument("--pool", type=int, default=300, help="memories embedded for real (the rest: noisy copies)")
    parser.add_argument("--quick", action="store_true", help="sizes 200,500, 2 runs, pool 50: a smoke run")
    args = parser.parse_args()
    # A time limit (SIGTERM from run_all) unwinds normally: the daemon is stopped, temp dirs removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.sizes, args.repeat, args.cold_runs, args.pool = "200,500", 2, 1, 50
    result = run([int(s) for s in args.sizes.split(",") if s], args.repeat, args.cold_runs, args.pool)
    print_rows(result)
    print(f"written {write_results('scale', result)}")


if __name__ == "__main__":
    main()
