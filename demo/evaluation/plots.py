"""Charts of a `summary.json` (altair): win rate per category, toxicity by instruction (like the
paper's Figure 7) and truthfulness MC1 / MC2, each with 95 % CI error bars.

Okabe–Ito colours (safe for the common colour-vision deficiencies), a transparent background and
mid-grey text and axes, so a chart reads on the app's light and dark themes and in a PNG.
Functions return an altair chart (gr.Plot shows it) or None when the summary has no such data.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import altair as alt

# Okabe & Ito (2008); black is left out because it vanishes on a dark background.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
MODEL_COLOURS = {"base": "#E69F00", "aligned": "#56B4E9"}
TEXT_GREY = "#8c8c8c"
GRID_GREY = "#8c8c8c55"
WIDTH = 520  # px; on a narrower screen the chart scrolls inside its box (the page's CSS)


def win_rate_chart(summary: Mapping) -> alt.LayerChart | None:
    """Aligned-over-base win rate per category ("all" first), one colour per base format, with a
    dashed 50 % line: above it the aligned answer is preferred more often than not."""
    rows = [
        {
            **r,
            "low": r["win_rate_ci"][0],
            "high": r["win_rate_ci"][1],
            "series": f"{r['pair']} · base {r['base_format']}",
        }
        for r in summary.get("preference", [])
        if r.get("win_rate") is not None
    ]
    if not rows:
        return None
    categories = list(dict.fromkeys(r["category"] for r in rows))
    x = alt.X("category:N", sort=categories, title="category", axis=alt.Axis(labelAngle=-40))
    colour = alt.Color(
        "series:N",
        title="pair · base format",
        scale=alt.Scale(range=list(OKABE_ITO)),
        legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=0),  # whole names, never cut
    )
    base = alt.Chart(alt.Data(values=rows)).encode(x=x, xOffset=alt.XOffset("series:N"), color=colour)
    bars = base.mark_bar().encode(
        y=alt.Y(
            "win_rate:Q",
            title="aligned preferred over base (win rate)",
            scale=alt.Scale(domain=[0, 1]),
            axis=alt.Axis(format="%"),
        ),
        tooltip=[
            "category:N",
            "series:N",
            "n:Q",
            alt.Tooltip("win_rate:Q", format=".1%"),
            alt.Tooltip("low:Q", format=".1%"),
            alt.Tooltip("high:Q", format=".1%"),
        ],
    )
    reference = alt.Chart(alt.Data(values=[{"y": 0.5}])).mark_rule(strokeDash=[6, 4], color=TEXT_GREY).encode(y="y:Q")
    chart = alt.layer(bars, _error_bars(base), reference).properties(
        title=["Win rate of the aligned model,", "per category (95 % CI)"], width=WIDTH, height=300
    )
    return styled(chart)


def toxicity_chart(summary: Mapping) -> alt.LayerChart | None:
    """Mean toxicity per instruction (none / respectful / biased), base and aligned side by side,
    as in the paper's Figure 7."""
    rows = [
        {**r, "low": r["ci"][0], "high": r["ci"][1], "series": _model_label(r)}
        for r in summary.get("toxicity", [])
        if r.get("mean") is not None
    ]
    rows = _unique(rows, "instruction")
    if not rows:
        return None
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X(
            "instruction:N", sort=["none", "respectful", "biased"], title="instruction", axis=alt.Axis(labelAngle=0)
        ),
        xOffset=alt.XOffset("series:N", sort=_series(rows)),
        color=_model_colour(rows),
    )
    bars = base.mark_bar().encode(
        y=alt.Y("mean:Q", title="mean toxicity (classifier probability)", scale=alt.Scale(domain=[0, 1])),
        tooltip=[
            "instruction:N",
            "series:N",
            "n:Q",
            alt.Tooltip("mean:Q", format=".3f"),
            alt.Tooltip("flagged_share:Q", format=".1%"),
        ],
    )
    chart = alt.layer(bars, _error_bars(base)).properties(
        title=["Toxicity of continuations", "by instruction (95 % CI)"], width=WIDTH * 0.75, height=300
    )
    return styled(chart)


def truthfulness_chart(summary: Mapping) -> alt.LayerChart | None:
    """MC1, MC2 and the matched share of generated answers, per model."""
    rows = []
    for r in summary.get("truthfulness", []):
        for metric, label in (("mc1", "MC1"), ("mc2", "MC2"), ("generative_correct", "generated, matched")):
            if r.get(metric) is not None:
                low, high = r[f"{metric}_ci"]
                rows.append(
                    {
                        "metric": label,
                        "value": r[metric],
                        "low": low,
                        "high": high,
                        "n": r["n"],
                        "series": _model_label(r),
                    }
                )
    rows = _unique(rows, "metric")
    if not rows:
        return None
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("metric:N", sort=["MC1", "MC2", "generated, matched"], title="metric", axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("series:N", sort=_series(rows)),
        color=_model_colour(rows),
    )
    bars = base.mark_bar().encode(
        y=alt.Y("value:Q", title="score (higher is more truthful)", scale=alt.Scale(domain=[0, 1])),
        tooltip=["metric:N", "series:N", alt.Tooltip("value:Q", format=".3f")],
    )
    chart = alt.layer(bars, _error_bars(base)).properties(
        title=["Truthfulness: multiple choice", "and generated answers (95 % CI)"], width=WIDTH * 0.75, height=300
    )
    return styled(chart)


def save_png(chart, path: str | Path, *, scale: float = 2.0) -> Path:
    """Render a chart to PNG with vl-convert (no browser, no network)."""
    import vl_convert

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(vl_convert.vegalite_to_png(chart.to_json(), scale=scale))
    return path


def _model_label(row: Mapping) -> str:
    if row["model"] == "base":
        return f"base ({row['base_format']})"
    return "aligned"


def _series(rows) -> list[str]:
    return list(dict.fromkeys(r["series"] for r in rows))


def _model_colour(rows) -> alt.Color:
    labels = _series(rows)
    base_colours = iter((MODEL_COLOURS["base"], "#D55E00", "#F0E442"))
    spare = iter(("#009E73", "#0072B2", "#CC79A7"))
    colours = [
        MODEL_COLOURS["aligned"]
        if label == "aligned"
        else next(base_colours if label.startswith("base") else spare, "#CC79A7")
        for label in labels
    ]
    return alt.Color("series:N", title="model", scale=alt.Scale(domain=labels, range=colours))


def _unique(rows: list[dict], x_field: str) -> list[dict]:
    # The aligned model's figures repeat once per base format (same model, same settings): one bar.
    seen, kept = set(), []
    for row in rows:
        if (row[x_field], row["series"]) not in seen:
            seen.add((row[x_field], row["series"]))
            kept.append(row)
    return kept


def _error_bars(base: alt.Chart) -> alt.Chart:
    # Rules rather than mark_errorbar: a plain mark takes xOffset in every Vega-Lite version.
    return base.mark_rule(strokeWidth=2).encode(y="low:Q", y2="high:Q", color=alt.value(TEXT_GREY))


def styled(chart):
    return (
        chart.configure(background="transparent")
        .configure_view(stroke=None)
        .configure_axis(
            labelColor=TEXT_GREY, titleColor=TEXT_GREY, domainColor=TEXT_GREY, tickColor=TEXT_GREY, gridColor=GRID_GREY
        )
        .configure_legend(labelColor=TEXT_GREY, titleColor=TEXT_GREY)
        .configure_title(color=TEXT_GREY, fontSize=14)
    )
