"""API keys: where they come from, and how they are kept out of every output.

Keys are read from the environment or a ``.env`` file in the working
directory, never from the command line. Every key read is registered with
:func:`redact`, which the log filter and the exporters apply to any text
that leaves the process.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from dotenv import dotenv_values

_known: set[str] = set()
MASK = "***"


def load_key(*names: str, env_file: str | Path = ".env") -> str | None:
    """The first of ``names`` set in the environment, else in ``env_file``; registered for redaction."""
    file_values = dotenv_values(env_file) if Path(env_file).is_file() else {}
    for name in names:
        value = os.environ.get(name) or file_values.get(name)
        if value:
            value = value.strip()
            register(value)
            return value
    return None


def register(secret: str) -> None:
    """Remember a secret so that :func:`redact` masks it."""
    if secret and len(secret) >= 4:
        _known.add(secret)


MASKED_BY_SERVICE = re.compile(r"[\w-]*\*{3,}[\w-]*")
"""A key a service quoted half-masked (OpenAI: ``sk-ab***...***wxyz``): its visible ends go too."""


def redact(text: str) -> str:
    """``text`` with every registered secret, and every half-masked key a service quoted, replaced by ``***``."""
    for secret in _known:
        if secret in text:
            text = text.replace(secret, MASK)
    if "***" in text:
        text = MASKED_BY_SERVICE.sub(MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message or record.exc_info:
                if record.exc_info:
                    cleaned = redact(cleaned + "\n" + logging.Formatter().formatException(record.exc_info))
                    record.exc_info = None
                    record.exc_text = None
                record.msg, record.args = cleaned, None
        return True


def install_log_redaction() -> None:
    """Add the redacting filter to every handler of the root logger (idempotent)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
