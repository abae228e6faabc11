"""A fast path for the commands assistants call most: `remember`, `get` and `recall --json`.

Building the full typer application costs more than the work itself (typer imports click, rich
and pydantic and builds a validator per option), which would break the write-path budget. This
parser accepts only the well-formed common shapes of those two commands and returns False for
anything else (help, unknown options, typos), which then goes through the full typer CLI, so the
user-facing behaviour is defined in one place. tests/test_cli_fast.py checks that both paths agree.
`SOUL_NO_FAST_PATH=1` turns it off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

_GLOBAL = {"--home", "--instance"}
_REMEMBER_VALUES = {"--kind": "kind", "--tag": "tag", "-t": "tag", "--project": "project", "-p": "project"}
_REMEMBER_FLAGS = {"--redact": "redact", "--allow-duplicate": "allow_duplicate", "--json": "json"}
_RECALL_VALUES = {
    "-k": "k",
    "--limit": "k",
    "--kind": "kind",
    "--tag": "tag",
    "-t": "tag",
    "--project": "project",
    "-p": "project",
    "--since": "since",
}


def run(argv: list[str]) -> bool:
    """Handle argv if it is a plain remember/get; return False to defer to the full CLI."""
    if os.environ.get("SOUL_NO_FAST_PATH"):
        return False
    parsed = _split_globals(argv)
    if parsed is None:
        return False
    glob, rest = parsed
    if not rest:
        return False
    command, args = rest[0], rest[1:]
    if command == "remember":
        opts = _parse(args, _REMEMBER_VALUES, _REMEMBER_FLAGS, max_positional=1)
        if opts is None or len(opts["_pos"]) != 1:
            return False
        _remember(glob, opts)
        return True
    if command == "recall":
        # Only the JSON form: the human table needs rich, which is the full CLI's job.
        opts = _parse(args, _RECALL_VALUES, {"--json": "json"}, max_positional=1)
        if opts is None or len(opts["_pos"]) != 1 or not opts.get("json") or len(opts["tag"]) > 1:
            return False
        k = opts.get("k", "10")
        if not (k.isdigit() and 1 <= int(k) <= 1000):
            return False
        _recall(glob, opts, int(k))
        return True
    if command == "get":
        opts = _parse(args, {}, {"--resolve": "resolve", "--json": "json"}, max_positional=1)
        if opts is None or len(opts["_pos"]) != 1 or not opts["_pos"][0]:
            return False
        _get(glob, opts)
        return True
    return False


def _split_globals(argv: list[str]) -> tuple[dict[str, str], list[str]] | None:
    glob: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("--") and argv[i] not in ("--",):
        name, eq, value = argv[i].partition("=")
        if name not in _GLOBAL:
            return None
        if not eq:
            if i + 1 >= len(argv):
                return None
            value = argv[i + 1]
            i += 1
        glob[name[2:]] = value
        i += 1
    return glob, argv[i:]


def _parse(
    args: list[str], values: dict[str, str], flags: dict[str, str], max_positional: int
) -> dict[str, Any] | None:
    out: dict[str, Any] = {"_pos": [], "tag": []}
    i = 0
    only_positional = False
    while i < len(args):
        arg = args[i]
        if only_positional or arg == "-" or not arg.startswith("-"):
            out["_pos"].append(arg)
        elif arg == "--":
            only_positional = True
        elif arg in flags:
            out[flags[arg]] = True
        else:
            name, eq, value = arg.partition("=")
            if name not in values:
                return None  # -h, --help, unknown or abbreviated options: the full CLI explains
            if not eq:
                if i + 1 >= len(args):
                    return None
                i += 1
                value = args[i]
            key = values[name]
            if key == "tag":
                out["tag"].append(value)
            elif key in out:
                return None
            else:
                out[key] = value
        i += 1
    if len(out["_pos"]) > max_positional:
        return None
    return out


def _open(glob: dict[str, str]) -> Any:
    from soul.core import Soul

    home = glob.get("home") or os.environ.get("SOUL_HOME")
    return Soul.open(Path(home) if home else None, glob.get("instance"))


def _remember(glob: dict[str, str], opts: dict[str, Any]) -> None:
    import json

    result = _open(glob).remember(
        read_arg(opts["_pos"][0]),
        kind=opts.get("kind", "note"),
        tags=opts["tag"],
        project=opts.get("project"),
        redact=bool(opts.get("redact")),
        allow_duplicate=bool(opts.get("allow_duplicate")),
    )
    if opts.get("json"):
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n")
    elif result.duplicate_of:
        sys.stderr.write(f"already remembered as {result.id}\n")
    else:
        sys.stderr.write(f"remembered {result.id}\n")


def read_arg(value: str) -> str:
    """VALUE, or stdin when it is `-`; undecodable bytes are refused, not mangled."""
    if value != "-":
        return value
    raw = sys.stdin.buffer.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        from soul.errors import UsageError

        raise UsageError(f"stdin is not valid UTF-8 (byte {exc.start})") from None


def _recall(glob: dict[str, str], opts: dict[str, Any], k: int) -> None:
    import json

    hits = _open(glob).recall(
        read_arg(opts["_pos"][0]),
        k=k,
        kind=opts.get("kind"),
        tag=opts["tag"][0] if opts["tag"] else None,
        project=opts.get("project"),
        since=opts.get("since"),
    )
    sys.stdout.write(json.dumps(hits, ensure_ascii=False, indent=2, default=str) + "\n")


def _get(glob: dict[str, str], opts: dict[str, Any]) -> None:
    import json

    key = opts["_pos"][0]
    value, source = _open(glob).get_setting(key, resolve=bool(opts.get("resolve")))
    if opts.get("json"):
        out = {"key": key, "value": value, "source": source}
        sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        rendered = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        sys.stdout.write(f"{rendered}\n")
