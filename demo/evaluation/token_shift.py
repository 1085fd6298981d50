"""The token-shift view over an evaluation's answers: for every stored aligned answer of a
one-family pair, each token ranked under the pair's before model (demo/token_shift.py), then
the shifted and marginal shares per answer, per category and per pair (means with 95 %
bootstrap intervals over answers), a chart, and the most often shifted tokens per step.

`python -m demo token-shift` runs it over stored runs (by default the three one-family
comparisons in results/evaluation/align/ and the default run) into results/token-shift/: `answers.jsonl`
(a record per answer, appended as it goes, so `--resume` continues a stopped run),
`summary.json`, `report.md` and `shares.png`. The answers are those the runs stored, so the
figures are about what our models actually wrote. Each answer is also ranked under the model
that wrote it, the control (demo/token_shift.py): the stored answers were sampled, and sampling
alone puts tokens outside a model's own top 3.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..compare import token_shift_unavailable
from ..config import AppConfig
from ..generation.formatting import BaseMode
from ..markdown import code_span
from ..paths import ALIGN_RUNS_DIR, DEFAULT_RUN_DIR, REPO_ROOT, RESULTS_DIR
from ..token_shift import SHIFT_KINDS, kind_share, shift_kind
from .metrics import bootstrap_mean, sent_prompt

if TYPE_CHECKING:
    from ..generation.runner import ModelRunner

DEFAULT_RUNS = (
    ALIGN_RUNS_DIR / "sft-vs-base",
    ALIGN_RUNS_DIR / "rlhf-vs-sft",
    DEFAULT_RUN_DIR,
)
OUT_DIR = RESULTS_DIR / "token-shift"
TOP_TOKENS = 20
MIN_OCCURRENCES = 5  # a token's shifted fraction is listed only when it occurs this often


@dataclass(frozen=True)
class ShiftJob:
    """One stored aligned answer to rank under its pair's before model."""

    key: str
    run: str
    pair: str
    before: str  # model id
    after: str  # model id
    suite: str
    category: str
    prompt: str  # as sent to the models (with a suite's instruction)
    base_format: str
    text: str


def shift_jobs(config: AppConfig, runs: Sequence[Path]) -> tuple[list[ShiftJob], list[str]]:
    """The answers to rank, from each run's results.jsonl, and what was skipped and why."""
    jobs, skipped = [], []
    for run in runs:
        path = Path(run) / "results.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            pair_id = row.get("pair")
            try:
                pair = config.pair(pair_id)
            except (KeyError, ValueError):
                skipped.append(f"{run.name}: pair {pair_id!r} is not configured")
                continue
            why = token_shift_unavailable(config, pair.base, pair.aligned)
            aligned = row.get("aligned") or {}
            if why is not None or aligned.get("error") or not (aligned.get("text") or "").strip():
                skipped.append(f"{run.name}: {why or 'no aligned answer'}")
                continue
            before_format = row.get("base_format") or "raw"
            if config.models[pair.base].prompt_format == "chat":
                before_format = "chat"
            jobs.append(
                ShiftJob(
                    key=f"{run.name}:{row['key']}",
                    run=run.name,
                    pair=pair.id,
                    before=pair.base,
                    after=pair.aligned,
                    suite=row["suite"],
                    category=row.get("category") or row["suite"],
                    prompt=sent_prompt(row["prompt"], row.get("instruction")),
                    base_format=before_format,
                    text=aligned["text"],
                )
            )
    return jobs, sorted(set(skipped))


def rank_answers(
    config: AppConfig,
    jobs: Sequence[ShiftJob],
    out: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Rank every job not yet in `out` (answers.jsonl), appending a record per answer; the
    before models load here, one at a time."""
    from ..generation.loading import load_runner

    done = {record["key"] for record in read_records(out)}
    todo = [job for job in jobs if job.key not in done]
    finished = 0
    # Each job needs two models (its before model, and its own for the control): load them in
    # pairs, so no more than two are in memory, each pair's jobs ranked together.
    groups: dict[tuple[str, str], list[ShiftJob]] = defaultdict(list)
    for job in todo:
        groups[(job.before, job.after)].append(job)
    runners: dict[str, ModelRunner] = {}
    with out.open("a", encoding="utf-8") as sink:
        for (before, after), group in groups.items():
            for model_id in list(runners):
                if model_id not in (before, after):
                    del runners[model_id]
            for model_id in (before, after):
                if model_id not in runners:
                    runners[model_id] = load_runner(config.models[model_id], config.base_prompted)[0]
            for job in group:
                own = runners[after].token_shift(job.prompt, job.text, "raw")
                # A chat model reads its template whatever the mode; "chat" is the record's label for it.
                mode = "raw" if job.base_format == "chat" else cast(BaseMode, job.base_format)
                view = runners[before].token_shift(job.prompt, job.text, mode).with_self(own)
                record = {
                    "key": job.key,
                    "run": job.run,
                    "pair": job.pair,
                    "step": step_label(config, job.pair),
                    "suite": job.suite,
                    "category": job.category,
                    "base_format": job.base_format,
                    "seconds": round(view.seconds, 4),
                    # [text, rank under the before model, rank under the model that wrote it]
                    "tokens": [[t.text, t.rank, own] for t, own in zip(view.tokens, view.self_ranks or ())],
                }
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                sink.flush()
                finished += 1
                if progress is not None:
                    progress(finished, len(todo))


def read_records(path: Path) -> list[dict]:
    """The records of answers.jsonl; a last line cut short by a kill is dropped (it is ranked again)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _shown(path: Path) -> str:
    """A run's folder relative to the repository (no machine's absolute path in a result)."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else path.name


def step_label(config: AppConfig, pair_id: str) -> str:
    pair = config.pair(pair_id)
    return f"{config.models[pair.aligned].name} vs {config.models[pair.base].name}"


def _shares(ranks: Sequence[int]) -> dict[str, float]:
    return {kind: kind_share(ranks, kind) for kind in SHIFT_KINDS}


def summarise(records: Iterable[dict]) -> dict:
    """Shares per pair (and base format), per category, and the most often shifted tokens per step."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        if record["tokens"]:
            groups[(record["step"], record["pair"], record["base_format"])].append(record)
    steps = []
    for (step, pair, base_format), rows in groups.items():
        shares = [_shares([token[1] for token in r["tokens"]]) for r in rows]
        own = [_shares([token[2] for token in r["tokens"]]) for r in rows]
        categories = []
        for category in sorted({r["category"] for r in rows}):
            picked = [s for s, r in zip(shares, rows) if r["category"] == category]
            picked_own = [s for s, r in zip(own, rows) if r["category"] == category]
            categories.append({"category": category, **_estimates(picked, picked_own)})
        occurrences: Counter[str] = Counter()
        shifted: Counter[str] = Counter()
        for r in rows:
            for text, rank, _ in r["tokens"]:
                word = text.strip()
                if word:
                    occurrences[word] += 1
                    shifted[word] += shift_kind(rank) == "shifted"
        steps.append(
            {
                "step": step,
                "pair": pair,
                "base_format": base_format,
                "suites": sorted({r["suite"] for r in rows}),
                "tokens": sum(len(r["tokens"]) for r in rows),
                "seconds_per_answer": round(sum(r["seconds"] for r in rows) / len(rows), 4),
                **_estimates(shares, own),
                "categories": categories,
                "most_shifted": [
                    {"token": word, "shifted": count, "occurrences": occurrences[word]}
                    for word, count in shifted.most_common(TOP_TOKENS)
                    if count
                ],
                "most_often_shifted": [
                    {"token": word, "shifted": shifted[word], "occurrences": n, "fraction": round(shifted[word] / n, 3)}
                    for word, n in sorted(
                        ((w, n) for w, n in occurrences.items() if n >= MIN_OCCURRENCES),
                        key=lambda item: (-shifted[item[0]] / item[1], -item[1]),
                    )[:TOP_TOKENS]
                ],
            }
        )
    return {"steps": steps}


def _estimates(shares: Sequence[dict[str, float]], own: Sequence[dict[str, float]]) -> dict:
    """Mean shares with 95 % intervals: under the before model, under the answer's own model (the
    control), and the difference per answer (what the step changed)."""
    out: dict = {"answers": len(shares)}
    for kind in ("shifted", "marginal"):
        for prefix, values in (
            ("", [s[kind] for s in shares]),
            ("self_", [s[kind] for s in own]),
            ("step_", [s[kind] - o[kind] for s, o in zip(shares, own)]),
        ):
            estimate = bootstrap_mean(values)
            out[f"{prefix}{kind}_share"] = estimate.value
            out[f"{prefix}{kind}_share_ci"] = estimate.ci
    return out


def shares_chart(summary: dict):
    """Shifted and marginal shares per category, a panel per step (altair), 95 % CIs."""
    import altair as alt

    from .plots import OKABE_ITO, TEXT_GREY

    rows = []
    for step in summary["steps"]:
        series = step["step"] if step["base_format"] == "chat" else f"{step['step']} · base {step['base_format']}"
        for category in [{"category": "all", **step}, *step["categories"]]:
            for kind, label in (("shifted", "shifted"), ("self_shifted", "shifted under itself (sampling alone)")):
                low, high = category[f"{kind}_share_ci"]
                rows.append(
                    {
                        "series": series,
                        "category": category["category"],
                        "kind": label,
                        "share": category[f"{kind}_share"],
                        "low": low,
                        "high": high,
                        "n": category["answers"],
                    }
                )
    if not rows:
        return None
    # The data goes on the layer the facet splits, not on its parts (each part would read all of it).
    base = alt.Chart().encode(
        x=alt.X("category:N", title=None, axis=alt.Axis(labelAngle=-40)),
        xOffset=alt.XOffset("series:N"),
        color=alt.Color(
            "series:N",
            scale=alt.Scale(range=list(OKABE_ITO)),
            legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=0, title="step"),
        ),
    )
    bars = base.mark_bar().encode(
        y=alt.Y("share:Q", axis=alt.Axis(format="%"), title="share of answer tokens"),
        tooltip=["series:N", "category:N", "kind:N", "n:Q", alt.Tooltip("share:Q", format=".1%")],
    )
    errors = base.mark_rule(color=TEXT_GREY).encode(y="low:Q", y2="high:Q")
    return (
        alt.layer(bars, errors, data=alt.Data(values=rows))
        .facet(row=alt.Row("kind:N", title=None))
        .resolve_scale(y="independent")
        .properties(title="Tokens the model before the step would not have written (Lin et al., 2023)")
        .configure_axis(labelColor=TEXT_GREY, titleColor=TEXT_GREY)
        .configure_view(stroke=None)
    )


def _share(row: dict, key: str) -> str:
    low, high = row[f"{key}_ci"]
    if key.startswith("step_"):  # a difference of two shares: percentage points
        return f"{row[key] * 100:+.1f} points ({low * 100:+.1f} to {high * 100:+.1f})"
    return f"{row[key]:.1%} ({low:.1%} to {high:.1%})"


def steps_table(summary: dict) -> str:
    """One row per step: the shares under the before model, under the answer's own model (the
    control) and their difference, with 95 % intervals, and the most often shifted tokens."""
    rows = [
        "| step | before model's input | answers | tokens | shifted | under its own model (sampling alone) "
        "| what the step changed | marginal | most shifted tokens (times) |",
        "|---|---|---:|---:|---|---|---|---|---|",
    ]
    for step in summary["steps"]:
        tokens = ", ".join(f"{code_span(t['token'])} {t['shifted']}" for t in step["most_shifted"][:6])
        rows.append(
            f"| {step['step']} | {step['base_format']} | {step['answers']} | {step['tokens']:,} | "
            f"{_share(step, 'shifted_share')} | {_share(step, 'self_shifted_share')} | "
            f"{_share(step, 'step_shifted_share')} | {_share(step, 'marginal_share')} | {tokens} |"
        )
    return "\n".join(rows) + "\n"


def report_markdown(summary: dict) -> str:
    lines = [
        "# Token shift: where each alignment step changed our models' answers",
        "",
        "Each stored aligned answer is teacher-forced through the model before the step, after the prompt in",
        "that model's input format; a token is unshifted (its first choice), marginal (2nd or 3rd) or shifted",
        "(lower), as in Lin et al. (2023). The control ranks the same answer under the model that wrote it:",
        "the stored answers were sampled (temperature 0.7), and sampling alone puts tokens outside a small",
        "model's own top 3. Means over answers with 95 % bootstrap intervals; the answers are our models' own.",
        "",
        steps_table(summary),
    ]
    for step in summary["steps"]:
        lines += [f"## {step['step']} (before model's input: {step['base_format']})", ""]
        lines += [
            "| category | answers | shifted | under its own model | what the step changed | marginal |",
            "|---|---:|---|---|---|---|",
        ]
        lines += [
            f"| {c['category']} | {c['answers']} | {_share(c, 'shifted_share')} | {_share(c, 'self_shifted_share')} | "
            f"{_share(c, 'step_shifted_share')} | {_share(c, 'marginal_share')} |"
            for c in step["categories"]
        ]
        most = ", ".join(f"{code_span(t['token'])} {t['shifted']}" for t in step["most_shifted"][:12])
        often = ", ".join(
            f"{code_span(t['token'])} {t['fraction']:.0%} of {t['occurrences']}"
            for t in step["most_often_shifted"][:12]
        )
        lines += ["", f"Most frequently shifted tokens (times shifted): {most}.", ""]
        lines += [f"Most often shifted when they occur (≥ {MIN_OCCURRENCES} occurrences): {often}.", ""]
    return "\n".join(lines)


def run_token_shift(
    config: AppConfig,
    runs: Sequence[Path] = DEFAULT_RUNS,
    out_dir: Path = OUT_DIR,
    *,
    resume: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Rank the runs' answers (continuing `answers.jsonl` when `resume`), then write the
    summary, the report and the chart from every record there."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    answers = out_dir / "answers.jsonl"
    if not resume and answers.exists():
        answers.unlink()
    jobs, skipped = shift_jobs(config, runs)
    rank_answers(config, jobs, answers, progress=progress)
    wanted = {job.key for job in jobs}
    records = [r for r in read_records(answers) if r["key"] in wanted]
    summary = summarise(records)
    summary["runs"] = [_shown(Path(run)) for run in runs]
    summary["skipped"] = skipped
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(report_markdown(summary), encoding="utf-8")
    chart = shares_chart(summary)
    if chart is not None:
        from .plots import save_png

        save_png(chart, out_dir / "shares.png")
    return summary
