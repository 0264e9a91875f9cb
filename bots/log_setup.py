"""Logging for bots: one JSON object per line for servers (`--json-logs`), and secrets redacted always.

`JsonFormatter` writes `{"ts", "level", "logger", "message", ...extra fields, "exc"?, "stack"?}`
per record: `ts` is ISO 8601 UTC with microseconds, extra fields are those passed with
`extra={...}` (Decimals and other non-JSON values as text).

`Redactor` (a `logging.Filter`, installed on the handlers so it sees records of every logger,
third-party ones included) removes secrets before any formatter runs:

- every registered secret value (API keys, API secrets, private keys, passphrases: the bot
  registers what it reads from the environment or the keystore with `add`), and its URL-encoded
  form, wherever it appears: the message, its `%` arguments (rendered first), extra fields (nested
  dicts, lists, tuples, any object through its text), the exception text and the stack;
- the value of any extra field whose key looks like a secret (`api_key`, `secret`, `password`,
  `private_key`, `access_token`, `signature`, `authorization`, ..., camelCase and kebab-case too;
  a bare `token` is a tokenized stock here, not a secret);
- values that follow such a key inside text (`api_key=...`, `"secret": "..."`, `X-MBX-APIKEY: ...`)
  and `Bearer` tokens, even when the value was never registered.

Each becomes `[REDACTED]`. Secrets shorter than 4 characters are refused (they would blank
ordinary text and could still be guessed). Transaction hashes and addresses are left alone.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any, Final
from urllib.parse import quote

MASK: Final = "[REDACTED]"
MIN_SECRET_LENGTH: Final = 4

_RECORD_FIELDS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
"""Attributes every LogRecord has: anything else on a record came from `extra`."""

_SECRET_WORDS: Final = (
    r"api[_-]?key|api[_-]?secret|apikey|secret|secret[_-]?key|private[_-]?key|passphrase|password|passwd"
    r"|mnemonic|seed[_-]?phrase|(?:access|auth|refresh|api|bearer|session)[_-]?token|signature"
    r"|authorization|x-mbx-apikey|apca-api-key-id|apca-api-secret-key"
)
_SECRET_KEY: Final = re.compile(rf"(?:^|[_\-.])(?:{_SECRET_WORDS})(?:$|[_\-.])", re.IGNORECASE)
# In text: a key ending in a secret word, `=` or `:` (the key may be quoted), then the value.
_SECRET_PAIR: Final = re.compile(
    rf"""(?P<key>\b[\w\-]*(?:{_SECRET_WORDS})["']?\s*[:=]\s*)(?P<quote>["']?)(?:Bearer\s+)?"""
    rf"""(?P<value>[^\s"',&;}}\]]+)""",
    re.IGNORECASE,
)
_BEARER: Final = re.compile(r"\b(Bearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """Whether a field named `key` holds a secret (`apiKey`, `api-secret`, `PRIVATE_KEY`, ...)."""
    normal = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower()
    if normal.endswith("_env"):  # the *name* of an environment variable, not its value
        return False
    return _SECRET_KEY.search(normal) is not None


class Redactor(logging.Filter):
    """Removes secrets from log records (see the module docstring); never drops a record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for value in secrets:
            self.add(value)

    def add(self, secret: str) -> None:
        """Register a secret value to remove from every later record."""
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            # The value itself is never echoed, not even in this error.
            raise ValueError(f"secret: must be a string of at least {MIN_SECRET_LENGTH} characters")
        variants = {secret, quote(secret, safe=""), secret.encode().hex()}
        self._values |= {v for v in variants if len(v) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret containing another is masked whole.
        ordered = sorted(self._values, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def text(self, text: str) -> str:
        """`text` with registered secrets, secret-keyed values and bearer tokens masked."""
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        text = _SECRET_PAIR.sub(lambda m: f"{m['key']}{m['quote']}{MASK}", text)
        return _BEARER.sub(lambda m: f"{m[1]}{MASK}", text)

    def value(self, value: Any, key: str = "") -> Any:
        """A redacted copy of an extra field's value: containers walked, other objects as text."""
        if key and is_secret_key(key):
            return MASK
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {str(k): self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        return self.text(str(value))

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact `record` in place (message rendered with its args, extras, exception, stack)."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep its parts rather than lose the record
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self.text(message)
        record.args = None
        for key in [k for k in record.__dict__ if k not in _RECORD_FIELDS]:
            record.__dict__[key] = self.value(record.__dict__[key], key)
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info = None  # only the redacted text may be printed
        if record.exc_text:
            record.exc_text = self.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.text(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, extra fields, exc and stack if any."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (no newline inside: JSON escapes them)."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in out:
                out[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, default=str, ensure_ascii=False)


_REDACTOR = Redactor()


def redactor() -> Redactor:
    """The process-wide redactor the handlers of `configure_logging` use: `redactor().add(secret)`."""
    return _REDACTOR


def configure_logging(
    *, json_logs: bool = False, level: int | str = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every logger's records to `stream` (default stderr), redacted, as JSON lines or text.

    Replaces the handlers a previous call installed (so calling it twice does not log twice) and
    returns the new handler.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(_REDACTOR)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.set_name("perpetua")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "perpetua"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
