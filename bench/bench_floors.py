"""Floors: what the hardware and the tools under soul cost on their own, measured in the same run.

- `python -c pass`: interpreter start, the least any `soul` process can cost.
- a bare `git add && git commit` of one appended line: the least a durable, versioned write costs.
- fastembed query embedding alone (the offline MiniLM model, already loaded): the least a semantic
  recall costs before any search.
- numpy brute-force cosine top-10 over N vectors: the least a vector search costs; `bench_scale.py`
  calls `numpy_topk_floor` on the index's own vectors, this script uses random unit vectors of the
  same dimension when run alone.

    /work/venv/bin/python bench/bench_floors.py [--repeat 20] [--sizes 1000,10000,100000]

Prints a table and writes bench/results/floors.json (medians, min, max).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from itertools import count
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODEL_DIR, print_table, summarize, time_call, time_process, write_results

QUERIES = [
    "who looks after my teeth",
    "which database does invoicing use",
    "when is the team meeting",
    "where do I keep my passport",
    "what time does the server restart",
    "indentation style for golang",
    "Lena Lisbon",
    "release 4.0 python support",
]


def python_floor(repeat: int) -> dict[str, float]:
    return time_process([sys.executable, "-c", "pass"], repeat)


def git_commit_floor(repo: Path, repeat: int) -> dict[str, float]:
    """`git add` + `git commit` of one appended JSON line, the way soul commits one memory."""
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for key, value in (("user.email", "bench@example.invalid"), ("user.name", "bench"), ("commit.gpgsign", "false")):
        subprocess.run(["git", "-C", str(repo), "config", key, value], check=True)
    n = count()

    def commit() -> None:
        with open(repo / "log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(f'{{"n": {next(n)}, "text": "a memory of ordinary length for the floor"}}\n')
        subprocess.run(["git", "-C", str(repo), "add", "log.jsonl"], check=True)
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", "x"], check=True)

    commit()  # the first commit creates the branch; not representative
    return time_call(commit, repeat)


def load_model(model_dir: Path = MODEL_DIR) -> Any:
    from fastembed import TextEmbedding

    return TextEmbedding(
        model_name="sentence-transformers/all-MiniLM-L6-v2",
        specific_model_path=str(model_dir),
        local_files_only=True,
    )


def embed_query_floor(model: Any, repeat: int) -> dict[str, float]:
    """fastembed `query_embed` of one short question, model loaded and warmed first."""
    for q in QUERIES:
        next(iter(model.query_embed(q)))
    samples = []
    for i in range(repeat):
        q = QUERIES[i % len(QUERIES)]
        start = time.perf_counter()
        next(iter(model.query_embed(q)))
        samples.append(time.perf_counter() - start)
    return summarize(samples)


def model_load_floor(model_dir: Path, repeat: int) -> dict[str, float]:
    """A fresh process that imports fastembed and loads the model: the floor of a cold recall."""
    code = (
        "from fastembed import TextEmbedding\n"
        "m = TextEmbedding(model_name='sentence-transformers/all-MiniLM-L6-v2',"
        f" specific_model_path={str(model_dir)!r}, local_files_only=True)\n"
        "next(iter(m.query_embed('warm up')))\n"
    )
    return time_process([sys.executable, "-c", code], repeat)


def numpy_topk_floor(vectors: Any, query_vectors: Any, k: int = 10, repeat: int = 3) -> dict[str, float]:
    """Exact cosine top-k by a matrix-vector product and argpartition (vectors are unit length)."""
    import numpy as np

    samples = []
    for _ in range(repeat):
        for qv in query_vectors:
            start = time.perf_counter()
            scores = vectors @ qv
            kk = min(k, len(scores) - 1)
            top = np.argpartition(-scores, kk)[:k]
            _ = top[np.argsort(-scores[top])]
            samples.append(time.perf_counter() - start)
    return summarize(samples)


def random_unit(n: int, dim: int, seed: int = 7) -> Any:
    import numpy as np

    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def run(repeat: int, sizes: list[int], model_dir: Path = MODEL_DIR) -> dict[str, Any]:
    results: dict[str, Any] = {}
    results["python -c pass"] = python_floor(repeat)
    with tempfile.TemporaryDirectory() as tmp:
        results["git add + commit one line"] = git_commit_floor(Path(tmp) / "repo", repeat)
    model = load_model(model_dir)
    results["fastembed query embedding (model loaded)"] = embed_query_floor(model, repeat * 2)
    results["process: import fastembed + load model + 1 query"] = model_load_floor(model_dir, max(2, repeat // 5))
    qvecs = [next(iter(model.query_embed(q))) for q in QUERIES]
    qvecs = [v / (sum(x * x for x in v) ** 0.5) for v in qvecs]
    numpy_rows = {}
    for n in sizes:
        numpy_rows[str(n)] = numpy_topk_floor(random_unit(n, len(qvecs[0])), qvecs)
    results["numpy brute-force top-10 (random unit vectors)"] = numpy_rows
    return results


def table_rows(results: dict[str, Any]) -> list[tuple[str, dict[str, float], str]]:
    rows = [(name, stats, "") for name, stats in results.items() if "median_ms" in stats]
    for n, stats in results.get("numpy brute-force top-10 (random unit vectors)", {}).items():
        rows.append((f"numpy top-10 over {int(n):,} vectors", stats, ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="samples per floor")
    parser.add_argument("--sizes", default="1000,10000,100000", help="vector counts for the numpy floor")
    parser.add_argument("--model-dir", default=str(MODEL_DIR), help="local ONNX model folder")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results = run(args.repeat, sizes, Path(args.model_dir))
    print_table("Floors", table_rows(results))
    print(f"written {write_results('floors', {'repeat': args.repeat, 'results': results})}")


if __name__ == "__main__":
    main()
