"""What a visitor may read of an error, and where the rest goes.

A public page or API must not show server paths, tracebacks, environment values or package
internals. Errors written for people subclass `UserFacingError` and are shown as they are; any
other error, or one whose text names a path, is logged in full under a short id, and the
visitor reads a plain sentence (the path cut to its last part) that repeats the id.
"""

from __future__ import annotations

import logging
import re
import secrets

log = logging.getLogger("demo.errors")


class UserFacingError(Exception):
    """An error whose message was written for the person who caused it (what is wrong, what to
    do); its text may be shown once paths are cut from it."""


# An absolute path: a slash not preceded by a word character, ':' '/' or '.', then at least two
# parts (so a URL's "/gemma/terms" and a lone "/" or "a/b" stay as they are).
_PATH = re.compile(r"(?<![\w:/.~-])(?:~|[A-Za-z]:)?(?:[\\/][^\s\\/'\"(),;:<>]+){2,}[\\/]?")


def redact_paths(text: str) -> str:
    """`text` with every absolute filesystem path replaced by its last part ("…/name")."""

    def last_part(match: re.Match) -> str:
        parts = [p for p in re.split(r"[\\/]", match.group(0)) if p]
        return f"…/{parts[-1]}" if parts else "…"

    return _PATH.sub(last_part, text)


def new_error_id() -> str:
    return secrets.token_hex(4)


def public_message(error: BaseException, doing: str) -> str:
    """A message for the browser about `error`, which happened while `doing` (e.g. "loading
    Gemma 3 270M").

    A `UserFacingError` is its own message; where a path had to be cut from it, or for any other
    error, the full error goes to the server log under an id that the message repeats.
    """
    if isinstance(error, UserFacingError) and str(error).strip():
        text = str(error).strip()
        public = redact_paths(text)
        if public == text:
            return text
    else:
        public = f"An internal error happened while {doing}."
    error_id = new_error_id()
    log.error("error %s while %s: %s: %s", error_id, doing, type(error).__name__, error, exc_info=error)
    return f"{public} (error id {error_id}; the server log has the details)"
