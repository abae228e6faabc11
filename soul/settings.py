"""Settings: `settings/global.toml` and `settings/machines/<instance>.toml`.

Reads use the stdlib `tomllib` (fast, read-only); writes use `tomlkit` so that comments, order
and formatting a human wrote survive. A file that does not parse is never rewritten: the error
names the file, line and column. Resolution order: machine > global > accepted inferred
preference > default. `${env:NAME}` values are resolved only when asked.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from soul import fsutil
from soul.errors import NotFound, SettingsError

_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_ENV_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
MISSING: Any = object()

DEFAULTS: dict[str, Any] = {}


def global_path(home: Path) -> Path:
    return home / "settings" / "global.toml"


def machine_path(home: Path, instance: str) -> Path:
    return home / "settings" / "machines" / f"{instance}.toml"


class InvalidKey(SettingsError):
    """A key that is not a dotted name is bad input, not a broken file: a usage error (exit 2)."""

    exit_code = 2


def check_key(key: str) -> list[str]:
    if not _KEY_RE.match(key) or len(key) > 200:
        raise InvalidKey(
            f"invalid settings key {key!r}",
            hint="keys are dotted names of letters, digits, '_' and '-', e.g. editor.tab_width",
        )
    return key.split(".")


def read(path: Path) -> dict[str, Any]:
    """Parse a TOML file (missing = empty); a parse error names file, line and column."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not valid UTF-8 at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: {exc}", hint="fix the file by hand; soul left it untouched") from None


def lookup(data: dict[str, Any], parts: list[str]) -> Any:
    node: Any = data
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def parse_value(text: str) -> Any:
    """A CLI value: a TOML literal when it is one (42, true, [1, 2], "quoted"), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def resolve_env(value: Any) -> Any:
    """Replace `${env:NAME}` references with the environment's values (only on request)."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise NotFound(f"environment variable {name} is not set", hint=f"export {name}=...")
            return os.environ[name]

        return _ENV_RE.sub(sub, value)
    if isinstance(value, list):
        return [resolve_env(v) for v in value]
    if isinstance(value, dict):
        return {k: resolve_env(v) for k, v in value.items()}
    return value


def _load_doc(path: Path) -> Any:
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not valid UTF-8 at byte {exc.start}") from None
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        raise SettingsError(
            f"{path}: invalid TOML at line {exc.line}, column {exc.col}: {exc}",
            hint="fix the file by hand; soul left it untouched",
        ) from None


def write_key(path: Path, key: str, value: Any) -> None:
    """Set a dotted key in `path`, keeping every comment and the order of everything else."""
    import tomlkit

    parts = check_key(key)
    doc = _load_doc(path)
    node = doc
    for part in parts[:-1]:
        if part not in node:
            node[part] = tomlkit.table()
        node = node[part]
        if not isinstance(node, dict):
            raise SettingsError(f"cannot set {key}: {part} is a value, not a table")
    node[parts[-1]] = value
    fsutil.atomic_write(path, tomlkit.dumps(doc))


def remove_key(path: Path, key: str) -> bool:
    """Remove a dotted key; empty parent tables are removed too. Returns whether it existed."""
    import tomlkit

    parts = check_key(key)
    if not path.exists():
        return False
    doc = _load_doc(path)
    chain = [doc]
    node: Any = doc
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
        chain.append(node)
    if not isinstance(node, dict) or parts[-1] not in node:
        return False
    del node[parts[-1]]
    for depth in range(len(parts) - 1, 0, -1):
        parent, child = chain[depth - 1], parts[depth - 1]
        if isinstance(parent[child], dict) and len(parent[child]) == 0:
            del parent[child]
        else:
            break
    fsutil.atomic_write(path, tomlkit.dumps(doc))
    return True


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, full + "."))
        else:
            out[full] = value
    return out
