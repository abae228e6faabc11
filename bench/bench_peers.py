"""Soul next to what users would pick instead, on the same data, driven by the same MCP client.

Peers, each spawned over stdio by the official Python MCP SDK client (the one soul's tests use):
- soul: `soul mcp` (tools `remember`, `recall`), offline MiniLM model, duplicate detection off so
  every evaluation memory is stored.
- the official MCP reference memory server, `@modelcontextprotocol/server-memory`, installed from
  the npm registry into bench/.peers/ (tools `create_entities`, `search_nodes`): one entity per memory.
  Its search is a case-insensitive substring match of the whole query, so it is measured twice: as
  shipped, and "per word" (one `search_nodes` per query word of 4+ letters, ranked by words matched,
  the best an agent could do with it; latency is the sum of the calls).
- a Python memory server from PyPI that runs offline with the local model, when one is found
  (see PYTHON_PEER_NOTE; the report carries the reason when none ran).

Data: tests/data/recall_eval.json (60 memories; paraphrase and keyword questions, each naming its
answer). Figures: store latency per memory, search latency per query (medians, min, max), hit@1,
hit@5 and MRR@5 per question set, and ratios peer / soul.

    /work/venv/bin/python bench/bench_peers.py [--repeat 3] [--quick]

Prints a table and writes bench/results/peers.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODEL_DIR, ROOT, SOUL, summarize, write_results

EVAL = ROOT / "tests" / "data" / "recall_eval.json"
PEERS = ROOT / "bench" / ".peers"
NPM_PACKAGE = "@modelcontextprotocol/server-memory"
MMS_PACKAGE = "mcp-memory-service-lite"
PYTHON_PEER_NOTE = (
    "mcp-memory-service-lite runs offline once the same all-MiniLM-L6-v2 ONNX files are placed in its model "
    "cache, with pysqlite3-binary standing in for this Python's sqlite3 (built without extension loading, "
    "which sqlite-vec needs). basic-memory was also considered: it needs Python >= 3.12 (this machine has 3.11)."
)
Search = Callable[[Any, str], Awaitable[tuple[list[int], float]]]


def install_server_memory() -> Path:
    """`npm install` the reference server into bench/.peers/ once; returns its entry script."""
    entry = PEERS / "node_modules" / "@modelcontextprotocol" / "server-memory" / "dist" / "index.js"
    if not entry.exists():
        PEERS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(PEERS), "--no-audit", "--no-fund", NPM_PACKAGE],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return entry


def npm_version() -> str:
    pkg = PEERS / "node_modules" / "@modelcontextprotocol" / "server-memory" / "package.json"
    return str(json.loads(pkg.read_text())["version"]) if pkg.exists() else "?"


def client(command: str, args: list[str], env: dict[str, str]) -> Any:
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters, get_default_environment

    params = StdioServerParameters(command=command, args=args, env={**get_default_environment(), **env})
    return Client(params, mode="legacy", read_timeout_seconds=300)


async def call(session: Any, name: str, args: dict[str, Any]) -> Any:
    result = await session.call_tool(name, args)
    if result.is_error:
        raise RuntimeError(f"{name} failed: {result.content}")
    return result


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


async def evaluate(
    session: Any, store: Callable[[int, str], Awaitable[None]], search: Search, data: dict[str, Any], repeat: int
) -> dict[str, Any]:
    """Store every memory (timed), then ask every question `repeat` times (timed; quality from the first)."""
    store_s = []
    for i, text in enumerate(data["memories"]):
        start = time.perf_counter()
        await store(i, text)
        store_s.append(time.perf_counter() - start)
    out: dict[str, Any] = {"store": summarize(store_s)}
    search_s: list[float] = []
    for qset in ("paraphrase", "keyword"):
        ranks = []
        for r in range(repeat):
            for question, answer in data[qset]:
                ranked, took = await search(session, question)
                search_s.append(took)
                if r == 0:
                    ranks.append(ranked.index(answer) + 1 if answer in ranked[:5] else None)
        n = len(ranks)
        out[qset] = {
            "questions": n,
            "hit@1": round(sum(1 for x in ranks if x == 1) / n, 3),
            "hit@5": round(sum(1 for x in ranks if x) / n, 3),
            "mrr@5": round(sum(1 / x for x in ranks if x) / n, 3),
        }
    out["search"] = summarize(search_s)
    return out


async def run_soul(base: Path, data: dict[str, Any], repeat: int) -> dict[str, Any]:
    home = base / "soul"
    subprocess.run([SOUL, "--home", str(home), "init", "--instance", "bench"], check=True, capture_output=True)
    toml = home / "soul.toml"
    text = toml.read_text().replace(
        'model = "BAAI/bge-small-en-v1.5"', 'model = "sentence-transformers/all-MiniLM-L6-v2"'
    )
    text = text.replace('# model_path = "/path/to/onnx-folder"', f'model_path = "{MODEL_DIR}"')
    toml.write_text(text.replace("[index]\n", "[index]\nduplicate_threshold = false\n", 1))
    ids: dict[str, int] = {}

    async def store(i: int, memory: str) -> None:
        res = await call(session, "remember", {"text": memory, "kind": "fact"})
        ids[res.structured_content["id"]] = i

    async def search(sess: Any, query: str) -> tuple[list[int], float]:
        start = time.perf_counter()
        res = await call(sess, "recall", {"query": query, "k": 5})
        took = time.perf_counter() - start
        return [ids.get(m["id"], -1) for m in res.structured_content["memories"]], took

    started = time.perf_counter()
    async with client(SOUL, ["--home", str(home), "--instance", "bench", "mcp"], {"HOME": str(base)}) as session:
        ready = time.perf_counter() - started
        await call(session, "recall", {"query": "warm up", "k": 1})  # the first recall loads model + index
        out = await evaluate(session, store, search, data, repeat)
    out["startup_s"] = round(ready, 3)
    return out


async def run_server_memory(base: Path, data: dict[str, Any], repeat: int, per_word: bool) -> dict[str, Any]:
    entry = install_server_memory()
    env = {"MEMORY_FILE_PATH": str(base / f"memory-{per_word}.jsonl")}

    async def store(i: int, memory: str) -> None:
        entity = {"name": f"memory-{i}", "entityType": "memory", "observations": [memory]}
        await call(session, "create_entities", {"entities": [entity]})

    async def names(sess: Any, query: str) -> list[int]:
        res = await call(sess, "search_nodes", {"query": query})
        payload = res.structured_content or json.loads(text_of(res))
        return [int(e["name"].split("-")[1]) for e in payload.get("entities", [])]

    async def search(sess: Any, query: str) -> tuple[list[int], float]:
        start = time.perf_counter()
        if not per_word:
            ranked = await names(sess, query)
        else:
            score: dict[int, int] = {}
            for word in {w.lower() for w in re.findall(r"[A-Za-z0-9]{4,}", query)} or {query}:
                for hit in await names(sess, word):
                    score[hit] = score.get(hit, 0) + 1
            ranked = sorted(score, key=lambda h: (-score[h], h))
        return ranked, time.perf_counter() - start

    started = time.perf_counter()
    async with client(shutil.which("node") or "node", [str(entry)], env) as session:
        ready = time.perf_counter() - started
        out = await evaluate(session, store, search, data, repeat)
    out["startup_s"] = round(ready, 3)
    return out


def install_mcp_memory_service() -> Path:
    """`mcp-memory-service-lite` (ONNX MiniLM + sqlite-vec) in its own venv under bench/.peers/mms.

    This machine's Python cannot load SQLite extensions, which sqlite-vec needs: pysqlite3-binary is
    installed beside it and a .pth line makes it the `sqlite3` module of that venv only."""
    venv = PEERS / "mms"
    exe = venv / "bin" / "memory"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", MMS_PACKAGE, "pysqlite3-binary"],
                       check=True, capture_output=True, timeout=1200)  # fmt: skip
    site = next((venv / "lib").glob("python3*/site-packages"))
    shim = site / "zz_bench_sqlite.pth"
    if not shim.exists():
        shim.write_text(
            "import sys, pysqlite3; sys.modules['sqlite3'] = pysqlite3;"
            " sys.modules['sqlite3.dbapi2'] = pysqlite3.dbapi2\n"
        )
    return exe


def mms_version() -> str:
    dist = list((PEERS / "mms" / "lib").glob("python3*/site-packages/mcp_memory_service_lite-*.dist-info"))
    return dist[0].name.removesuffix(".dist-info").split("-")[-1] if dist else "?"


async def run_mcp_memory_service(base: Path, data: dict[str, Any], repeat: int) -> dict[str, Any]:
    """Offline: our local MiniLM ONNX files are put where the server caches its (same) model."""
    exe = install_mcp_memory_service()
    home = base / "mms-home"
    model = home / ".cache" / "mcp_memory" / "onnx_models" / "all-MiniLM-L6-v2" / "onnx"
    model.mkdir(parents=True, exist_ok=True)
    for f in MODEL_DIR.iterdir():
        shutil.copy(f, model / f.name)
    env = {"HOME": str(home), "MCP_MEMORY_USE_ONNX": "1", "MCP_MEMORY_ONNX_ALLOW_DOWNLOAD": "0",
           "MCP_MEMORY_ALLOW_HASH_EMBEDDINGS": "0", "MCP_MEMORY_STORAGE_BACKEND": "sqlite_vec",
           "MCP_MEMORY_BASE_DIR": str(base / "mms-data"), "HF_HUB_OFFLINE": "1"}  # fmt: skip
    hashes: dict[str, int] = {}

    async def store(i: int, memory: str) -> None:
        # conversation_id turns its semantic de-duplication off, as soul's is off here: every memory is kept.
        args = {"content": memory, "conversation_id": "bench", "metadata": {"tags": ["fact"]}}
        res = await call(session, "memory_store", args)
        found = re.search(r"hash: ([0-9a-f]{64})", text_of(res))
        if not found:
            raise RuntimeError(f"memory_store: {text_of(res)[:300]}")
        hashes[found.group(1)] = i

    async def search(sess: Any, query: str) -> tuple[list[int], float]:
        start = time.perf_counter()
        res = await call(sess, "memory_search", {"query": query, "limit": 5})
        took = time.perf_counter() - start
        return [hashes.get(h, -1) for h in re.findall(r"Hash: ([0-9a-f]{64})", text_of(res))], took

    started = time.perf_counter()
    async with client(str(exe), ["server"], env) as session:
        ready = time.perf_counter() - started
        await call(session, "memory_search", {"query": "warm up", "limit": 1})
        out = await evaluate(session, store, search, data, repeat)
    out["startup_s"] = round(ready, 3)
    return out


def python_peer(base: Path, data: dict[str, Any], repeat: int) -> dict[str, Any]:
    try:
        result = anyio.run(run_mcp_memory_service, base, data, repeat)
    except Exception as exc:  # a peer that cannot run offline is a finding, not a crash
        return {"ran": False, "reason": f"{MMS_PACKAGE} did not run offline: {str(exc)[:500]}"}
    return {"ran": True, "package": f"{MMS_PACKAGE} {mms_version()}", "reason": PYTHON_PEER_NOTE, "results": result}


def ratios(result: dict[str, Any]) -> dict[str, Any]:
    soul = result["soul"]
    out: dict[str, Any] = {}
    for name, peer in result.items():
        if name in ("soul", "python_peer") or not isinstance(peer, dict) or "store" not in peer:
            continue
        out[name] = {
            "store_peer_over_soul": round(peer["store"]["median_ms"] / soul["store"]["median_ms"], 3),
            "search_peer_over_soul": round(peer["search"]["median_ms"] / soul["search"]["median_ms"], 3),
            "hit@5_soul_minus_peer": {
                q: round(soul[q]["hit@5"] - peer[q]["hit@5"], 3) for q in ("paraphrase", "keyword")
            },
        }
    return out


def run(repeat: int, quick: bool = False) -> dict[str, Any]:
    data = json.loads(EVAL.read_text())
    if quick:
        data = {**data, "paraphrase": data["paraphrase"][:8], "keyword": data["keyword"][:8]}
    base = Path(tempfile.mkdtemp(prefix="soul-peers-"))
    try:
        result: dict[str, Any] = {"eval_set": str(EVAL.relative_to(ROOT)), "repeat": repeat}
        result["soul"] = anyio.run(run_soul, base, data, repeat)
        result["server-memory"] = anyio.run(run_server_memory, base, data, repeat, False)
        result["server-memory per word"] = anyio.run(run_server_memory, base, data, repeat, True)
        result["server_memory_version"] = npm_version()
        result["python_peer"] = python_peer(base, data, repeat)
        if result["python_peer"]["ran"]:
            result["mcp-memory-service"] = result["python_peer"].pop("results")
        result["ratios"] = ratios(result)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return result


def print_rows(result: dict[str, Any]) -> None:
    print("\nPeers on tests/data/recall_eval.json (same MCP client, stdio)")
    print(f"{'server':<26} {'store ms':>9} {'search ms':>10} {'para hit@5':>11} {'kw hit@5':>9} {'para MRR':>9}")
    for name in ("soul", "server-memory", "server-memory per word", "mcp-memory-service"):
        if name not in result:
            continue
        r = result[name]
        print(
            f"{name:<26} {r['store']['median_ms']:>9.1f} {r['search']['median_ms']:>10.1f}"
            f" {r['paraphrase']['hit@5']:>11.2f} {r['keyword']['hit@5']:>9.2f} {r['paraphrase']['mrr@5']:>9.2f}"
        )
    if not result["python_peer"]["ran"]:
        print(f"python peer: {result['python_peer']['reason']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="times each question is asked (latency samples)")
    parser.add_argument("--quick", action="store_true", help="8 questions per set, 1 repeat: a smoke run")
    args = parser.parse_args()
    result = run(1 if args.quick else args.repeat, args.quick)
    print_rows(result)
    print(f"written {write_results('peers', result)}")


if __name__ == "__main__":
    main()
