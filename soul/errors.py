"""One error hierarchy for soul: every failure a user can see is a `SoulError`.

Each subclass carries the process exit code (DESIGN 8) and an optional hint saying
which command or setting fixes it. The CLI has exactly one handler that renders these.
"""

from __future__ import annotations


class SoulError(Exception):
    """A failure with a clear message; `exit_code` follows the CLI contract."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(SoulError):
    exit_code = 2


class NotASoul(SoulError):
    """The home directory is missing or is not a soul repository."""


class OfflineError(SoulError):
    """The remote could not be reached; local work is kept."""

    exit_code = 3


class SecretRefused(SoulError):
    """The secret guard refused a write; nothing was written."""

    exit_code = 4

    def __init__(self, message: str, rule: str, line: int, column: int, hint: str | None = None) -> None:
        super().__init__(
            message,
            hint or "remove the credential, reference it as ${env:NAME}, or pass --redact",
        )
        self.rule = rule
        self.line = line
        self.column = column


class SettingsError(SoulError):
    """A settings file does not parse or a key is invalid."""


class NotFound(SoulError):
    """An id, key or name does not exist."""


class GitError(SoulError):
    """A git command failed for a reason that is not the network."""


class SyncAttention(SoulError):
    """Sync stopped and needs a human (exit code 1)."""
