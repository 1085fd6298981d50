"""The RL model card's figure: reward against KL to the SFT model, one line per scorer (the
training reward model the policy was optimised against, and the app's independent judge), each
as the change from the SFT policy's reward (round 0), so the two scales share an axis. A training
reward that keeps rising while the judge's flattens or falls is over-optimisation (Gao et al. 2022).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import altair as alt

from ...evaluation.plots import OKABE_ITO, styled

SCORERS = {"reward_train_rm": "training RM (optimised against)", "reward_judge": "judge (independent)"}


def reward_vs_kl_rows(rounds: Sequence[Mapping]) -> list[dict]:
    """One row per round and scorer: KL, reward, and the reward's change from round 0."""
    ordered = sorted(rounds, key=lambda r: r["round"])
    rows = []
    for key, label in SCORERS.items():
        start = next((r[key] for r in ordered if r.get(key) is not None), None)
        for r in ordered:
            if r.get(key) is None or start is None:
                continue
            rows.append(
                {
                    "round": r["round"],
                    "kl": r["kl_to_sft"],
                    "scorer": label,
                    "reward": r[key],
                    "change": r[key] - start,
                }
            )
    return rows


def reward_vs_kl_chart(rounds: Sequence[Mapping]) -> alt.LayerChart | None:
    rows = reward_vs_kl_rows(rounds)
    if not rows:
        return None
    colour = alt.Color(
        "scorer:N", title="reward model", scale=alt.Scale(domain=list(SCORERS.values()), range=list(OKABE_ITO[4:6]))
    )
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("kl:Q", title="KL(policy ‖ SFT), nats per answer (estimate)"),
        y=alt.Y("change:Q", title="mean reward − SFT's (round 0)"),
        color=colour,
        tooltip=["round:O", "scorer:N", alt.Tooltip("kl:Q", format=".2f"), alt.Tooltip("reward:Q", format=".3f")],
    )
    lines = base.mark_line(point=alt.OverlayMarkDef(size=70))
    labels = base.mark_text(dy=-10, fontSize=11).encode(text="round:O")
    chart = alt.layer(lines, labels).properties(
        title="RL rounds: reward against KL to the SFT model", width=460, height=280
    )
    return styled(chart)
