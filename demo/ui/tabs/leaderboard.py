"""The "Leaderboard" tab: Bradley–Terry ratings of the systems with 95% intervals, the win-rate
matrix and battle counts, and the blind votes beside the InstructGPT paper's numbers.

It shows the last snapshot of `LeaderboardCache` (recomputed on a timer in the background,
demo/arena/service.py); a page view or a tick of the page's timer never fits ratings.
Plots use altair when it is installed, tables otherwise.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from datetime import datetime

import gradio as gr
import pandas as pd

from ...arena.ratings import MIN_BATTLES_FOR_INTERVAL, PAPER, Leaderboard, Share
from ...arena.service import Arena, LeaderboardCache
from ..context import UIContext

TITLE = "Leaderboard"
POLL_SECONDS = 2.0
HAS_ALTAIR = importlib.util.find_spec("altair") is not None


def summary_markdown(
    board: Leaderboard, computed_at: float | None, error: str | None, voting_error: str | None, updating: bool = False
) -> str:
    when = datetime.fromtimestamp(computed_at).strftime("%H:%M:%S") if computed_at else "not yet"
    lines = ["⏳ **Updating…** a new vote is being counted; the figures below are from before it."] if updating else []
    lines += [
        f"**{board.votes} vote{'' if board.votes == 1 else 's'}** ({board.rated_votes} in the ratings). Kept out: "
        f"{board.self_identified} because an answer named its model (the voter was not blind), {board.too_fast} "
        f"cast faster than both answers could be skimmed (such votes are stored, not rated). Computed at {when}."
    ]
    if voting_error:
        lines.append(f"⚠️ Voting is unavailable: {voting_error}")
    if error:
        lines.append(f"⚠️ The last refresh failed ({error}); showing the previous numbers.")
    return "\n\n".join(lines)


def ratings_frame(board: Leaderboard, labels: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "rank": i + 1,
                "system": labels.get(r.system, r.system),
                "rating": round(r.rating),
                "95% CI": r.interval_text(),
                "battles": r.battles,
            }
            for i, r in enumerate(board.ratings)
        ],
        columns=["rank", "system", "rating", "95% CI", "battles"],
    )


def paper_frame(board: Leaderboard) -> pd.DataFrame:
    rows = [
        ("aligned preferred over base (raw prompt)", board.aligned_vs_base.text(), PAPER["aligned_vs_base"]),
        (
            "aligned preferred over few-shot prompted base",
            board.aligned_vs_prompted.text(),
            PAPER["aligned_vs_prompted"],
        ),
        (
            "judge (reward model) agrees with voters, decisive votes",
            board.judge_agreement.text(),
            PAPER["judge_agreement"],
        ),
        ("two sessions agree on the same answers", board.human_agreement.text(), PAPER["human_agreement"]),
    ]
    return pd.DataFrame(rows, columns=["measure", "these votes", "InstructGPT paper"])


def _share_text(value: object) -> str:
    return value.text() if isinstance(value, Share) else str(value)


def category_frame(board: Leaderboard) -> pd.DataFrame:
    rows = [
        {
            "category": category,
            "votes": row["votes"],
            "aligned > base": _share_text(row["aligned_vs_base"]),
            "aligned > prompted": _share_text(row["aligned_vs_prompted"]),
            "judge agrees": _share_text(row["judge_agreement"]),
        }
        for category, row in board.by_category.items()
    ]
    return pd.DataFrame(rows, columns=["category", "votes", "aligned > base", "aligned > prompted", "judge agrees"])


def matrix_frame(board: Leaderboard, labels: dict[str, str], counts: bool) -> pd.DataFrame:
    names = board.systems
    data = {
        labels.get(c, c): [
            (
                board.counts.get((r, c), 0)
                if counts
                else (round(100 * board.win_rate[r, c]) if (r, c) in board.win_rate else None)
            )
            for r in names
        ]
        for c in names
    }
    frame = pd.DataFrame(data, index=[labels.get(r, r) for r in names])
    frame.index.name = "row vs column"
    return frame.reset_index()


def ratings_chart(board: Leaderboard, labels: dict[str, str]):
    import altair as alt

    frame = pd.DataFrame(
        [
            {
                "system": labels.get(r.system, r.system),
                "rating": r.rating,
                # No bar where the table says "too few battles": one rule for both.
                "lower": r.lower if r.has_interval else None,
                "upper": r.upper if r.has_interval else None,
            }
            for r in board.ratings
        ]
    )
    base = alt.Chart(frame).encode(y=alt.Y("system:N", sort=list(frame["system"]), title=None))  # best first
    axis = alt.X(
        "rating:Q",
        title=f"Bradley–Terry rating (95% CI from {MIN_BATTLES_FOR_INTERVAL} battles)",
        scale=alt.Scale(zero=False),
    )
    return (
        base.mark_point(filled=True, size=80).encode(x=axis) + base.mark_rule().encode(x="lower:Q", x2="upper:Q")
    ).properties(title="Ratings", height=40 + 40 * len(frame), width=300)


def win_rate_chart(board: Leaderboard, labels: dict[str, str]):
    import altair as alt

    frame = pd.DataFrame(
        [
            {"row": labels.get(r, r), "column": labels.get(c, c), "win rate": value, "battles": board.counts[r, c]}
            for (r, c), value in board.win_rate.items()
        ]
    )
    heat = (
        alt.Chart(frame)
        .mark_rect()
        .encode(
            x=alt.X("column:N", title="against"),
            y=alt.Y("row:N", title="system"),
            color=alt.Color("win rate:Q", scale=alt.Scale(domain=[0, 1], scheme="redblue")),
            tooltip=["row", "column", alt.Tooltip("win rate:Q", format=".0%"), "battles"],
        )
    )
    text = alt.Chart(frame).mark_text().encode(x="column:N", y="row:N", text=alt.Text("win rate:Q", format=".0%"))
    size = 60 * max(1, len(board.systems))
    return (heat + text).properties(title="Win rate (row vs column)", height=size, width=size)


@dataclass(frozen=True)
class LeaderboardLayout:
    """The tab's components: the summary, the tables (and charts where altair is installed), the
    snapshot this page shows, and the timer that polls for a newer one."""

    summary: gr.Markdown
    ratings: gr.Dataframe
    plots: list[gr.Plot]  # ratings and win rates; none without altair
    paper: gr.Dataframe
    win_table: gr.Dataframe
    count_table: gr.Dataframe
    category_table: gr.Dataframe
    shown: gr.State  # [snapshot version, updating] this page shows
    timer: gr.Timer

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [
            self.shown,
            self.summary,
            self.ratings,
            *self.plots,
            self.paper,
            self.win_table,
            self.count_table,
            self.category_table,
        ]


def build(context: UIContext) -> None:
    arena, cache = context.arena_services()
    labels = {system.id: system.label for system in arena.systems}
    layout = lay_out(context.config.arena.leaderboard_refresh_seconds)
    layout.timer.tick(
        snapshot_view(arena, cache, labels, len(layout.plots)),
        layout.shown,
        layout.outputs,
        queue=False,
        api_visibility="private",
    )


def lay_out(refresh_seconds: float) -> LeaderboardLayout:
    gr.Markdown(
        "Ratings from the blind votes (Bradley–Terry as in Chatbot Arena: a tie or "
        "“both are bad” is half a win each; 95% intervals from resampled battles), "
        "recomputed in the background every "
        f"{refresh_seconds:.0f} s."
    )
    summary = gr.Markdown(elem_id="leaderboard-summary")
    ratings = gr.Dataframe(elem_id="leaderboard-ratings", interactive=False, label="Ratings")
    plots = []
    if HAS_ALTAIR:
        with gr.Row():
            plots = [
                gr.Plot(label="Ratings", show_label=False, elem_id="leaderboard-ratings-plot"),
                gr.Plot(label="Win rate (row vs column)", show_label=False, elem_id="leaderboard-winrate-plot"),
            ]
    paper = gr.Dataframe(elem_id="leaderboard-paper", interactive=False, label="Beside the InstructGPT paper")
    with gr.Accordion("Win rates, battle counts and categories", open=False):
        win_table = gr.Dataframe(interactive=False, label="Win rate of the row against the column (%)")
        count_table = gr.Dataframe(interactive=False, label="Battles between the row and the column")
        category_table = gr.Dataframe(interactive=False, label="By category")
    return LeaderboardLayout(
        summary, ratings, plots, paper, win_table, count_table, category_table, gr.State(None), gr.Timer(POLL_SECONDS)
    )


def snapshot_view(arena: Arena, cache: LeaderboardCache, labels: dict[str, str], plots: int):
    """The timer's handler: the cache's latest snapshot as LeaderboardLayout.outputs, or nothing
    new when the page already shows it."""

    def show(version):
        state = [cache.version, cache.updating]
        if version == state:
            return [gr.skip()] * (7 + plots)
        board = cache.snapshot
        values = [
            state,
            summary_markdown(board, cache.computed_at, cache.error, arena.voting_error, cache.updating),
            ratings_frame(board, labels),
        ]
        if plots:
            values += [ratings_chart(board, labels), win_rate_chart(board, labels)] if board.ratings else [None, None]
        values += [
            paper_frame(board),
            matrix_frame(board, labels, counts=False),
            matrix_frame(board, labels, counts=True),
            category_frame(board),
        ]
        return values

    return show
