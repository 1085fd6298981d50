"""The leaderboard's numbers, from the stored votes: Bradley–Terry ratings with bootstrap 95%
intervals as Chatbot Arena computes them, a win-rate matrix, and the paper's comparisons.

Ratings follow FastChat's `elo_analysis.py`: a Bradley–Terry fit where a tie or "both are bad"
counts as half a win for each side, on the Elo scale (400·log10 of the strength, centred at
1000), with percentile intervals over resampled battles. The fit is a short scipy one with a
weak prior, because the unpenalised fit (FastChat's, evalica's) has no finite answer with few votes.
Left out of ratings and win rates, and counted apart: votes whose answer names a model (the
voter was not blind) and votes cast faster than the answers could be read (Chatbot Arena drops
such votes too).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .store import VoteRecord

SCALE, INIT = 400.0, 1000.0
PRIOR = 0.1  # Gaussian prior on log-strengths: keeps ratings finite with few votes (see bradley_terry)
# InstructGPT (Ouyang et al., 2022), for the leaderboard's "paper" column.
PAPER = {
    "aligned_vs_base": "85 ± 3 %",
    "aligned_vs_prompted": "71 ± 4 %",
    "judge_agreement": "72.4 % (training labellers), 69.6 % (held-out labellers)",
    "human_agreement": "72.6 ± 1.5 %",
}


MIN_BATTLES_FOR_INTERVAL = 10  # a system's battles before its rating gets a 95% interval


@dataclass(frozen=True)
class Rating:
    system: str
    rating: float
    lower: float
    upper: float
    battles: int

    @property
    def has_interval(self) -> bool:
        """Whether the 95% interval means something: with a handful of battles the bootstrap
        resamples the same few outcomes and its "interval" (often one point) means nothing."""
        return self.battles >= MIN_BATTLES_FOR_INTERVAL and self.upper - self.lower >= 0.5

    def interval_text(self, separator: str = " – ") -> str:
        """The 95% interval, or why there is none yet (the table and the chart show the same)."""
        if not self.has_interval:
            return f"too few battles (< {MIN_BATTLES_FOR_INTERVAL})" if self.battles < MIN_BATTLES_FOR_INTERVAL else "—"
        return f"{self.lower:.0f}{separator}{self.upper:.0f}"


@dataclass(frozen=True)
class Share:
    """A proportion with its count and a 95% Wilson interval (honest at small n, unlike ± 1.96 SE)."""

    value: float | None
    n: int

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.value is None or self.n == 0:
            return None
        z, n, p = 1.96, self.n, self.value
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    def text(self) -> str:
        if self.value is None or self.interval is None:
            return "– (no votes yet)"
        low, high = self.interval
        return f"{100 * self.value:.0f} % [{100 * low:.0f}–{100 * high:.0f}] (n={self.n})"


@dataclass
class Leaderboard:
    votes: int = 0
    rated_votes: int = 0
    self_identified: int = 0
    too_fast: int = 0
    ratings: list[Rating] = field(default_factory=list)
    systems: list[str] = field(default_factory=list)
    win_rate: dict[tuple[str, str], float] = field(default_factory=dict)  # (row, column): row's win rate
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    aligned_vs_base: Share = Share(None, 0)
    aligned_vs_prompted: Share = Share(None, 0)
    judge_agreement: Share = Share(None, 0)
    human_agreement: Share = Share(None, 0)
    by_category: dict[str, dict[str, Share | int]] = field(default_factory=dict)


def _system(vote: VoteRecord, position: str) -> str:
    return vote.system_a if position == "A" else vote.system_b


def bradley_terry(
    battles: Sequence[tuple[str, str, str]], systems: Sequence[str], prior: float = PRIOR
) -> dict[str, float]:
    """Elo-scale ratings from (system_a, system_b, winner) with winner in A / B / tie / bad.

    Maximises Σ w·log σ(θa − θb) + (1 − w)·log σ(θb − θa), w = 1, 0 or ½ (tie, both bad), minus
    `prior`/2 · Σ θ² (a Gaussian prior). Without the prior (Chatbot Arena's logistic regression,
    or evalica's MM iterations) the fit has no finite answer as soon as a system has only wins
    or only losses, which is the rule with a handful of votes; with hundreds of votes the prior
    changes nothing visible.
    """
    from scipy.optimize import minimize

    names = [name for name in systems if any(name in (a, b) for a, b, _ in battles)]
    if not names:
        return {}
    index = {name: i for i, name in enumerate(names)}
    a = np.array([index[x] for x, _, _ in battles])
    b = np.array([index[y] for _, y, _ in battles])
    w = np.array([1.0 if v == "A" else 0.0 if v == "B" else 0.5 for _, _, v in battles])

    def loss(theta):
        margin = theta[a] - theta[b]
        value = np.sum(w * np.logaddexp(0, -margin) + (1 - w) * np.logaddexp(0, margin)) + prior / 2 * theta @ theta
        residual = w - 1 / (1 + np.exp(-margin))  # d(log-likelihood)/d(margin)
        grad = -np.bincount(a, residual, len(names)) + np.bincount(b, residual, len(names)) + prior * theta
        return value, grad

    theta = minimize(loss, np.zeros(len(names)), jac=True, method="L-BFGS-B", options={"gtol": 1e-9}).x
    theta -= theta.mean()
    return {name: INIT + SCALE / math.log(10) * theta[index[name]] for name in names}


def ratings_with_intervals(battles: Sequence[tuple[str, str, str]], rounds: int = 200, seed: int = 0) -> list[Rating]:
    """Point ratings and percentile 95% intervals over `rounds` resamples of the battles."""
    systems = sorted({a for a, _, _ in battles} | {b for _, b, _ in battles})
    point = bradley_terry(battles, systems)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds if len(battles) > 1 else 0):
        sample = [battles[i] for i in rng.integers(0, len(battles), len(battles))]
        for name, value in bradley_terry(sample, systems).items():
            samples[name].append(value)
    played: defaultdict[str, int] = defaultdict(int)
    for a, b, _ in battles:
        played[a] += 1
        played[b] += 1
    rows = []
    for name in systems:
        values = samples.get(name) or [point[name]]
        lower, upper = np.percentile(values, [2.5, 97.5])
        rows.append(Rating(name, point[name], float(lower), float(upper), played[name]))
    return sorted(rows, key=lambda r: -r.rating)


def win_rates(battles: Sequence[tuple[str, str, str]]) -> tuple[dict, dict]:
    """Row system's share of wins against the column system (ties half), and battle counts."""
    score: dict[tuple[str, str], float] = defaultdict(float)
    count: dict[tuple[str, str], int] = defaultdict(int)
    for a, b, winner in battles:
        value_a = 1.0 if winner == "A" else 0.0 if winner == "B" else 0.5
        for row, column, value in ((a, b, value_a), (b, a, 1.0 - value_a)):
            score[row, column] += value
            count[row, column] += 1
    return {key: score[key] / count[key] for key in count}, dict(count)


def aligned_share(votes: Sequence[VoteRecord], is_aligned, base_format: str) -> Share:
    """How often an aligned system's answer was preferred over a base model in `base_format`
    (ties and "both are bad" half), over the votes that put one against the other."""
    total, wins = 0, 0.0
    for vote in votes:
        sides = {"A": (vote.system_a, vote.format_a), "B": (vote.system_b, vote.format_b)}
        aligned = [p for p, (system, _) in sides.items() if is_aligned(system)]
        base = [p for p, (system, fmt) in sides.items() if not is_aligned(system) and fmt == base_format]
        if len(aligned) == 1 and len(base) == 1:
            total += 1
            wins += 1.0 if vote.winner == aligned[0] else 0.0 if vote.winner == base[0] else 0.5
    return Share(wins / total if total else None, total)


def judge_agreement(votes: Sequence[VoteRecord]) -> Share:
    """On votes where the human chose A or B and the reward model preferred one (not a tie)."""
    decided = [v for v in votes if v.winner in ("A", "B") and v.judge in ("A", "B")]
    agree = sum(v.winner == v.judge for v in decided)
    return Share(agree / len(decided) if decided else None, len(decided))


def human_agreement(votes: Sequence[VoteRecord]) -> Share:
    """Pairs of votes by different sessions on the same two answers: how often they agree.

    Outcomes are compared by system, not by screen position (the two sessions may have seen
    the answers in either order)."""
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for vote in votes:
        outcome = _system(vote, vote.winner) if vote.winner in ("A", "B") else vote.winner
        groups[vote.answers_key].append((vote.voter, outcome))
    pairs, agree = 0, 0
    for entries in groups.values():
        for i in range(len(entries)):
            for j in range(i + 1, len(entries)):
                if entries[i][0] != entries[j][0]:
                    pairs += 1
                    agree += entries[i][1] == entries[j][1]
    return Share(agree / pairs if pairs else None, pairs)


def leaderboard(votes: Sequence[VoteRecord], is_aligned, rounds: int = 200, seed: int = 0) -> Leaderboard:
    """Everything the Leaderboard tab and `votes stats` show. `is_aligned(system_id)`."""
    read = [v for v in votes if not v.too_fast]  # a vote too fast to have read the answers counts nowhere
    rated = [v for v in read if not v.self_identified]
    battles = [(v.system_a, v.system_b, v.winner) for v in rated]
    rates, counts = win_rates(battles)
    board = Leaderboard(
        votes=len(votes),
        rated_votes=len(rated),
        self_identified=sum(v.self_identified for v in votes),
        too_fast=sum(v.too_fast for v in votes),
        ratings=ratings_with_intervals(battles, rounds, seed),
        win_rate=rates,
        counts=counts,
        aligned_vs_base=aligned_share(rated, is_aligned, "raw"),
        aligned_vs_prompted=aligned_share(rated, is_aligned, "prompted"),
        judge_agreement=judge_agreement(read),
        human_agreement=human_agreement(read),
    )
    board.systems = [r.system for r in board.ratings]
    for category in sorted({v.category for v in votes}):
        subset = [v for v in rated if v.category == category]
        board.by_category[category] = {
            "votes": sum(v.category == category for v in votes),
            "aligned_vs_base": aligned_share(subset, is_aligned, "raw"),
            "aligned_vs_prompted": aligned_share(subset, is_aligned, "prompted"),
            "judge_agreement": judge_agreement([v for v in read if v.category == category]),
        }
    return board


def leaderboard_text(board: Leaderboard, labels: dict[str, str] | None = None) -> str:
    """The leaderboard as plain text (`python -m demo votes stats`)."""
    labels = labels or {}
    lines = [
        f"{board.votes} votes ({board.rated_votes} rated; kept out: {board.self_identified} where an answer named "
        f"its model, {board.too_fast} cast faster than the answers could be read)"
    ]
    lines.append("")
    lines.append(f"{'system':<48} {'rating':>7} {'95% CI':>17} {'battles':>8}")
    for r in board.ratings:
        lines.append(f"{labels.get(r.system, r.system):<48} {r.rating:7.0f} {r.interval_text(', '):>17} {r.battles:8d}")
    lines.append("")
    lines.append(
        f"aligned preferred over base (raw):      {board.aligned_vs_base.text():<24} paper: {PAPER['aligned_vs_base']}"
    )
    lines.append(
        f"aligned preferred over prompted base:   {board.aligned_vs_prompted.text():<24} paper: {PAPER['aligned_vs_prompted']}"
    )
    lines.append(
        f"judge agrees with voters (decisive):    {board.judge_agreement.text():<24} paper: {PAPER['judge_agreement']}"
    )
    lines.append(
        f"human-human agreement (same answers):   {board.human_agreement.text():<24} paper: {PAPER['human_agreement']}"
    )
    if board.by_category:
        lines.append("")
        lines.append(
            f"{'category':<16} {'votes':>5}  {'aligned>base':<22} {'aligned>prompted':<22} {'judge agrees':<22}"
        )
        for category, row in board.by_category.items():
            lines.append(
                f"{category:<16} {row['votes']:>5}  {row['aligned_vs_base'].text():<22} "  # type: ignore[union-attr]
                f"{row['aligned_vs_prompted'].text():<22} {row['judge_agreement'].text():<22}"  # type: ignore[union-attr]
            )
    return "\n".join(lines)
