"""A shared comparison on the page: the link to it, and the page's own address for the report.

The link is relative (`?prompt=…`), so it opens this page wherever it is served (a local port, a
Space). The report names the page's address when the browser sent it (the Referer of the page's
own requests), without the query it was opened with.
"""

from __future__ import annotations

import html
from urllib.parse import urlsplit, urlunsplit

import gradio as gr

from ..sharing import SharedComparison, share_query


def link_html(shared: SharedComparison) -> str:
    """The link that reproduces `shared` on this page."""
    href = html.escape("?" + share_query(shared), quote=True)
    return (
        f'<a href="{href}" id="share-anchor" target="_blank" rel="noopener">🔗 Link to this comparison</a> '
        '<span class="demo-muted">(same prompt, pair, input format and settings, seed included: it '
        "reproduces these answers; it carries nothing else)</span>"
    )


def page_url(request: gr.Request | None) -> str:
    """The page's address without query or fragment, from the request's Referer; "" when absent
    or not an http(s) address."""
    headers = getattr(request, "headers", None) or {}
    referer = headers.get("referer") or ""
    parts = urlsplit(referer)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
