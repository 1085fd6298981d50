"""Text a model or a user wrote, placed in Markdown so that nothing in it can end its code span
or fence (the reports we print and the tables we render)."""

from __future__ import annotations

import re


def _fence(text: str, shortest: int) -> str:
    """A backtick run longer than any inside `text`, and at least `shortest` long."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(shortest, longest + 1)


def fenced(text: str, info: str = "text") -> str:
    """A code block around `text` that its own backticks cannot close."""
    fence = _fence(text, 3)
    return f"{fence}{info}\n{text}\n{fence}"


def code_span(text: str) -> str:
    """An inline code span that nothing in `text` can end, safe in a table cell: pipes escaped,
    line breaks shown as ↵."""
    fence = _fence(text, 1)
    pad = " " if text[:1] == "`" or text[-1:] == "`" else ""
    shown = text.replace("\n", "↵").replace("|", "\\|")
    return f"{fence}{pad}{shown}{pad}{fence}"
