"""Purge records in the repository (`purges/<purge-id>.toml`) and the git facts a purge relies on.

A record names what a purge removed without saying it: the removed ids, a random salt, and salted
sha256 hashes of each removed line and of its normalised text. The id list alone lets another
replica reproduce the removal; the hashes let a person prove later what was removed.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets as pysecrets
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soul import gitutil
from soul.errors import SyncAttention
from soul.ids import now_iso
from soul.purge import select
from soul.view import normalize_text

if TYPE_CHECKING:
    from soul.core import Soul

RECORDS = "purges"
REMOTE = "origin"


def record_text(pid: str, instance: str, ids: list[str], gone: list[select.Line], commits: int) -> str:
    """The purge record: what was removed, provably, without the text."""
    salt = pysecrets.token_hex(16)
    out = [
        "# A purge made by `soul purge`: ids and salted hashes of the removed lines, never their text.",
        "format = 1",
        f'id = "{pid}"',
        f'by = "{instance}"',
        f'at = "{now_iso()}"',
        f'salt = "{salt}"',
        f"commits_rewritten = {commits}",
        "ids = [" + ", ".join(toml_str(i) for i in sorted(ids)) + "]",
    ]
    for ln in sorted(gone, key=lambda x: x.event["id"]):
        text = ln.event.get("text")
        out += ["", "[[removed]]", f'id = "{ln.event["id"]}"', f'op = "{ln.event["op"]}"']
        out.append(f'line_sha256 = "{salted(salt, ln.raw)}"')
        if isinstance(text, str):
            out.append(f'text_sha256 = "{salted(salt, normalize_text(text).encode("utf-8"))}"')
    return "\n".join(out) + "\n"


def toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=True)  # a JSON string with ASCII escapes is a TOML basic string


def salted(salt: str, data: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + data).hexdigest()


def records(repo: Path, ref: str) -> set[str]:
    out = gitutil.run(["ls-tree", "--name-only", "--end-of-options", ref, "--", f"{RECORDS}/"], repo, check=False)
    return {Path(n).name for n in out.stdout.splitlines() if n.endswith(".toml")} if out.ok else set()


def read_record(repo: Path, ref: str, name: str) -> dict[str, Any]:
    shown = gitutil.run(["show", f"{ref}:{RECORDS}/{name}"], repo, check=False)
    try:
        return tomllib.loads(shown.stdout) if shown.ok else {}
    except tomllib.TOMLDecodeError:
        return {}


def embedder_ids(soul: Soul) -> list[str]:
    from soul.embed import LEXICAL_ID

    ids = {LEXICAL_ID, f"fastembed:{soul.config['index'].get('model')}"}
    try:
        state = json.loads((soul.state_dir / "index" / "state.json").read_text(encoding="utf-8"))
        if isinstance(state, dict) and isinstance(state.get("embedder"), str):
            ids.add(state["embedder"])
    except (OSError, ValueError):
        pass
    return sorted(ids)


def remote_url(repo: Path) -> str | None:
    result = gitutil.run(["remote", "get-url", REMOTE], repo, check=False)
    return result.stdout.strip() or None if result.ok else None


def redact(url: str) -> str:
    return re.sub(r"//([^/@:]+):[^/@]*@", r"//\1:***@", url)


def branch(repo: Path, default: str | None = None) -> str:
    result = gitutil.run(["symbolic-ref", "--short", "-q", "HEAD"], repo, check=False)
    name = result.stdout.strip()
    if result.ok and name:
        return name
    if default is not None:
        return default
    raise SyncAttention("the soul is not on a branch (detached HEAD)", hint="run `git switch main` in the soul")


def rev(repo: Path, ref: str) -> str | None:
    result = gitutil.run(["rev-parse", "-q", "--verify", f"{ref}^{{commit}}"], repo, check=False)
    return result.stdout.strip() or None if result.ok else None


def is_ancestor(repo: Path, a: str, b: str) -> bool:
    return gitutil.run(["merge-base", "--is-ancestor", a, b], repo, check=False).ok
