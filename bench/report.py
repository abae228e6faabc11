"""Turn bench/results.json into plots (docs/img/*.png) and the Markdown report (docs/benchmarks.md).

Only reads the collected results; never runs anything. Every figure shown is a median with its min
and max; ratios are computed from medians. Missing areas (a script that failed or does not exist yet)
are reported as missing, never filled in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCALE_LINES = [
    ("remember", "soul remember (process)"),
    ("recall_warm_process", "soul recall (process, daemon warm)"),
    ("recall_cold_process", "soul recall (process, cold, index current)"),
    ("recall_cold_catch_up", "soul recall (process, cold, first after new memories: catch-up)"),
    ("recall_warm_in_process", "recall in process (warm)"),
    ("numpy_floor_same_vectors", "numpy brute force (floor)"),
    ("rebuild", "index rebuild"),
    ("sync_noop", "soul sync, nothing to do"),
    ("sync_incoming_3", "soul sync, 3 incoming"),
]


def ms(s: dict[str, Any] | None) -> str:
    """'median (min–max) unit', in seconds when the median is 10 s or more."""
    if not s or "median_ms" not in s:
        return "n/a"
    scale, unit = (1000.0, "s") if s["median_ms"] >= 10_000 else (1.0, "ms")
    return f"{_num(s['median_ms'] / scale)} ({_num(s['min_ms'] / scale)}–{_num(s['max_ms'] / scale)}) {unit}"


def one(s: dict[str, Any] | None) -> str:
    """The median alone, with its unit."""
    if not s or "median_ms" not in s:
        return "n/a"
    return f"{_num(s['median_ms'] / 1000)} s" if s["median_ms"] >= 10_000 else f"{_num(s['median_ms'])} ms"


def _num(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}"
    if x >= 1:
        return f"{x:.1f}"
    return f"{x:.3f}"


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | float | None) -> str:
    if not a or b is None:
        return "n/a"
    denom = b if isinstance(b, float | int) else b.get("median_ms")
    if not denom:
        return "n/a"
    return f"{a['median_ms'] / denom:.1f}×"


# ---------------------------------------------------------------------- plots


def _scale_axes(ax: Any, xs: list[int], ylabel: str, title: str, ncol: int) -> None:
    """Log-log axes over the scale series' sizes, labelled, with the legend below."""
    import matplotlib.ticker

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(xs, [f"{x:,}" for x in xs])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("memories in the soul")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=ncol)


def plot_scale(scale: dict[str, Any], path: Path) -> bool:
    rows = scale.get("sizes", [])
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    xs = [r["memories"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.4), gridspec_kw={"width_ratios": [2.2, 1]})
    for key, label in SCALE_LINES:
        pts = [(r["memories"], r[key]) for r in rows if key in r]
        if not pts:
            continue
        x = [p[0] for p in pts]
        med = [p[1]["median_ms"] for p in pts]
        lo = [p[1]["median_ms"] - p[1]["min_ms"] for p in pts]
        hi = [p[1]["max_ms"] - p[1]["median_ms"] for p in pts]
        style = "--" if "floor" in label else "-"
        left.errorbar(x, med, yerr=[lo, hi], marker="o", linestyle=style, capsize=3, label=label)
    _scale_axes(left, xs, "latency, ms (median; bars: min–max)", "Latency vs number of memories", ncol=3)
    mb = 1e6
    right.plot(xs, [r["disk"]["git_bytes"] / mb for r in rows], marker="o", label="git repository (.git)")
    right.plot(xs, [r["disk"]["worktree_bytes"] / mb for r in rows], marker="o", label="logs in the work tree")
    right.plot(xs, [r["disk"]["index_and_cache_bytes"] / mb for r in rows], marker="o", label="index + embedding cache")
    right.plot(xs, [r.get("daemon_rss_bytes", 0) / mb for r in rows], marker="s", label="daemon RSS (warm)")
    _scale_axes(right, xs, "MB", "Disk and memory", ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_sync(scale: dict[str, Any], sync: dict[str, Any], path: Path) -> bool:
    rows = [r for r in scale.get("sizes", []) if "a_to_b" in r]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['memories']:,}\nmanual syncs" for r in rows]
    parts = [
        ("remember_a", "A: soul remember"),
        ("sync_a_push", "A: soul sync (push)"),
        ("sync_b_pull", "B: soul sync (pull)"),
    ]
    fig, ax = plt.subplots(figsize=(9, 4.8))
    bottom = [0.0] * len(rows)
    for key, label in parts:
        vals = [r["a_to_b"][key]["median_ms"] / 1000 for r in rows]
        ax.bar(labels, vals, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    totals = [r["a_to_b"]["total"] for r in rows]
    ax.errorbar(
        labels,
        [t["median_ms"] / 1000 for t in totals],
        yerr=[
            [(t["median_ms"] - t["min_ms"]) / 1000 for t in totals],
            [(t["max_ms"] - t["median_ms"]) / 1000 for t in totals],
        ],
        fmt="none",
        ecolor="black",
        capsize=4,
        label="total min–max",
    )
    daemon = {}
    for key, value in sync.get("latency", {}).items():
        stats = value if isinstance(value, dict) and "median_ms" in value else (value or {}).get("in_view")
        if isinstance(stats, dict) and "median_ms" in stats:
            daemon[key] = stats
    for key, stats in daemon.items():
        label = "daemons\n(" + key.split("daemons at ")[-1] + " interval)"
        ax.bar([label], [stats["median_ms"] / 1000], color="grey", label="remember on A -> in B's view (daemons)")
        ax.errorbar(
            [label],
            [stats["median_ms"] / 1000],
            yerr=[[(stats["median_ms"] - stats["min_ms"]) / 1000], [(stats["max_ms"] - stats["median_ms"]) / 1000]],
            fmt="none",
            ecolor="black",
            capsize=4,
        )
    ax.set_ylabel("seconds (median; bar: min–max of the total)")
    ax.set_title("Sync latency A -> B: a memory written on A, readable on B")
    ax.grid(True, axis="y", alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_peers(peers: dict[str, Any], path: Path) -> bool:
    names = [n for n in ("soul", "mcp-memory-service", "server-memory", "server-memory per word") if n in peers]
    if not names:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, qual) = plt.subplots(1, 2, figsize=(14, 4.8))
    x = range(len(names))
    for off, key, label in ((-0.2, "store", "store one memory"), (0.2, "search", "search one question")):
        med = [peers[n][key]["median_ms"] for n in names]
        err = [
            [peers[n][key]["median_ms"] - peers[n][key]["min_ms"] for n in names],
            [peers[n][key]["max_ms"] - peers[n][key]["median_ms"] for n in names],
        ]
        lat.bar([i + off for i in x], med, width=0.4, yerr=err, capsize=3, label=label)
    lat.set_xticks(list(x), names)
    lat.set_yscale("log")
    lat.set_ylabel("ms over MCP stdio (median; bars: min–max)")
    lat.set_title("Latency, same MCP client")
    lat.legend(fontsize=8)
    lat.grid(True, axis="y", alpha=0.3)
    for off, qset in ((-0.2, "paraphrase"), (0.2, "keyword")):
        qual.bar([i + off for i in x], [peers[n][qset]["hit@5"] for n in names], width=0.4, label=f"{qset} questions")
    qual.set_xticks(list(x), names)
    qual.set_ylim(0, 1.2)
    qual.set_ylabel("hit@5 (answer in the top 5)")
    qual.set_title("Recall quality on tests/data/recall_eval.json")
    qual.legend(fontsize=8, loc="upper center", ncol=2)
    qual.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------- markdown


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every {median_ms, min_ms, max_ms} found in another engineer's JSON, with its path."""
    if isinstance(obj, dict):
        if "median_ms" in obj and "min_ms" in obj:
            return [(prefix, obj)]
        if {"median", "min", "max"} <= obj.keys():  # seconds, as some scripts write them
            return [(prefix, {f"{k}_ms": obj[k] * 1000 for k in ("median", "min", "max")})]
        out = []
        for key, value in obj.items():
            if key in ("machine",):
                continue
            out += flatten(value, f"{prefix} / {key}" if prefix else str(key))
        return out
    if isinstance(obj, list):
        out = []
        for i, value in enumerate(obj):
            tag = str(value.get("memories", i)) if isinstance(value, dict) else str(i)
            out += flatten(value, f"{prefix} [{tag}]")
        return out
    return []


def section_summary(res: dict[str, Any]) -> list[str]:
    """Headline findings, each computed from the figures below (nothing typed in by hand)."""
    lines = ["## Summary", ""]
    peers = res.get("peers", {})
    if "soul" in peers:
        names = [n for n in ("soul", "mcp-memory-service", "server-memory", "server-memory per word") if n in peers]
        hits = "; ".join(
            f"{n} {peers[n]['paraphrase']['hit@5']:.2f} ({peers[n]['paraphrase']['mrr@5']:.2f}) /"
            f" {peers[n]['keyword']['hit@5']:.2f} ({peers[n]['keyword']['mrr@5']:.2f})"
            for n in names
        )
        lines.append(f"- Recall quality, hit@5 (MRR@5) on paraphrase / keyword questions: {hits}.")
        lat = ", ".join(f"{n} {one(peers[n]['search'])}" for n in names)
        lines.append(f"- Search latency over MCP stdio (median): {lat}.")
    fl = res.get("floors", {}).get("results", {})
    cli = res.get("cli", {}).get("results", {})
    py, git = fl.get("python -c pass"), fl.get("git add + commit one line")
    rem = cli.get("soul remember (with local commit)")
    if rem and py and git:
        lines.append(
            f"- `soul remember` (a whole process, with its git commit): {one(rem)},"
            f" {ratio(rem, float(py['median_ms'] + git['median_ms']))} the floor of python start + git commit"
            f" ({one(py)} + {one(git)} on this machine)."
        )
    rows = res.get("scale", {}).get("sizes", [])
    if rows:
        big = rows[-1]
        n = f"{big['memories']:,}"
        warm, floor = big.get("recall_warm_in_process"), big.get("numpy_floor_same_vectors")
        if warm and floor:
            lines.append(
                f"- At {n} memories: recall warm in process {one(warm)} (numpy brute force over"
                f" the same vectors: {one(floor)}); `soul recall` with the daemon warm"
                f" {ms(big.get('recall_warm_process'))}, cold {ms(big.get('recall_cold_process'))};"
                f" daemon RSS {big.get('daemon_rss_bytes', 0) / 1e6:.0f} MB;"
                f" .git {big['disk']['git_bytes'] / 1e6:.1f} MB."
            )
        lines.append(
            f"- `soul sync` with nothing to do: {ms(big.get('sync_noop'))} at {n}; a memory written on A is on B"
            f" after A's and B's syncs in {ms(big.get('a_to_b', {}).get('total'))}."
        )
    return [*lines, ""]


def section_noise(full: dict[str, Any]) -> list[str]:
    m, noise = full["machine"], full["noise"]
    loads = [x for st in full["steps"].values() for x in (st.get("load_before"), st.get("load_after")) if x]
    peak = max((x[0] for x in loads), default=noise["load_before"][0])
    busy = (
        f"Above {m['cpus']} (the cpu count), work waited for a cpu: the machine was shared with other builds and"
        " test suites, so absolute times are pessimistic and spreads (min–max) wide."
        if peak > (m["cpus"] or 1)
        else f"That is below the cpu count ({m['cpus']}): the machine was quiet while this ran."
    )
    lines = [
        "## Machine and noise",
        "",
        f"- Run at {full['at']} (UTC), {'quick smoke run' if full.get('quick') else 'full run'},"
        f" wall time {full.get('wall_s')} s.",
        *(
            [
                "- Steps run afterwards and merged into this report: "
                + ", ".join(dict.fromkeys(step for r in full["rerun"] for step in r["steps"]))
                + f" (latest at {full['rerun'][-1].get('at', '?')})."
            ]
            if full.get("rerun")
            else []
        ),
        f"- {m['cpu']}, {m['cpus']} cpus, {m['memory_gb']} GB RAM; {m['platform']}; Python {m['python']};"
        f" {m['git']}; node {m['node']}.",
        f"- Load average (1, 5, 15 min) before: {noise['load_before']}, after: {noise['load_after']}; the"
        f" highest 1-minute load at a step boundary was {peak}. {busy} Ratios to floors are the steadier"
        " figures; the per-step loads below show which steps ran under similar load.",
        "",
        "| step | status | seconds | load before | load after |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for name, step in full["steps"].items():
        stale = "" if step.get("fresh", True) else " (older JSON reported)"
        lines.append(
            f"| {name} | {step.get('status')}{stale} | {step.get('seconds', '')} |"
            f" {step.get('load_before', '')} | {step.get('load_after', '')} |"
        )
    return [*lines, ""]


def section_floors(res: dict[str, Any]) -> list[str]:
    fl = res.get("floors", {}).get("results", {})
    cli = res.get("cli", {}).get("results", {})
    scale = res.get("scale", {}).get("sizes", [])
    py, git = fl.get("python -c pass"), fl.get("git add + commit one line")
    lines = [
        "## Floors and ratios",
        "",
        "What the tools under soul cost on their own, in the same run. A ratio of 1.0× would mean soul adds"
        " nothing on top.",
        "",
        "| floor | median (min–max) |",
        "| --- | ---: |",
    ]
    for key, stats in fl.items():
        if "median_ms" in stats:
            lines.append(f"| {key} | {ms(stats)} |")
    for n, stats in fl.get("numpy brute-force top-10 (random unit vectors)", {}).items():
        lines.append(f"| numpy top-10 over {int(n):,} random vectors | {ms(stats)} |")
    lines += ["", "| soul figure | median (min–max) | ratio to floor |", "| --- | ---: | --- |"]
    rem = cli.get("soul remember (with local commit)") or (scale[0].get("remember") if scale else None)
    if rem and py and git:
        both = py["median_ms"] + git["median_ms"]
        lines.append(
            f"| soul remember (process, with its commit) | {ms(rem)} | {ratio(rem, float(both))} of"
            " python start + git commit |"
        )
    if cli.get("soul get") and py:
        lines.append(f"| soul get (process) | {ms(cli['soul get'])} | {ratio(cli['soul get'], py)} of python start |")
    for row in scale:
        n = f"{row['memories']:,}"
        warm, floor = row.get("recall_warm_in_process"), row.get("numpy_floor_same_vectors")
        emb = row.get("query_embedding")  # measured in the same step, under the same load
        if warm and floor and emb:
            lines.append(
                f"| recall at {n}, warm in process | {ms(warm)} |"
                f" {ratio(warm, float(emb['median_ms'] + floor['median_ms']))} of query embedding +"
                " numpy brute force |"
            )
        if row.get("recall_warm_process") and py:
            lines.append(
                f"| soul recall at {n}, process, daemon warm | {ms(row['recall_warm_process'])} |"
                f" {ratio(row['recall_warm_process'], py)} of python start |"
            )
    return [*lines, ""]


def section_peers(peers: dict[str, Any], has_plot: bool) -> list[str]:
    if "soul" not in peers:
        return ["## Peers", "", "Not measured in this run.", ""]
    lines = [
        "## Peers on the same data, through the same MCP client",
        "",
        f"Data: `{peers.get('eval_set')}` (60 memories; {peers['soul']['paraphrase']['questions']} paraphrase"
        f" and {peers['soul']['keyword']['questions']} keyword questions). Each server is spawned over stdio by"
        " the official Python MCP SDK client. `server-memory` is `@modelcontextprotocol/server-memory`"
        f" {peers.get('server_memory_version', '')} from the npm registry; its search is a substring match of"
        ' the whole query, so it is also measured "per word" (one search per word of 4+ letters, ranked by'
        " words matched: the best an agent can do with it; its latency is the sum of those calls)."
        f" `mcp-memory-service` is {peers.get('python_peer', {}).get('package', 'mcp-memory-service-lite')} from"
        " PyPI (`memory server`, sqlite-vec storage, the same all-MiniLM-L6-v2 model through ONNX, its semantic"
        " search mode), run offline as described below.",
        "",
        "| server | store | search | paraphrase hit@1 / hit@5 / MRR | keyword hit@1 / hit@5 / MRR |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for name in ("soul", "mcp-memory-service", "server-memory", "server-memory per word"):
        if name not in peers:
            continue
        p = peers[name]
        q = [f"{p[s]['hit@1']:.2f} / {p[s]['hit@5']:.2f} / {p[s]['mrr@5']:.2f}" for s in ("paraphrase", "keyword")]
        lines.append(f"| {name} | {ms(p['store'])} | {ms(p['search'])} | {q[0]} | {q[1]} |")
    lines += [
        "",
        "| peer | store time / soul's | search time / soul's | hit@5 soul minus peer (paraphrase, keyword) |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, r in peers.get("ratios", {}).items():
        d = r["hit@5_soul_minus_peer"]
        lines.append(
            f"| {name} | {r['store_peer_over_soul']:.2f}× | {r['search_peer_over_soul']:.2f}× |"
            f" {d['paraphrase']:+.2f}, {d['keyword']:+.2f} |"
        )
    lines += [
        "",
        "Both semantic servers had their semantic de-duplication turned off (soul: `duplicate_threshold = false`;"
        " mcp-memory-service: a `conversation_id` on each store), so all 60 memories are kept as in the reference"
        " server. Soul's store is an append to its log plus a local git commit; its search embeds the question"
        " with the offline MiniLM model and runs hybrid (vector + BM25) search. The reference server rewrites"
        " one JSON file on each write and has no semantic search.",
        "",
    ]
    py = peers.get("python_peer", {})
    lines += [f"Python memory server from PyPI: {'ran' if py.get('ran') else 'none ran'}. {py.get('reason', '')}", ""]
    if has_plot:
        lines += ["![peers](img/peers.png)", ""]
    return lines


def section_scale(scale: dict[str, Any], plots: dict[str, bool]) -> list[str]:
    rows = scale.get("sizes", [])
    if not rows:
        return ["## Scale series", "", "Not measured in this run.", ""]
    lines = [
        "## Scale series: 1k, 10k, 100k memories",
        "",
        f"One soul grows through the sizes; each figure is the median of {scale.get('repeat')} runs (cold"
        f" recall: {scale.get('cold_runs')}; rebuild: {rows[-1].get('rebuild', {}).get('n', '?')}–"
        f"{rows[0].get('rebuild', {}).get('n', '?')}) with min–max. Texts are memory-like sentences of"
        " 30–600 characters (median ≈ 90). The first"
        f" {scale.get('pool_embedded_for_real')} memories are embedded for real by the offline model; the"
        " vectors of the others are seeded into the embedding cache as noisy copies of those, so rebuild"
        " times exclude embedding (the embedding throughput is given below the table).",
        "",
        "| figure | " + " | ".join(f"{r['memories']:,}" for r in rows) + " |",
        "| --- | " + " | ".join("---:" for _ in rows) + " |",
    ]
    for key, label in SCALE_LINES:
        lines.append(f"| {label} | " + " | ".join(ms(r.get(key)) for r in rows) + " |")
    lines.append(
        "| A remember -> B has it (remember + 2 syncs) | "
        + " | ".join(ms(r.get("a_to_b", {}).get("total")) for r in rows)
        + " |"
    )
    mb = 1e6
    for key, label in (
        ("git_bytes", ".git"),
        ("worktree_bytes", "logs (work tree)"),
        ("index_and_cache_bytes", "index + embedding cache (.soul)"),
    ):
        lines.append(f"| {label}, MB | " + " | ".join(f"{r['disk'][key] / mb:.1f}" for r in rows) + " |")
    lines.append(
        "| daemon RSS warm (peak), MB | "
        + " | ".join(
            f"{r.get('daemon_rss_bytes', 0) / mb:.0f} ({r.get('daemon_peak_rss_bytes', 0) / mb:.0f})" for r in rows
        )
        + " |"
    )
    first = rows[0].get("pool_embedding_s")
    if first:
        lines += [
            "",
            f"Embedding throughput (the {scale.get('pool_embedded_for_real')} real embeddings, offline MiniLM):"
            f" {rows[0].get('embedding_per_s')} memories/s on this machine under this load. A first build of"
            " 100k memories from nothing would spend nearly all its time embedding; rebuilds read the cache.",
        ]
    if plots.get("scale"):
        lines += ["", "![latency vs memories](img/scale_latency.png)"]
    if plots.get("sync"):
        lines += ["", "![sync latency A -> B](img/sync_latency.png)"]
    return [*lines, ""]


METHOD = [
    "## How the figures are taken",
    "",
    "- Whole processes (`soul remember`, `soul recall`, `soul sync`) are timed from spawn to exit, the way a"
    " shell or a hook would see them; floors are timed the same way.",
    "- *Cold* `soul recall`: a fresh process with no daemon running. With the index current it loads the"
    " index snapshot (numpy only, no LanceDB) and the model; *cold + catch-up* is the first such process"
    " after new memories, which also folds the logs, updates the LanceDB table and saves a new snapshot."
    " *Daemon warm*: the same command while `soul daemon` runs and has settled (caught up, snapshot saved);"
    " the CLI asks the daemon's warm socket, which has the model and the index in memory.",
    "- *Recall in process*: `SoulIndex.search` on a loaded index (query embedding + hybrid search), the figure"
    " to compare with the numpy brute-force floor over the very same vectors plus the query-embedding floor.",
    "- *Sync, 3 incoming*: B remembers 3 memories and syncs; A's `soul sync` is timed (fetch, merge, commit,"
    " push and the duplicate index; the semantic index catches up at the next recall or in the daemon).",
    "- *A -> B*: A runs `soul remember` and `soul sync`, then B runs `soul sync`; the memory is then in B's log."
    " With daemons instead of manual syncs, the delay is set by the sync interval (see the sync script's figures).",
    "- Repository size: `.git` (the history), the JSONL logs in the work tree, and `.soul/` (index and embedding"
    " cache: derived, never synced). RSS: the daemon's resident set after warming, from /proc.",
    "",
]


def section_others(res: dict[str, Any]) -> list[str]:
    lines = [
        "## Per-area benchmarks",
        "",
        "Figures from the per-area scripts (their own JSON in `bench/results/`), as medians (min–max).",
    ]
    for name in ("cli", "recall", "sync", "mcp", "import", "purge"):
        data = res.get(name)
        if not data:
            lines += ["", f"### {name}", "", "Not measured in this run (script missing or failed)."]
            continue
        flat = flatten({k: v for k, v in data.items() if k not in ("benchmark", "at")})
        when = f" (JSON written {data['at']})" if "at" in data else ""
        lines += ["", f"### {name}{when}", "", "| figure | median (min–max) |", "| --- | ---: |"]
        lines += [f"| {path} | {ms(stats)} |" for path, stats in flat[:40]]
        scalars = {k: v for k, v in data.items() if isinstance(v, int | float) and k not in ("n",)}
        if scalars:
            lines += ["", ", ".join(f"{k}: {v}" for k, v in scalars.items())]
    return [*lines, ""]


def write(full: dict[str, Any], img_dir: Path, report: Path) -> None:
    res = full["results"]
    img_dir.mkdir(parents=True, exist_ok=True)
    plots = {
        "scale": plot_scale(res.get("scale", {}), img_dir / "scale_latency.png"),
        "sync": plot_sync(res.get("scale", {}), res.get("sync", {}), img_dir / "sync_latency.png"),
        "peers": plot_peers(res.get("peers", {}), img_dir / "peers.png"),
    }
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/run_all.py`; `--quick` for a smoke run). Raw numbers, with every"
        " sample count: `bench/results.json`. Each figure is a median of repeated runs with its min and max.",
        "",
    ]
    lines += section_summary(res)
    lines += section_noise(full)
    lines += section_floors(res)
    lines += section_peers(res.get("peers", {}), plots["peers"])
    lines += section_scale(res.get("scale", {}), plots)
    lines += METHOD
    lines += section_others(res)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
