"""Identifiers and timestamps: ULIDs (sortable ids) and UTC ISO-8601 times with milliseconds.

`SOUL_CLOCK_SKEW` (seconds, may be negative) shifts this process's clock; it exists so tests can
simulate a machine whose clock is wrong, which sync must survive.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def now_ms() -> int:
    skew = os.environ.get("SOUL_CLOCK_SKEW")
    offset = int(float(skew) * 1000) if skew else 0
    return time.time_ns() // 1_000_000 + offset


def iso_from_ms(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def now_iso() -> str:
    return iso_from_ms(now_ms())


def parse_iso(value: str) -> datetime:
    """Parse an ISO-8601 time or date; naive values are taken as UTC."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_ulid(ms: int | None = None) -> str:
    """A ULID; monotonic within this process so ids made in the same millisecond still sort."""
    global _last_ms, _last_rand
    stamp = now_ms() if ms is None else ms
    with _lock:
        if stamp <= _last_ms:
            stamp = _last_ms
            _last_rand += 1
        else:
            _last_rand = int.from_bytes(os.urandom(10), "big")
        _last_ms = stamp
        rand = _last_rand & ((1 << 80) - 1)
    return _encode(stamp, 10) + _encode(rand, 16)


def is_ulid(value: str) -> bool:
    return len(value) == 26 and all(c in _CROCKFORD for c in value.upper())
