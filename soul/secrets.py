"""The secret guard: decides whether text that is about to be written holds a credential.

Owns the rule set (provider token formats, private keys, JWTs, passwords in URLs, keyword
assignments, passwords in prose), the entropy heuristics behind the generic rules, and the list of
file names that never sync. Every write path (CLI, MCP, settings, sessions, people, the pre-sync
commit scan) calls `check` or `check_value` before it touches disk; the guard blocks, it never warns.
The rules, thresholds and measured rates are documented in docs/secret-guard.md.

Invariants: a scan takes time linear in the input, and no message or exception raised here contains
the credential. Linear because RE2 (`google-re2`) runs the patterns when it is installed, and because
the patterns are also safe for the `re` fallback: no nested quantifiers, bounded repeats (or a single
character class where a format has no length limit), token patterns that may only start where a run
of token characters starts, and values read with string methods after a short match, not by regex.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass

from soul.errors import SecretRefused

# Not `from typing import TYPE_CHECKING`: importing typing alone costs several ms on every command.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Callable, Iterator
    from typing import Any, Protocol

    class _Match(Protocol):
        def span(self) -> tuple[int, int]: ...

    class _Pattern(Protocol):
        def finditer(self, string: Any, /) -> Iterator[_Match]: ...

    _Accept = Callable[[str, int, int, "_ScanMemo"], "tuple[int, int] | None"]

__all__ = ["Finding", "check", "check_value", "is_never_sync_path", "scan"]

# Thresholds (bits per character, Shannon entropy of the candidate itself). See docs/secret-guard.md.
TOKEN_MIN_ENTROPY = 3.0  # provider formats: the prefix is the evidence, this only drops "ghp_xxxx…"
GENERIC_MIN_LENGTH = 8
GENERIC_MIN_ENTROPY = 2.75  # values with 3+ character classes; "Passw0rd" is exactly 2.75
GENERIC_TWO_CLASS_MIN_LENGTH = 16
GENERIC_TWO_CLASS_MIN_ENTROPY = 3.0  # hex or base32 secrets: 32 random hex chars score 3.1-3.9
MAX_VALUE = 1000  # longer keyword/prose values are not judged (the `re` patterns stop there)
PEM_MIN_LINE = 40  # a key pasted without its footer must still show one full-width base64 line

_DIGITS = "0123456789"
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" + _DIGITS
_WORD = _ALNUM + "_"
_URLSAFE = _WORD + "-"
_B64 = _ALNUM + "+/"
_CROCKFORD = frozenset("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
_HEX = frozenset("0123456789abcdefABCDEF")
_SEPARATORS = str.maketrans(dict.fromkeys("_-./@:\\+,=|;~", " "))
_DROP_B64 = str.maketrans(dict.fromkeys(_B64 + "=", None))
_C_LOG_C = (0.0, *(c * math.log2(c) for c in range(1, 1025)))
_DIGIT_SET = frozenset(_DIGITS)
_CODE_CHARS = frozenset("()[]{}")
_DROP_LETTERS = str.maketrans(dict.fromkeys(_ALNUM[:52], None))
_AUTH_CHARS = _ALNUM + "._~+/-="
# Where an unquoted value ends: after `key =` (also at a closing quote, `,`, `;`, `<`), in prose.
_ASSIGNMENT_STOPS = tuple(" \t\r\n\"'`,;<")
_PROSE_STOPS = tuple(" \t\r\n")

# Substrings that mark a value as a stand-in rather than a credential (matched lower-case).
_PLACEHOLDER_PARTS = (
    "example", "placeholder", "changeme", "change_me", "change-me", "your", "redacted", "dummy",
    "sample", "xxxx", "****", "....", "<", ">", "${", "{{", "}}", "%(",
)  # fmt: skip
# Provider tokens are long and random, so only long stand-in words are safe to look for in them.
_TOKEN_PLACEHOLDER_PARTS = ("example", "placeholder", "redacted", "dummy", "sample", "changeme", "xxxxxxxx")
_PLACEHOLDER_WORDS = frozenset(
    {"password", "passwd", "secret", "token", "null", "none", "nil", "undefined", "true", "false",
     "admin", "root", "user", "guest", "test"}
)  # fmt: skip
_PUBLIC_KEY_PREFIXES = ("ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-", "AAAAB3Nza", "AAAAC3Nza", "AAAAE2VjZHNh")


@dataclass(frozen=True)
class Finding:
    """One credential-looking span of a text; `line` and `column` are 1-based, in characters."""

    rule: str
    start: int
    end: int
    line: int
    column: int


# --- value heuristics -------------------------------------------------------------------------


def _entropy(value: str) -> float:
    """Shannon entropy in bits per character: log2(n) - sum(c * log2(c)) / n over character counts."""
    n = len(value)
    counts = Counter(value).values()
    if n < len(_C_LOG_C):  # a table keeps the sum in C: packed lines judge hundreds of values
        return math.log2(n) - sum(map(_C_LOG_C.__getitem__, counts)) / n
    return math.log2(n) - sum(c * math.log2(c) for c in counts) / n


def _classes(value: str) -> int:
    """How many of lower-case, upper-case, digits and other characters occur in `value`."""
    has_digit = not _DIGIT_SET.isdisjoint(value)
    return (value != value.upper()) + (value != value.lower()) + has_digit + (not value.isalnum())


def _is_placeholder(value: str) -> bool:
    low = value.lower()
    if low in _PLACEHOLDER_WORDS or len(set(low)) <= 2 or _is_reference(low):
        return True
    return _literal_search(_PLACEHOLDER_PARTS).search(low) is not None


def _is_reference(value: str) -> bool:
    """`$VAR`, `${env:X}`, `%VAR%`, `%(name)s`, or a `{name}` template field."""
    return value[0] in "$%" or (value[0] == "{" and value[-1] == "}")


def _is_word(segment: str) -> bool:
    """A dictionary-ish word, maybe with a short number attached: `v2`, `base64`, `ed25519`, `2FA`."""
    if segment.isdigit():
        return True
    core = segment.strip(_DIGITS)
    head = len(segment) - len(segment.lstrip(_DIGITS))
    tail = len(segment) - head - len(core)
    return head <= 4 and tail <= 6 and core.isalpha() and _is_cased_like_words(core)


def _is_cased_like_words(letters: str) -> bool:
    """lower, UPPER, Title, camelCase or XMLHttp: every capital starts a hump of 2+ lower-case letters
    (or an acronym at the end). Random mixed case (`tNx`, `IVzXGG`) has one-letter humps."""
    if letters.islower() or letters.isupper():
        return True
    i, n = 0, len(letters)
    while i < n and letters[i].islower():
        i += 1
    while i < n:
        j = i
        while j < n and letters[j].isupper():
            j += 1
        k = j
        while k < n and letters[k].islower():
            k += 1
        if k == j:
            return k == n
        if k - j < 2:
            return False
        i = k
    return True


def _is_words(value: str) -> bool:
    """Words and identifiers, maybe with short numbers (`read_write_token_v2`, `/etc/pw`, `ed25519`),
    and YAML tags, anchors and aliases of them (`!vault`, `*default_password`)."""
    return all(_is_word(s) for s in value.lstrip("!&*@").translate(_SEPARATORS).split())


def _is_uuid(value: str) -> bool:
    return (
        len(value) == 36
        and all(value[i] == "-" for i in (8, 13, 18, 23))
        and all(c in _HEX for c in value.replace("-", ""))
    )


def _is_ulid(value: str) -> bool:
    return len(value) == 26 and value[0] in "01234567" and all(c in _CROCKFORD for c in value.upper())


def _looks_like_credential(value: str, *, quoted: bool) -> bool:
    """The generic test behind keyword and prose rules: long enough, not a reference, not made of
    words or identifiers, and random enough (thresholds above). Cheap rejections come first: a
    packed line can hold hundreds of candidates."""
    if not GENERIC_MIN_LENGTH <= len(value) <= MAX_VALUE:
        return False
    if _is_words(value):
        return False
    # Paths (`~/.config/x.token`, quoted or not) and, unquoted, expressions (`os.environ["X"]`). Keys
    # and tokens never hold a space: a quoted value that does is prose or code (`"a = f(x)"`).
    if value.startswith(("/", "~/", "./", "../")) or (not quoted and not _CODE_CHARS.isdisjoint(value)):
        return False
    if " " in value or "\t" in value:
        return False
    if _is_placeholder(value) or "://" in value or value.startswith(_PUBLIC_KEY_PREFIXES):
        return False
    # Fewer than two letters: numbers, dates, versions, addresses.
    if _is_uuid(value) or _is_ulid(value) or len(value) - len(value.translate(_DROP_LETTERS)) < 2:
        return False
    classes, entropy = _classes(value), _entropy(value)
    if classes >= 3:
        return entropy >= GENERIC_MIN_ENTROPY
    long_enough = len(value) >= GENERIC_TWO_CLASS_MIN_LENGTH
    return classes == 2 and long_enough and entropy >= GENERIC_TWO_CLASS_MIN_ENTROPY


# --- per-rule acceptance: (text, start, end) of the regex candidate -> final span or None -------


class _ScanMemo:
    """What one scan has learnt, so that a line packed with overlapping candidates (`k=k=k=…`) costs
    per character, not per candidate times the length of its value."""

    __slots__ = ("judged", "stops")

    def __init__(self) -> None:
        self.judged: set[tuple[tuple[str, ...], int]] = set()  # (stop set, end) of values judged
        # stop set -> (lo, hi, found): no stop in [lo, found) if found != -1, else none in [lo, hi)
        self.stops: dict[tuple[str, ...], tuple[int, int, int]] = {}

    def next_stop(self, text: str, pos: int, limit: int, stops: tuple[str, ...]) -> int:
        """The first index in [pos, limit) holding one of `stops`, or -1."""
        cached = self.stops.get(stops)
        if cached is not None and cached[0] <= pos:
            lo, hi, found = cached
            if found != -1 and pos <= found:
                return found if found < limit else -1
            if found == -1 and pos <= hi:
                if limit <= hi:
                    return -1
                match = _literal_search(stops).search(text, hi, limit)
                found = match.start() if match else -1
                self.stops[stops] = (lo, limit, found)
                return found
        match = _literal_search(stops).search(text, pos, limit)
        found = match.start() if match else -1
        self.stops[stops] = (pos, limit, found)
        return found


def _accept_token(text: str, start: int, end: int, memo: _ScanMemo) -> tuple[int, int] | None:
    token = text[start:end]
    low = token.lower()
    if _entropy(token) < TOKEN_MIN_ENTROPY or _literal_search(_TOKEN_PLACEHOLDER_PARTS).search(low):
        return None
    return start, end


def _accept_aws_secret(text: str, start: int, end: int, memo: _ScanMemo) -> tuple[int, int] | None:
    # Any 40-char base64 run is a candidate; it is a key only when assigned to a name that says so
    # (`aws_secret_access_key =`, `"SecretAccessKey":`) and is not a word or a hex digest.
    before = text[max(0, start - 80) : start].rstrip(" \t\"'`\\")
    if not before.endswith(("=", ":", ">")):
        return None
    name = before.rstrip("=:> \t\"'`\\")
    ident = name[len(name.rstrip(_WORD + ".-")) :].lower()
    squashed = ident.replace("_", "").replace("-", "").replace(".", "")
    named = "secretaccesskey" in squashed or ("aws" in ident and ("secret" in ident or "private" in ident))
    if not named or _classes(text[start:end]) < 3:
        return None
    return _accept_token(text, start, end, memo)


def _accept_azure_key(text: str, start: int, end: int, memo: _ScanMemo) -> tuple[int, int] | None:
    # The match is `AccountKey = <key>`; 100 + padding repeats the `re` bound, which RE2 runs without.
    start = text.index("=", start) + 1
    start += len(text[start:end]) - len(text[start:end].lstrip(" \t"))
    return _accept_token(text, start, end, memo) if end - start <= 102 else None


def _accept_webhook(text: str, start: int, end: int, memo: _ScanMemo) -> tuple[int, int] | None:
    # The whole URL is the credential, but only its last segment is random.
    tail = text[start:end].rsplit("/", 1)[-1]
    return (start, end) if not _is_placeholder(tail) and _entropy(tail) >= TOKEN_MIN_ENTROPY else None


def _accept_twilio(text: str, start: int, end: int, memo: _ScanMemo) -> tuple[int, int] | None:
    # SK/AC + 32 hex is also the shape of plain ids; require the word "twilio" close by.
    if "twilio" not in text[max(0, start - 200) : end + 200].lower():
        return None
    return _accept_token(text, start, end, memo)


def _accept_url_password(text: str, start: int, end: int, memo: _ScanMemo) -> tuple[int, int] | None:
    # The match is `://user:password@`. No entropy or length test: a password in a URL is a password
    # (even `u:p@h`), unless it is a reference, a mask or a stand-in word. The length limits repeat
    # the `re` pattern's bounds, which RE2 runs without (see _Scanner).
    colon = text.index(":", start + 3)  # the user part holds no colon
    user, start, end = colon - start - 3, colon + 1, end - 1
    if end - start > 256 or user > 128:
        return None
    value = text[start:end]
    low = value.lower()
    if low in _PLACEHOLDER_WORDS or _is_reference(low) or not value.strip("*xX.#-_•"):
        return None
    return None if _literal_search(_PLACEHOLDER_PARTS).search(low) else (start, end)


def _accept_auth_header(text: str, start: int, end: int, memo: _ScanMemo) -> tuple[int, int] | None:
    # The pattern stops 8 characters into the credential; the rest is read here, not by the regex.
    start = end - 8
    window = text[start : start + 2048]
    stop = start + len(window) - len(window.lstrip(_AUTH_CHARS))
    value = text[start:stop]
    if stop - start >= 2048 or _is_placeholder(value) or _is_words(value):
        return None
    return start, stop


def _value_at(text: str, pos: int, stops: tuple[str, ...], memo: _ScanMemo) -> tuple[int, int, bool] | None:
    """The value that starts at `pos`: (start, end, quoted), or None if it is unterminated or
    longer than MAX_VALUE. Values are read here rather than by the patterns so that a match stays
    a few dozen characters long, whatever follows it."""
    limit = min(len(text), pos + MAX_VALUE + 2)
    opener = '\\"' if text.startswith('\\"', pos) else text[pos]
    if opener in ('\\"', '"', "'", "`"):
        close = text.find(opener, pos + len(opener), limit)
        if close == -1 or text.find("\n", pos, close) != -1:
            return None
        return pos + len(opener), close, True
    stop = memo.next_stop(text, pos, limit, stops)
    end = limit if stop == -1 else stop
    return None if end - pos >= MAX_VALUE else (pos, end, False)


_LITERAL_SEARCHES: dict[tuple[str, ...], re.Pattern[str]] = {}


def _literal_search(literals: tuple[str, ...]) -> re.Pattern[str]:
    """A compiled alternation of fixed strings: one C call instead of one `in`/`find` per string,
    which matters when a packed line brings hundreds of candidates. Literals cannot backtrack."""
    if literals not in _LITERAL_SEARCHES:
        import re

        _LITERAL_SEARCHES[literals] = re.compile("|".join(map(re.escape, literals)))
    return _LITERAL_SEARCHES[literals]


def _judge_value(text: str, pos: int, stops: tuple[str, ...], memo: _ScanMemo) -> tuple[int, int] | None:
    read = _value_at(text, pos, stops, memo)
    if read is None:
        return None
    start, end, quoted = read
    # In `k=k=k=…` every keyword starts a candidate whose value runs to the same end; only the
    # first (longest) is judged, or a packed line would be judged once per keyword in it.
    if (stops, end) in memo.judged:
        return None
    memo.judged.add((stops, end))
    if not quoted:
        # Sentence punctuation, closing quotes and brackets of the surrounding text are not the value.
        while end > start and text[end - 1] in ".,;:\"'`":
            end -= 1
        while end > start and text[end - 1] in ")]}" and not any(c in text[start:end] for c in "([{"):
            end -= 1
    if end <= start or not _looks_like_credential(text[start:end], quoted=quoted):
        return None
    return start, end


def _accept_assignment(text: str, start: int, end: int, memo: _ScanMemo) -> tuple[int, int] | None:
    return _judge_value(text, _value_start(text, end), _ASSIGNMENT_STOPS, memo)


def _accept_prose(text: str, start: int, end: int, memo: _ScanMemo) -> tuple[int, int] | None:
    return _judge_value(text, _value_start(text, end), _PROSE_STOPS, memo)


def _value_start(text: str, end: int) -> int:
    """Where the value starts in a keyword or prose match, which ends 8 characters into the value,
    after its opening quote if it has one (`\\"` in escaped JSON). The character before an unquoted
    value is a separator or a space, never a quote, so a quote there is the value's own."""
    pos = end - 8
    if text[pos - 1] in "\"'`":
        pos -= 1
        if text[pos] == '"' and text[pos - 1] == "\\":
            pos -= 1
    return pos


def _accept_private_key(text: str, start: int, end: int, memo: _ScanMemo) -> tuple[int, int] | None:
    """`start` is a `-----BEGIN … PRIVATE KEY-----` header; extend the span over the key body."""
    end = text.index("-----", text.index("PRIVATE KEY", start)) + 5
    # Stop at the next header so that many headers cost one pass, not one pass each.
    limit = text.find("-----BEGIN", end, end + 65536)
    limit = min(len(text), end + 65536) if limit == -1 else limit
    footer = text.find("-----END", end, limit)
    if footer != -1:
        close = text.find("-----", footer + 8, min(footer + 80, limit))
        if close != -1 and "PRIVATE KEY" in text[footer:close]:
            lines = [ln for ln in text[end:footer].splitlines() if ":" not in ln]
            body = "".join("".join(lines).split())
            if len(body) >= 32 and not body.translate(_DROP_B64) and not _is_placeholder(body):
                return start, close + 5
    # Pasted without its footer (or with prose between): take the full-width base64 lines that follow.
    window = text[end:limit]
    offset, last = 0, None
    for token in window.split():
        offset = window.find(token, offset) + len(token)
        if token.translate(_DROP_B64):
            break
        if len(token) < PEM_MIN_LINE:  # the short last line of a key ends it
            last = end + offset if last is not None else None
            break
        last = end + offset
    return (start, last) if last is not None else None


# --- rules ------------------------------------------------------------------------------------


class _Rule:
    """One rule. A plain class rather than a dataclass: this module is imported on every write."""

    __slots__ = ("accept", "anchored", "edge", "icase", "name", "needles", "pattern", "tier")

    def __init__(
        self,
        name: str,
        pattern: str,
        needles: tuple[str, ...],
        accept: _Accept = _accept_token,
        *,
        edge: str = _WORD,
        anchored: bool = True,
        icase: bool = False,
        tier: int = 0,
    ) -> None:
        self.name = name
        self.pattern = pattern  # RE2 ∩ `re` syntax, no capture groups (see _Scanner._compile)
        self.needles = needles  # lower-case; the rule runs only if one of them occurs in the text
        self.accept = accept  # (text, match start, match end, memo) -> the credential's span, or None
        self.edge = edge  # characters that may not touch the credential on either side
        self.anchored = anchored  # a token rule: it may only start where a run of `edge` starts
        self.icase = icase
        self.tier = tier  # 0: a known format; 1: generic. Known formats win overlaps.


_KEYWORDS = (
    r"(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|auth"
    r"|credentials?)"
)
_PROSE_NOUNS = (
    r"(?:password|passwd|passphrase|passcode|secret|token|api[ _-]?key|access[ _-]?key|secret[ _-]?key"
    r"|private[ _-]?key)"
)
_QUOTE = r"(?:\\?[\"'`])?"

_RULES: tuple[_Rule, ...] = (
    # The header must be followed by key material (or an encrypted key's "Proc-Type:" line).
    _Rule("private-key",
          r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----[ \t\r\n]{0,8}"
          r"(?:[A-Za-z0-9+/=]{16}|[A-Z][A-Za-z-]{1,20}:)",
          ("private key",), _accept_private_key, edge="", anchored=False),
    _Rule("aws-access-key-id", r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",
          ("akia", "asia", "abia", "acca", "a3t"), edge=_ALNUM),
    _Rule("aws-secret-access-key", r"[A-Za-z0-9/+]{40}", ("aws", "secretaccesskey", "secret_access_key"),
          _accept_aws_secret, edge=_B64 + "="),
    _Rule("github-pat", r"ghp_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244}", ("ghp_", "github_pat_")),
    _Rule("github-token", r"gh[ousr]_[A-Za-z0-9]{36,251}", ("gho_", "ghu_", "ghs_", "ghr_")),
    _Rule("gitlab-token",
          r"gl(?:pat|ptt|dt|rt|soat|cbt|oas|ft|imt|agent)-[A-Za-z0-9_-]{20,250}(?:\.[0-9a-z]{2}\.[0-9a-z]{7,10})?",
          ("glpat-", "glptt-", "gldt-", "glrt-", "glsoat-", "glcbt-", "gloas-", "glft-", "glimt-",
           "glagent-"), edge=_URLSAFE),
    _Rule("slack-token", r"(?:xox[abposr]|xoxe\.xox[bp]|xoxe|xapp)-[0-9]{1,20}-[A-Za-z0-9-]{8,250}",
          ("xox", "xapp-"), edge=_URLSAFE),
    _Rule("slack-webhook",
          r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9]{6,20}/[A-Za-z0-9]{6,20}"
          r"/[A-Za-z0-9]{16,64}",
          ("hooks.slack.com",), _accept_webhook, edge=_ALNUM),
    _Rule("discord-webhook",
          r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/[A-Za-z0-9_-]{60,80}",
          ("discord",), _accept_webhook, edge=_URLSAFE),
    _Rule("stripe-key", r"(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{16,247}|whsec_[A-Za-z0-9]{32,128}",
          ("sk_live_", "rk_live_", "sk_test_", "rk_test_", "sk_prod_", "rk_prod_", "whsec_")),
    _Rule("anthropic-api-key", r"sk-ant-[A-Za-z0-9_-]{32,250}", ("sk-ant-",), edge=_URLSAFE),
    _Rule("openai-api-key", r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,250}|[A-Za-z0-9]{32,64})",
          ("sk-",), edge=_URLSAFE),
    _Rule("google-api-key", r"AIza[A-Za-z0-9_-]{35}", ("aiza",), edge=_URLSAFE),
    _Rule("huggingface-token", r"(?:hf_|api_org_)[A-Za-z0-9]{34,64}", ("hf_", "api_org_")),
    _Rule("npm-token", r"npm_[A-Za-z0-9]{36}", ("npm_",)),
    _Rule("pypi-token", r"pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,}",
          ("pypi-ag",), edge=_URLSAFE),
    _Rule("sendgrid-api-key", r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", ("sg.",), edge=_URLSAFE + "."),
    _Rule("twilio-key", r"(?:SK|AC)[0-9a-fA-F]{32}", ("twilio",), _accept_twilio, edge=_ALNUM),
    _Rule("azure-storage-key",
          r"(?:AccountKey|SharedAccessKey)[ \t]{0,3}=[ \t]{0,3}[A-Za-z0-9+/]{40,100}={0,2}",
          ("accountkey", "sharedaccesskey"), _accept_azure_key, edge=_B64 + "=", anchored=False, icase=True),
    # Open-ended parts: a JWT has no length limit, and a counted {8,1000} would make RE2's program
    # (and its compile time) ten times larger than all other rules together.
    _Rule("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}", ("eyj",),
          edge=_URLSAFE + ".="),
    _Rule("url-credentials", r"://[^ \t\r\n:@/?#\"'<>\[\]]{0,128}:[^ \t\r\n/?#\"'<>]{1,256}?@", ("://",),
          _accept_url_password, edge="", anchored=False),
    _Rule("authorization-header",
          r"(?:proxy-)?authorization" + _QUOTE + r"[ \t]{0,5}[:=][ \t]{0,5}" + _QUOTE
          + r"(?:bearer|basic|token|bot)[ \t]{1,5}[A-Za-z0-9._~+/-]{8}",
          ("authorization",), _accept_auth_header, edge="", anchored=False, icase=True, tier=1),
    _Rule("keyword-assignment",
          _KEYWORDS + r"[A-Za-z0-9_.-]{0,24}" + _QUOTE + r"[ \t]{0,8}(?:==|=>|:=|=|:|>)[ \t]{0,8}"
          r"(?:\\?\"[^\"\n]{8}|'[^'\n]{8}|`[^`\n]{8}|[^ \t\r\n\"'`,;<]{8})",
          ("pass", "pwd", "secret", "token", "key", "auth", "credential"), _accept_assignment, edge="",
          anchored=False, icase=True, tier=1),
    _Rule("prose-password",
          _PROSE_NOUNS + r"s?(?:[ \t](?:for|to|of|on|at)[ \t][^\n]{0,60}?)?[ \t]{1,3}"
          r"(?:is|was|are|will be|should be):?[ \t]{1,3}(?:now[ \t]{1,3}|still[ \t]{1,3}|set to[ \t]{1,3})?"
          r"(?:\"[^\"\n]{8}|'[^'\n]{8}|`[^`\n]{8}|[^ \t\r\n]{8})",
          ("pass", "secret", "token", "key"), _accept_prose, edge="", anchored=False, icase=True,
          tier=1),
)  # fmt: skip

RULE_NAMES: tuple[str, ...] = tuple(rule.name for rule in _RULES)


# --- engines ----------------------------------------------------------------------------------


class _Scanner:
    """The rule set compiled for one engine: "re2" (linear by construction) or "re" (the fallback).
    A rule is compiled the first time its needles occur in a text: most notes never need most rules,
    and `soul remember` runs one scan per process."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self._compiled: dict[int, _Pattern] = {}

    def _pattern(self, order: int) -> _Pattern:
        if order not in self._compiled:
            self._compiled[order] = self._compile(_RULES[order])
        return self._compiled[order]

    def _compile(self, rule: _Rule) -> _Pattern:
        import re

        source = rule.pattern
        # No pattern has a capture group: the accept functions find the credential inside the match,
        # so RE2 never runs its submatch engines, which cost more per match than the search itself.
        if rule.anchored:
            # A token may start only where a run of token characters starts: both engines then try
            # each run once instead of at every character (and `re` stays linear on long runs).
            edge = "".join("\\" + c if c in "\\]^-" else c for c in rule.edge)
            source = f"(?:^|[^{edge}])(?:{source})"
        if self.engine == "re":
            return re.compile(source, re.ASCII | (re.IGNORECASE if rule.icase else 0))
        if not rule.anchored:
            # RE2 is linear anyway, but a large counted repeat over a broad class multiplies its DFA
            # states (one counter per overlapping start) until it falls back to the slow NFA. The
            # accept functions re-apply these bounds so both engines find the same things.
            source = re.sub(r"\{(\d+),(\d+)\}", lambda m: m[0] if int(m[2]) <= 64 else f"{{{m[1]},}}", source)
        # google-re2 ships no type information; import_module gives `Any` instead of an ignore.
        re2 = importlib.import_module("re2")
        options = re2.Options()
        options.log_errors = False  # RE2 would write to stderr, which is the CLI's
        compiled: _Pattern = re2.compile(("(?i)" if rule.icase else "") + source, options)
        return compiled

    def scan(self, text: str) -> list[Finding]:
        if self.engine == "re2" and not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates (from JSON escapes) cannot reach RE2
                return _scanner("re").scan(text)
        # RE2 reports byte offsets; for ASCII they are character offsets, which skips a conversion.
        subject: str | bytes = text.encode("ascii") if self.engine == "re2" and text.isascii() else text
        low = text.lower()
        candidates: list[tuple[int, int, int, int]] = []
        memo = _ScanMemo()
        for order, rule in enumerate(_RULES):
            if not any(needle in low for needle in rule.needles):
                continue
            for match in self._pattern(order).finditer(subject):
                start, end = match.span()
                if not _edge_clear(text, end, rule.edge):
                    continue
                if rule.anchored and text[start] not in rule.edge:
                    start += 1  # the match began with the character before the token
                span = rule.accept(text, start, end, memo)
                if span is not None:
                    candidates.append((rule.tier, span[0], -span[1], order))
        return _findings(text, candidates)


def _edge_clear(text: str, end: int, edge: str) -> bool:
    # The left edge is part of anchored patterns; the right one needs a lookahead, which RE2 lacks.
    return end == len(text) or text[end] not in edge


def _findings(text: str, candidates: list[tuple[int, int, int, int]]) -> list[Finding]:
    """Known formats first, then generic rules; within a tier the leftmost, then longest, wins."""
    starts: list[int] = []
    chosen: list[tuple[int, int, int]] = []
    for _tier, start, neg_end, order in sorted(candidates):
        end = -neg_end
        i = bisect_left(starts, start)
        if (i > 0 and chosen[i - 1][1] > start) or (i < len(chosen) and chosen[i][0] < end):
            continue
        starts.insert(i, start)
        chosen.insert(i, (start, end, order))
    findings: list[Finding] = []
    line, line_start, pos = 1, 0, 0
    for start, end, order in chosen:
        line += text.count("\n", pos, start)
        newline = text.rfind("\n", pos, start)
        if newline != -1:
            line_start = newline + 1
        pos = start
        findings.append(Finding(_RULES[order].name, start, end, line, start - line_start + 1))
    return findings


_SCANNERS: dict[str, _Scanner] = {}


def _default_engine() -> str:
    # find_spec, not an import: RE2 is imported only when a rule is compiled.
    return "re2" if importlib.util.find_spec("re2") is not None else "re"


_DEFAULT_ENGINE: list[str] = []  # filled on first use, like the scanners


def _scanner(engine: str | None = None) -> _Scanner:
    # Compiled on first use, not at import: `soul remember` imports this module and must start fast.
    # Two threads racing here both compile; the loser's scanner is simply dropped.
    if engine is None:
        if not _DEFAULT_ENGINE:
            _DEFAULT_ENGINE.append(_default_engine())
        engine = _DEFAULT_ENGINE[0]
    if engine not in _SCANNERS:
        _SCANNERS[engine] = _Scanner(engine)
    return _SCANNERS[engine]


# --- public API -------------------------------------------------------------------------------


def scan(text: str) -> list[Finding]:
    """All credential-looking spans of `text`, sorted by start and non-overlapping."""
    return _scanner().scan(text)


def check(text: str, *, redact: bool = False, what: str = "text") -> str:
    """Return `text` unchanged if it holds no credential. Otherwise raise `SecretRefused` naming the
    rule and line:column of the first finding, or, with `redact`, return the text with every
    finding replaced by `[REDACTED:<rule>]`."""
    return _apply(text, scan(text), redact=redact, what=what)


def check_value(value: object, *, redact: bool = False, what: str = "value") -> object:
    """`check` every string in a str/list/tuple/dict structure, dict keys included; other values are
    returned as they are. A string under a dict key that names a credential (`api_key`, `password`)
    is also tested as a whole with the keyword-assignment heuristics, since the key is its context.
    Without `redact` the value itself is returned when nothing is found."""
    return _walk(value, redact=redact, what=what, path="", key=None)


def _walk(value: object, *, redact: bool, what: str, path: str, key: str | None) -> object:
    where = f"{what} at {path}" if path else what
    if isinstance(value, str):
        findings = scan(value)
        if not findings and key is not None and _names_a_credential(key):
            findings = _whole_value_finding(value)
        return _apply(value, findings, redact=redact, what=where)
    if isinstance(value, list | tuple):
        each = enumerate(value)
        items = [_walk(v, redact=redact, what=what, path=f"{path}[{i}]", key=None) for i, v in each]
        if not redact:
            return value
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict):
        out: dict[object, object] = {}
        for k, v in value.items():
            # A key is checked before it can appear in the path of any later message.
            clean = k
            if isinstance(k, str):
                where_key = f"{what}, a key" + (f" under {path}" if path else "")
                clean = _apply(k, scan(k), redact=redact, what=where_key)
            label = str(clean)
            inner = f"{path}.{label}" if path else label
            out[clean] = _walk(v, redact=redact, what=what, path=inner, key=label)
        return out if redact else value
    return value


def _names_a_credential(key: str) -> bool:
    low = key.lower().replace("-", "_")
    return any(word in low for word in ("password", "passwd", "passphrase", "secret", "token", "api_key",
                                        "apikey", "access_key", "private_key", "credential"))  # fmt: skip


def _whole_value_finding(value: str) -> list[Finding]:
    start = len(value) - len(value.lstrip())
    end = len(value.rstrip())
    if end <= start or "\n" in value[start:end] or not _looks_like_credential(value[start:end], quoted=True):
        return []
    return [Finding("keyword-assignment", start, end, 1, start + 1)]


def _apply(text: str, findings: list[Finding], *, redact: bool, what: str) -> str:
    if not findings:
        return text
    if redact:
        parts, pos = [], 0
        for f in findings:
            parts += [text[pos : f.start], f"[REDACTED:{f.rule}]"]
            pos = f.end
        return "".join([*parts, text[pos:]])
    first = findings[0]
    more = ""
    if len(findings) > 1:
        others = sorted({f.rule for f in findings[1:]})
        more = f" (and {len(findings) - 1} more: {', '.join(others)})"
    where = f"{first.line}:{first.column}"
    raise SecretRefused(
        f"{what} contains what looks like a credential: {first.rule} at {where}{more}",
        first.rule,
        first.line,
        first.column,
    )


# --- never-sync paths -------------------------------------------------------------------------

_NEVER_SYNC_NAMES = frozenset(
    {".netrc", "_netrc", ".npmrc", ".pypirc", ".pgpass", ".git-credentials", ".htpasswd", ".dockercfg",
     "credentials.json", "application_default_credentials.json", "terraform.tfstate"}
)  # fmt: skip
_NEVER_SYNC_SUFFIXES = (
    ".pem", ".key", ".p12", ".pfx", ".p8", ".ppk", ".jks", ".keystore", ".kdbx", ".tfstate",
    ".tfstate.backup", ".env",
)  # fmt: skip
# Templates exist to be shared; their content still goes through the scan like any other file.
_ENV_TEMPLATES = frozenset({".env.example", ".env.sample", ".env.template", ".env.dist"})
_NEVER_SYNC_IN_DIR = frozenset({(".aws", "credentials"), (".kube", "config"), (".docker", "config.json")})


def is_never_sync_path(path: str) -> bool:
    """True for files that hold credentials by convention, judged by name alone (never by content)."""
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if not parts:
        return False
    name = parts[-1].lower()
    parent = parts[-2].lower() if len(parts) > 1 else ""
    if name in _NEVER_SYNC_NAMES or (parent, name) in _NEVER_SYNC_IN_DIR:
        return True
    if name.startswith(".env"):
        return name not in _ENV_TEMPLATES
    if name.startswith("id_") or (name.startswith("ssh_host_") and "_key" in name):
        return not name.endswith(".pub")
    return name.endswith(_NEVER_SYNC_SUFFIXES)
