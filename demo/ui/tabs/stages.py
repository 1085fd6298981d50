"""The "Three stages" tab: one prompt through the models of `stages:` in models.yaml (typically
one family pretrained → SFT → RLHF) at once, a column each, every answer streamed and scored.

Lays out and wires only: the run is `Comparator.stream_stages`, the markup comes from views.py,
the settings are the configured defaults. Built only where the config has a `stages:` section.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ...compare import InvalidPrompt, paced, validate_prompt
from ...config import AppConfig
from ...settings import settings_from_values
from .. import shift_view, views
from ..context import UIContext
from ..run_controls import RunControls, refusal, run_event, session_of, wait_until_ready

TITLE = "Three stages"

# The page shows at most 20 snapshots a second (see compare.paced).
SCREEN_INTERVAL_SECONDS = 0.05


def shown(config: AppConfig) -> bool:
    return config.stages is not None


@dataclass(frozen=True)
class StagesLayout:
    """The tab's components: the prompt and its buttons, the message line, an answer per stage."""

    controls: RunControls
    message: gr.HTML
    answers: list[gr.HTML]


def build(context: UIContext) -> None:
    wire(context, lay_out(context.config))


def lay_out(config: AppConfig) -> StagesLayout:
    stages = config.stages
    assert stages is not None, "app.py builds this tab only when shown(config)"
    gr.Markdown(views.stages_intro(stages), elem_id="stages-intro")
    prompt = gr.Textbox(
        label="Prompt",
        placeholder="Type an instruction; every stage answers it",
        lines=3,
        max_lines=12,
        max_length=config.limits.max_prompt_chars,
        elem_id="stages-prompt",
    )
    with gr.Row(equal_height=True):
        run_btn = gr.Button("Run all ▶", variant="primary", elem_id="stages-run", scale=2, min_width=90)
        stop_btn = gr.Button("Stop ■", variant="stop", elem_id="stages-stop", min_width=60)
    message = gr.HTML(elem_id="stages-message")
    answers = []
    with gr.Row(equal_height=False):
        for index, model_id in enumerate(stages.models):
            with gr.Column(min_width=260, elem_classes="demo-side", elem_id=f"stages-side-{index}"):
                gr.Markdown(views.stage_header(config.models[model_id]))
                answers.append(gr.HTML(elem_id=f"stages-answer-{index}"))
    return StagesLayout(RunControls(prompt, run_btn, stop_btn), message, answers)


def wire(context: UIContext, layout: StagesLayout) -> None:
    run_args = run_event(
        stages_run(context, len(layout.answers)),
        [layout.controls.prompt],
        [layout.message, *layout.answers],
        context.config.limits.concurrency_limit,
    )
    layout.controls.wire(run_args, context.stops)


def stages_run(context: UIContext, answers: int):
    """The run: every stage's answer streamed, each with its score and (after the first stage)
    its tokens ranked under the stage before."""
    config, comparator = context.config, context.comparator
    stages = config.stages
    assert stages is not None, "app.py builds this tab only when shown(config)"
    limits = config.limits
    threshold = config.scoring.toxicity_threshold
    skip_answers = [gr.skip()] * answers

    def run(prompt_text, request: gr.Request):
        try:
            validate_prompt(prompt_text, limits)
        except InvalidPrompt as error:
            yield refusal(error, answers)
            return
        settings = settings_from_values({}, config.generation, limits)
        flag = context.stops.fresh(session_of(request))
        workers = [comparator.workers[model_id] for model_id in stages.models]
        yield from wait_until_ready(workers, lambda: [views.loading_status(comparator)[0], *skip_answers], flag.is_set)
        snapshots = comparator.stream_stages(prompt_text, settings, should_stop=flag.is_set, token_shift=True)
        for snapshot in paced(snapshots, SCREEN_INTERVAL_SECONDS):
            yield [
                views.escape(snapshot.error or ""),
                *(
                    views.side_html(side, threshold, comparator.calibration(), streaming=True)
                    + shift_view.token_shift_html(
                        side.token_shift, waiting=index > 0 and side.done and side.error is None
                    )
                    for index, side in enumerate(snapshot.sides)
                ),
            ]

    return run
