"""The token-shift view as markup: each aligned answer token marked unshifted / marginal /
shifted under the model before the alignment step (demo/token_shift.py).

Every token text goes through `html.escape` (quotes too: the before model's choices are in an
attribute). Colour is never the only cue: a shifted token is also bold and underlined, a
marginal one underlined with dots. The before model's top choices show on hover, and on focus
(a tap on a phone, Tab on a keyboard), from a `data-top` attribute CSS prints.
"""

from __future__ import annotations

import html

from ..token_shift import MARGINAL_MAX_RANK, ShiftResult, TokenShift, Unavailable

CSS = """
.demo-shift { margin-top: .5rem; font-size: .92rem; }
.demo-shift-text { white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.9; }
.demo-shift .ts { position: relative; border-radius: .2rem; }
.demo-shift .ts-marginal { background: #fef3c7; color: #78350f; text-decoration: underline dotted; text-underline-offset: .2em; }
.demo-shift .ts-shifted { background: #fecaca; color: #7f1d1d; font-weight: 700; text-decoration: underline solid; text-underline-offset: .2em; }
.demo-shift .ts:hover::after, .demo-shift .ts:focus::after {
  content: attr(data-top); position: absolute; left: 0; top: 1.6em; z-index: 20; white-space: pre;
  background: var(--background-fill-primary, #fff); color: var(--body-text-color, #111); font-weight: 400;
  border: 1px solid var(--border-color-primary, #ccc); border-radius: .3rem; padding: .25rem .4rem;
  font-size: .8rem; line-height: 1.4; max-width: 80vw; overflow: hidden; text-decoration: none;
}
.demo-shift .ts:focus { outline: 2px solid var(--color-accent, #f97316); }
"""

LEGEND = (
    '<span class="ts">unshifted</span> (its first choice) · '
    '<span class="ts ts-marginal">marginal</span> (its 2nd or 3rd) · '
    '<span class="ts ts-shifted">shifted</span> (lower: alignment put it there)'
)


def _visible(text: str) -> str:
    """A token as shown in the hover list: whitespace made visible."""
    return text.replace("\n", "↵").replace("\t", "⇥").replace(" ", "·") or "∅"


def _token_span(token, view: TokenShift, own_rank: int | None) -> str:
    kind = token.kind
    classes = "ts" if kind == "unshifted" else f"ts ts-{kind}"
    if not token.text:
        # Part of a character split into bytes: counted, but nothing to see or focus.
        return f'<span class="{classes}" data-rank="{token.rank}"></span>'
    choices = "\n".join(f"{_visible(text)}  {p:.0%}" for text, p in token.top)
    tip = f"rank {token.rank} under {view.before_model}\nits top {len(token.top)}:\n{choices}"
    if own_rank is not None:
        tip += f"\nrank {own_rank} under {view.self_model} itself"
    return (
        f'<span class="{classes}" tabindex="0" data-rank="{token.rank}" data-top="{html.escape(tip, quote=True)}" '
        f'aria-label="{html.escape(f"{token.text} — {kind}, rank {token.rank}", quote=True)}">'
        f"{html.escape(token.text, quote=True)}</span>"
    )


def token_shift_html(result: ShiftResult | None, *, waiting: bool = False) -> str:
    """The view under an aligned answer: a summary line, a legend, the answer token by token;
    or why there is none; or nothing while the answer streams."""
    if result is None:
        return (
            '<div class="demo-shift demo-muted">Ranking the answer under the model before it…</div>' if waiting else ""
        )
    if isinstance(result, Unavailable):
        return f'<div class="demo-shift demo-muted">Token shift not shown: {html.escape(result.reason)}</div>'
    own = result.self_ranks or [None] * len(result.tokens)
    tokens = "".join(_token_span(token, result, rank) for token, rank in zip(result.tokens, own))
    return (
        '<div class="demo-shift">'
        f"<div><b>Where alignment changed the answer</b>: {html.escape(result.summary())} ({result.seconds:.2f} s). "
        f"Tokens outside the top {MARGINAL_MAX_RANK} of the model before alignment are shifted "
        "(Lin et al., 2023). Hover or tap a token for that model's top choices. Sampling puts "
        "low-ranked tokens into any answer; at temperature 0 (Settings) the view is the paper's greedy one.</div>"
        f'<div class="demo-muted">{LEGEND}</div>'
        f'<div class="demo-shift-text">{tokens}</div></div>'
    )
