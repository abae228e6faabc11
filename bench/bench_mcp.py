"""MCP and broadcast speed: stdio spawn-to-initialized, remember/recall round trips over stdio and
Streamable HTTP (median of N on a soul of M memories), and broadcast latency A -> B through a
personal server (bare repo + `soul serve`).

    python bench/bench_mcp.py [--memories 10000] [--rounds 200] [--spawns 10] [--broadcasts 10] [--lexical]

Targets (issue 5): initialized < 700 ms; recall round trip < 20 ms warm at 10k memories; A -> B
recallable < 2 s median. Writes bench/results/mcp.json.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODEL_DIR, SOUL, print_table, summarize, write_results


def sh(*args: str, env: dict[str, str]) -> None:
    subprocess.run([SOUL, *args], check=True, capture_output=True, env=env, timeout=3600)


def use_model(home: Path, lexical: bool) -> None:
    toml = home / "soul.toml"
    text = toml.read_text()
    if not lexical and (MODEL_DIR / "model.onnx").exists():
        text = text.replace('model = "BAAI/bge-small-en-v1.5"', 'model = "sentence-transformers/all-MiniLM-L6-v2"')
        text = re.sub(r"^# model_path = .*$", f'model_path = "{MODEL_DIR}"', text, flags=re.M)
    toml.write_text(text)


def seed(home: Path, instance: str, count: int) -> None:
    """Append `count` memories in one batch (the write path per memory is measured elsewhere)."""
    from soul import store
    from soul.core import Soul
    from soul.ids import iso_from_ms, new_ulid, now_ms

    topics = ["database", "deploy", "editor", "coffee", "meeting", "travel", "garden", "music", "budget", "laptop"]
    events = []
    base = now_ms() - count
    for i in range(count):
        ms = base + i
        text = f"note {i}: the {topics[i % 10]} item number {i} is filed under shelf {i % 97} in room {i % 13}"
        events.append({"op": "memory.add", "id": new_ulid(ms), "at": iso_from_ms(ms), "by": instance, "v": 1,
                       "text": text, "kind": "note", "tags": [topics[i % 10]]})  # fmt: skip
    for start in range(0, count, 2000):
        store.append_events(home, instance, events[start : start + 2000])
    soul = Soul.open(home, instance)
    soul.commit(["memories"], f"bench: seed {count}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def round_trips(client: Any, rounds: int) -> dict[str, dict[str, float]]:
    remember, recall = [], []
    stamp = time.time_ns()
    await client.call_tool("recall", {"query": "warm up the index"})  # the warm numbers are the target
    for i in range(rounds):
        start = time.perf_counter()
        result = await client.call_tool("remember", {"text": f"bench round trip {stamp} number {i}"})
        remember.append(time.perf_counter() - start)
        assert not result.is_error, result.content
    for i in range(rounds):
        start = time.perf_counter()
        result = await client.call_tool("recall", {"query": f"shelf {i % 97} room {i % 13} database", "k": 10})
        recall.append(time.perf_counter() - start)
        assert not result.is_error, result.content
    return {"remember": summarize(remember), "recall": summarize(recall)}


def stdio_params(home: Path, env: dict[str, str]) -> Any:
    from mcp.client.stdio import StdioServerParameters

    return StdioServerParameters(command=SOUL, args=["--home", str(home), "--instance", "alpha", "mcp"], env=env)


def bench_stdio(home: Path, env: dict[str, str], spawns: int, rounds: int) -> dict[str, Any]:
    from mcp.client import Client

    async def spawn_once() -> float:
        start = time.perf_counter()
        async with Client(stdio_params(home, env), mode="legacy"):
            return time.perf_counter() - start

    async def session() -> dict[str, Any]:
        async with Client(stdio_params(home, env), mode="legacy", read_timeout_seconds=600) as client:
            return await round_trips(client, rounds)

    init = [anyio.run(spawn_once) for _ in range(spawns)]
    return {"initialized": summarize(init), **anyio.run(session)}


def start_server(home: Path, env: dict[str, str], *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    cmd = [SOUL, "--home", str(home), "serve", "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("soul serve did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def bench_http(home: Path, env: dict[str, str], rounds: int) -> dict[str, Any]:
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    proc, url = start_server(home, env)

    async def session() -> dict[str, Any]:
        async with (
            create_mcp_http_client() as http,
            Client(streamable_http_client(url + "/mcp", http_client=http), mode="legacy") as client,
        ):
            return await round_trips(client, rounds)

    try:
        return anyio.run(session)
    finally:
        stop(proc)


def bench_broadcast(tmp: Path, env: dict[str, str], repeats: int) -> dict[str, Any]:
    """A remembers and syncs (what its daemon does); B's subscriber syncs on the event and B recalls."""
    from soul.core import Soul
    from soul.events_client import Subscriber

    bare = tmp / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    server = tmp / "server"
    sh("--home", str(server), "init", "--instance", "srv", "--remote", str(bare), env=env)
    sh("--home", str(server), "sync", env=env)
    for name in ("a", "b"):
        sh("--home", str(tmp / name), "join", str(bare), "--instance", name, env=env)
    proc, url = start_server(server, env)
    os.environ["SOUL_EMBEDDER"] = "lexical"  # B's recall: the latency measured is the broadcast's
    a, b = Soul.open(tmp / "a", "a"), Soul.open(tmp / "b", "b")
    changed = threading.Event()
    sub = Subscriber(url, None, lambda event: changed.set())  # what B's daemon does: pull now
    sub.start()
    samples, pushes = [], []
    try:
        for _ in range(200):
            if sub.connected:
                break
            time.sleep(0.05)
        for i in range(repeats):
            text = f"broadcast latency probe {time.time_ns()} {i}"
            changed.clear()
            start = time.perf_counter()
            a.remember(text)
            a.sync()
            pushes.append(time.perf_counter() - start)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if changed.wait(0.05):
                    changed.clear()
                    b.sync()
                    if any(hit["text"] == text for hit in b.recall(text, k=3)):
                        break
            samples.append(time.perf_counter() - start)
            time.sleep(0.3)
    finally:
        sub.stop()
        stop(proc)
    return {"a_remember_and_push": summarize(pushes), "a_to_b_recallable": summarize(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--spawns", type=int, default=10)
    parser.add_argument("--broadcasts", type=int, default=10)
    parser.add_argument("--lexical", action="store_true", help="Use the lexical embedder instead of MiniLM.")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="soul-bench-mcp-"))
    env = {**os.environ, "HOME": str(tmp), "SOUL_HOME": str(tmp / "soul")}
    if args.lexical:
        env["SOUL_EMBEDDER"] = "lexical"
    try:
        home = tmp / "soul"
        sh("--home", str(home), "init", "--instance", "alpha", env=env)
        use_model(home, args.lexical)
        seed(home, "alpha", args.memories)
        sh("--home", str(home), "--instance", "alpha", "index", "rebuild", env=env)
        stdio = bench_stdio(home, env, args.spawns, args.rounds)
        http = bench_http(home, env, args.rounds)
        broadcast = bench_broadcast(tmp, {**env, "SOUL_EMBEDDER": "lexical"}, args.broadcasts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [
        ("stdio: spawn to initialized", stdio["initialized"], "< 700 ms"),
        (f"stdio: remember round trip ({args.memories} memories)", stdio["remember"], ""),
        (f"stdio: recall round trip, warm ({args.memories} memories)", stdio["recall"], "< 20 ms"),
        ("http: remember round trip", http["remember"], ""),
        ("http: recall round trip, warm", http["recall"], "< 20 ms"),
        ("broadcast: A remember + push", broadcast["a_remember_and_push"], ""),
        ("broadcast: A remember -> B recallable", broadcast["a_to_b_recallable"], "< 2000 ms"),
    ]
    print_table("MCP and broadcast", rows)
    params = {"memories": args.memories, "rounds": args.rounds, "embedder": "lexical" if args.lexical else "MiniLM"}
    path = write_results("mcp", {"params": params, "stdio": stdio, "http": http, "broadcast": broadcast})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
