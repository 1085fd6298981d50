"""The "Evaluate" tab: the paper's comparisons on a shipped suite, run on the server.

Opens on the report of the shipped default run (results/evaluation/default-run/), so a visitor sees the
numbers without waiting. A new run takes a shipped suite (never a path from the browser) and a
sample count; the server caps the comparisons at `limits.max_evaluation_items`, runs one
evaluation at a time (its own queue, whose position Gradio shows) and reports progress with an
ETA. Finished rows are kept in the cache, so the same request again is answered from them.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ...cache import cache_dir, cached_file
from ...errors import public_message
from ...evaluation import plots
from ...evaluation.report import render_report
from ...evaluation.results import config_hash
from ...evaluation.runner import EvaluationOptions, count_work, model_hashes, run_evaluation, run_sampling
from ...evaluation.suites import load_suite, shipped_suites
from ...evaluation.token_shift import OUT_DIR as TOKEN_SHIFT_DIR
from ...evaluation.token_shift import report_markdown, shares_chart
from ...paths import DEFAULT_RUN_DIR
from ..context import UIContext
from ..widgets import typed_slider

TITLE = "Evaluate"
MAX_SAMPLES = 4
RESULT_FILES = ("results.jsonl", "likelihoods.jsonl", "summary.json", "report.md")
INTRO = (
    "The InstructGPT paper's three measurements, at small scale: **preference** (the reward model as "
    "judge), **truthfulness** (multiple choice by likelihood, and generated answers checked against "
    "references) and **toxicity** by instruction (the paper's Figure 7). Shown first: the report of "
    "the shipped default run. Run your own on a shipped suite below (one evaluation at a time)."
)


@dataclass(frozen=True)
class PlannedRun:
    """What a request will run after the server's cap: the prompts taken, and the comparisons."""

    options: EvaluationOptions
    prompts: int
    rows: int
    items: int
    capped: bool


def plan_request(suite: str, samples, limit: int) -> PlannedRun:
    """The evaluation a visitor's choice becomes: a shipped suite only, 1–MAX_SAMPLES samples,
    and as many of the suite's prompts as fit in `limit` comparisons (prompts × samples × base
    formats × instructions)."""
    if suite not in shipped_suites():
        raise ValueError(f"suite must be one of {sorted(shipped_suites())}; got {suite!r}")
    samples = int(min(max(int(samples or 1), 1), MAX_SAMPLES))
    rows = len(load_suite(suite))
    per_prompt = count_work(EvaluationOptions(suites=(suite,), samples=samples, max_prompts=1))
    prompts = max(1, min(rows, limit // per_prompt))
    options = EvaluationOptions(suites=(suite,), samples=samples, max_prompts=prompts)
    return PlannedRun(options, prompts, rows, prompts * per_prompt, prompts < rows)


def samples_note(given, plan: PlannedRun) -> str:
    """One sentence when the samples asked for are not the samples the run uses (typed out of
    range, or not a number), so the box never changes a value silently."""
    used = plan.options.samples
    try:
        same = float(given) == used
    except (TypeError, ValueError):
        same = False
    return "" if same else f"Adjusted: samples per prompt {given} is outside 1–{MAX_SAMPLES}: used {used}. "


def describe_plan(plan: PlannedRun, limit: int) -> str:
    cap = (
        f" (capped at {limit} comparisons per run: {plan.prompts} of {plan.rows} prompts, spread over its categories)"
        if plan.capped
        else ""
    )
    likelihoods = (
        " Each truthfulness question also has its answer choices' likelihoods scored, so the progress bar counts"
        " those too."
        if "truthfulness" in plan.options.suites
        else ""
    )
    return (
        f"This run makes **{plan.items} comparisons** on `{plan.options.suites[0]}`, "
        f"{plan.options.samples} sample(s) per prompt{cap}.{likelihoods}"
    )


def load_summary(out_dir: Path) -> dict | None:
    path = out_dir / "summary.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def download_folder() -> Path:
    """Where the tab writes the zips it offers (the app's launch allows gradio to serve it)."""
    return cache_dir() / "evaluation-downloads"


def results_zip(out_dir: Path) -> Path | None:
    """A zip of the run's results (rows, likelihoods, summary, report), rebuilt when one of them
    changed (a cache artefact like any other: locked, written aside, renamed)."""
    files = [out_dir / name for name in RESULT_FILES if (out_dir / name).is_file()]
    if not files:
        return None

    def write(temporary: Path) -> None:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for f in files:
                archive.write(f, f.name)

    recipe = {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files}
    target = download_folder() / f"{out_dir.name}-results.zip"
    return cached_file(target, write, recipe=recipe, label=f"the download of {out_dir.name}")


def safe_results_zip(out_dir: Path) -> tuple[Path | None, str]:
    """The zip, or None and a sentence saying the download failed (the run itself is kept)."""
    try:
        return results_zip(out_dir), ""
    except Exception as error:  # a full disk must not discard a finished run's tables and plots
        return None, " " + public_message(error, "packaging the results for download")


def views(summary: dict | None, heading: str) -> tuple:
    """(markdown of the tables, three charts) for a summary; a note when there is none."""
    if summary is None:
        return "No evaluation report yet.", None, None, None
    tables = render_report(summary).replace("# Base vs aligned: evaluation report", f"### {heading}", 1)
    return tables, plots.win_rate_chart(summary), plots.truthfulness_chart(summary), plots.toxicity_chart(summary)


def token_shift_views(summary: dict | None) -> tuple | None:
    """(chart, markdown) of the committed token-shift results; None when there are none or they
    were written by another version of `python -m demo token-shift` (the page still serves)."""
    if summary is None:
        return None
    try:
        return shares_chart(summary), report_markdown(summary).replace("# ", "### ", 1)
    except (KeyError, TypeError, ValueError):
        return None


def run_dir(context: UIContext, options: EvaluationOptions) -> Path:
    key = config_hash(options, run_sampling(context.config, options), model_hashes(context.config, options))
    return cache_dir() / "evaluations" / key


@dataclass(frozen=True)
class EvaluateLayout:
    """The tab's components: the run's choices and button, its plan and status, the report."""

    suite: gr.Dropdown
    samples: gr.Slider
    run_btn: gr.Button
    plan_note: gr.Markdown
    status: gr.Markdown
    download: gr.DownloadButton
    win_plot: gr.Plot
    truth_plot: gr.Plot
    tox_plot: gr.Plot
    report: gr.Markdown


def build(context: UIContext) -> None:
    wire(context, lay_out(context.config.limits.max_evaluation_items))


def lay_out(limit: int) -> EvaluateLayout:
    suites = sorted(shipped_suites())
    first = "instructions" if "instructions" in suites else suites[0]
    gr.Markdown(INTRO)
    with gr.Row(equal_height=True):
        suite = gr.Dropdown(suites, value=first, label="Suite", elem_id="eval-suite", scale=2)
        samples = typed_slider(
            1, MAX_SAMPLES, value=1, step=1, label="Samples per prompt", elem_id="eval-samples", scale=2
        )
        run_btn = gr.Button("Run evaluation ▶", variant="primary", elem_id="eval-run", scale=1)
    plan_note = gr.Markdown(describe_plan(plan_request(first, 1, limit), limit), elem_id="eval-plan")
    status = gr.Markdown("", elem_id="eval-status")
    tables, win, truth, tox = views(
        load_summary(DEFAULT_RUN_DIR), "Shipped default run (results/evaluation/default-run/)"
    )
    download = gr.DownloadButton(
        "Download results (zip)", value=safe_results_zip(DEFAULT_RUN_DIR)[0], elem_id="eval-download"
    )
    with gr.Row():
        win_plot = gr.Plot(win, label="Win rate per category", show_label=False, elem_id="eval-win")
    with gr.Row():
        truth_plot = gr.Plot(truth, label="Truthfulness", show_label=False, elem_id="eval-truth")
        tox_plot = gr.Plot(tox, label="Toxicity by instruction", show_label=False, elem_id="eval-toxicity")
    report = gr.Markdown(tables, elem_id="eval-report")
    token_shift_panel()
    return EvaluateLayout(suite, samples, run_btn, plan_note, status, download, win_plot, truth_plot, tox_plot, report)


def token_shift_panel() -> None:
    """The committed token-shift results, folded, where there are any (see token_shift_views)."""
    shift_views = token_shift_views(load_summary(TOKEN_SHIFT_DIR))
    if shift_views is not None:
        with gr.Accordion("Token shift: where each alignment step changed our models' answers", open=False):
            gr.Plot(shift_views[0], show_label=False, elem_id="eval-shift")
            gr.Markdown(shift_views[1], elem_id="eval-shift-report")


def wire(context: UIContext, layout: EvaluateLayout) -> None:
    limit = context.config.limits.max_evaluation_items

    def update_plan(suite_name, sample_count):
        plan = plan_request(suite_name, sample_count, limit)
        return samples_note(sample_count, plan) + describe_plan(plan, limit)

    choices = [layout.suite, layout.samples]
    layout.suite.change(update_plan, choices, layout.plan_note, queue=False, api_visibility="private")
    layout.samples.change(update_plan, choices, layout.plan_note, queue=False, api_visibility="private")
    layout.run_btn.click(
        evaluation_run(context, limit),
        choices,
        [layout.status, layout.report, layout.win_plot, layout.truth_plot, layout.tox_plot, layout.download],
        concurrency_limit=1,
        concurrency_id="evaluate",
        api_visibility="private",
    )


def progress_reporter(progress: gr.Progress):
    """The runner's progress callback, shown as Gradio's progress bar with an ETA."""

    def on_progress(done: int, total: int, eta: float | None) -> None:
        left = (
            f", about {eta / 60:.0f} min left"
            if eta is not None and eta >= 60
            else (f", about {eta:.0f} s left" if eta is not None else "")
        )
        # Items, not comparisons: a truthfulness question also has its likelihood rows scored.
        progress((done, max(total, 1)), desc=f"{done} of {total} items{left}", unit="items")

    return on_progress


def evaluation_run(context: UIContext, limit: int):
    """The run: the visitor's plan evaluated (finished rows reused from the cache), then its
    report, charts and download."""
    config = context.config

    def evaluate(suite_name, sample_count, progress=gr.Progress()):
        try:
            plan = plan_request(suite_name, sample_count, limit)
        except ValueError as error:
            raise gr.Error(str(error)) from None
        adjusted = samples_note(sample_count, plan)
        out_dir = run_dir(context, plan.options)
        try:
            result = run_evaluation(
                config, context.comparator, plan.options, out_dir, progress=progress_reporter(progress)
            )
        except (RuntimeError, ValueError, OSError) as error:
            raise gr.Error(public_message(error, "running the evaluation")) from None
        summary = load_summary(out_dir)
        text, *charts = views(summary, f"Your run: {describe_plan(plan, limit)}")
        done = (
            f"Done in {result.seconds:.0f} s: {result.generated} items run, {result.reused} reused from earlier runs."
        )
        archive, archive_note = safe_results_zip(out_dir)
        # A chart the run has no data for (a toxicity-only run has no win rates) is hidden, not
        # left as an empty box.
        shown = [gr.update(value=chart, visible=chart is not None) for chart in charts]
        return adjusted + done + archive_note, text, *shown, archive

    return evaluate
