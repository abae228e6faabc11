"""`python -m soul.secret_scan FILE...`: the secret guard as a pre-commit hook for this project.

Prints `path:line:column: rule` for each finding (never the secret) and exits 1 if any.
Test files build their fake credentials at run time, so the repository itself must scan clean.
"""

from __future__ import annotations

import sys
from pathlib import Path

from soul import secrets


def main(paths: list[str]) -> int:
    found = 0
    for name in paths:
        path = Path(name)
        if secrets.is_never_sync_path(path.name):
            print(f"{name}: file name is on the never-sync list")
            found += 1
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for finding in secrets.scan(text):
            print(f"{name}:{finding.line}:{finding.column}: {finding.rule}")
            found += 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
