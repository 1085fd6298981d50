"""The "Compare" tab: one prompt through a configured pair, answers streamed and scored, and the
named API endpoint `/compare` (the same `Comparator` call as the CLI).

Lays out and wires only: state lives in `Comparison`, markup comes from views.py, settings from
demo/settings.py. The pair and the base model's input format are chosen from the configured
values (never a path or an id the server does not list).
"""

from __future__ import annotations

import html
import inspect
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

import gradio as gr

from ...compare import InvalidPrompt, paced, validate_prompt
from ...config import ROLES
from ...generation.formatting import BASE_MODES, BaseMode
from ...settings import SETTINGS, InvalidSetting, SamplingSettings, settings_from_values
from ...sharing import SharedComparison, markdown_report, read_query
from .. import share_views, shift_view, views
from ..context import UIContext
from ..run_controls import DECODING_QUEUE, RunControls, refusal, run_event, session_of, wait_until_ready
from ..widgets import typed_slider

TITLE = "Compare"

# The page shows at most 20 snapshots a second (see compare.paced).
SCREEN_INTERVAL_SECONDS = 0.05
SETTLE_SECONDS = 1.0  # after a clear or a switch, how long a stopped run's last snapshot may take to arrive


def settings_controls(context: UIContext) -> dict[str, gr.components.Component]:
    """One slider or number box per setting of demo/settings.py, with the configured default."""
    defaults, limits = context.config.generation, context.config.limits
    controls: dict[str, gr.components.Component] = {}
    with gr.Row():
        for setting in SETTINGS:
            value = getattr(defaults, setting.name)
            if setting.wraps:
                # No minimum in the widget: gradio would answer an out-of-range value with an
                # "Error" badge on every panel; the server wraps it and the page says so.
                controls[setting.name] = gr.Number(value=value, precision=0, label=setting.label, info=setting.help)
            else:
                low, high = setting.low, setting.upper(limits)
                controls[setting.name] = typed_slider(
                    low,
                    high,
                    value=value,
                    step=setting.step,
                    label=setting.label,
                    # The box sets a number typed beyond the range to its nearest end: say so.
                    info=f"{setting.help} ({low:.10g}–{high:.10g}; beyond it, the nearest end is used)",
                )
    return controls


def resolve_choice(value, allowed: list[str], name: str, default: str) -> str:
    """A client's choice among configured values; None takes the default, anything else is an
    error naming the parameter and what is allowed."""
    if value is None:
        return default
    if not isinstance(value, str) or value not in allowed:
        raise InvalidSetting(f"{name} must be one of {allowed}; got {value!r}")
    return value


RUN_IF_LINKED = (
    "() => { if (new URLSearchParams(window.location.search).get('prompt')) "
    "document.querySelector('#run-btn')?.click(); }"
)
SCROLL_TO_ANSWERS = "() => document.getElementById('prompt')?.scrollIntoView({behavior: 'smooth', block: 'start'})"
BASE_FORMAT_INFO = (
    "raw: the prompt as a document to continue (how GPT-3 was used); prompted: a few-shot "
    "instruction prefix (the paper's 'GPT-3 prompted')"
)
NO_BASE_FORMAT = "Both sides of this pair are chat models: they read the prompt in their chat format."


def answer_columns(config) -> dict[str, dict[str, gr.components.Component]]:
    """A column per role: heading, answer, progress line, scores (and under the aligned answer
    the token-shift view), and the exact input the model received."""
    outputs: dict[str, dict[str, gr.components.Component]] = {}
    # Columns of one height, each accordion at its column's foot: the two "Exact input" rows line
    # up whatever the answers' lengths and the token-shift view under one of them.
    with gr.Row(equal_height=True):
        for role in ROLES:
            with gr.Column(min_width=300, elem_classes="demo-side"):
                header = gr.Markdown(views.model_header(role, config.pair_models()[role]), elem_id=f"{role}-header")
                outputs[role] = {
                    "header": header,
                    "answer": gr.HTML(elem_id=f"{role}-answer"),
                    "stats": gr.Markdown(elem_id=f"{role}-stats"),
                    "scores": gr.HTML(elem_id=f"{role}-scores"),
                }
                if role == "aligned":
                    # Each aligned token ranked under the pair's base side (demo/token_shift.py).
                    outputs[role]["token_shift"] = gr.HTML(elem_id="aligned-token-shift")
                with gr.Accordion("Exact input this model received", open=False, elem_classes="demo-input"):
                    outputs[role]["input"] = gr.Textbox(
                        show_label=False, lines=4, max_lines=20, interactive=False, elem_id=f"{role}-input"
                    )
    return outputs


def pair_caption(config, pair_id: str) -> str:
    """The chosen pair's whole name, as text (no model name is markup)."""
    return f"Comparing: {html.escape(config.pair(pair_id).label)}"


def share_panel() -> tuple[gr.HTML, gr.Textbox]:
    """The link to a finished comparison and its Markdown report (demo/sharing.py)."""
    with gr.Accordion("Share this comparison", open=False, elem_id="share"):
        link = gr.HTML(elem_id="share-link")
        report = gr.Textbox(
            label="Report (Markdown): prompt, answers, scores, token shift, model versions",
            lines=6,
            max_lines=30,
            interactive=False,
            buttons=["copy"],
            elem_id="share-report",
        )
    return link, report


def example_tabs(examples) -> list[gr.Dataset]:
    """The example prompts, a tab per group; clicking one runs it."""
    gr.Markdown("## Examples\nGrouped the way the InstructGPT paper evaluates. Click one to run it.")
    sets = []
    with gr.Tabs():
        for group in examples:
            with gr.Tab(group.title):
                gr.Markdown(group.description)
                sets.append(
                    gr.Dataset(
                        components=[gr.Textbox(visible=False)],
                        samples=[[p] for p in group.prompts],
                        type="values",
                        show_label=False,
                        elem_id=f"examples-{group.id}",
                    )
                )
    return sets


def open_shared_links(
    context: UIContext,
    choices: list[gr.components.Component],
    controls: dict[str, gr.components.Component],
    headers: list[gr.components.Component],
    cards: gr.components.Component,
) -> None:
    """A page opened with a shared link (`?prompt=…&pair=…`, demo/sharing.py) fills in its
    prompt, pair, format and settings (`choices` are the prompt, pair and format boxes), then
    presses Run like a visitor (RUN_IF_LINKED): the run is queued, cancellable and cleared like
    any other. What the link got wrong is said in a warning, never raised."""
    config = context.config
    outputs = [*choices, *controls.values(), *headers, cards]

    def fill_from_link(request: gr.Request):
        shared, notes = read_query(dict(request.query_params), config)
        if shared is None:
            return [gr.skip()] * len(outputs)
        models = config.pair_models(shared.pair)
        chat_only = models["base"].prompt_format != "base"
        values = [shared.prompt, shared.pair, gr.Radio(value=shared.base_format, interactive=not chat_only)]
        values += [getattr(shared.settings, name) for name in controls]
        values += [views.model_header(role, models[role]) for role in ROLES]
        for note in notes:
            gr.Warning(f"Shared link: {note}.")
        return [*values, views.model_card_markdown(config, context.loaded_info(), shared.pair)]

    if context.page is not None:
        # Queued (a warning needs the queue) but never limited: filling in is instant.
        context.page.load(fill_from_link, None, outputs, concurrency_limit=None, api_visibility="private").then(
            None, None, None, js=RUN_IF_LINKED
        )


@dataclass(frozen=True)
class CompareLayout:
    """The tab's components: the prompt and its buttons, the pair and format pickers, a column
    of outputs per role, the preference and share panels, the settings, examples and cards."""

    controls: RunControls
    prompt_size: gr.Markdown
    regen_btn: gr.Button
    clear_btn: gr.Button
    pair_choice: gr.Dropdown
    base_format: gr.Radio
    pair_label: gr.Markdown
    message: gr.HTML
    sides: dict[str, dict[str, gr.components.Component]]  # by role, see answer_columns
    preference: gr.HTML
    share_link: gr.HTML
    report: gr.Textbox
    settings: dict[str, gr.components.Component]  # by setting name, see settings_controls
    example_sets: list[gr.Dataset]
    cards: gr.Markdown
    cards_timer: gr.Timer

    @property
    def prompt(self) -> gr.Textbox:
        return self.controls.prompt

    @property
    def headers(self) -> list[gr.components.Component]:
        return [self.sides[role]["header"] for role in ROLES]

    @property
    def results(self) -> list[gr.components.Component]:
        """What a run writes, in its order; what a clear or a switch empties."""
        sides = [self.sides[role][key] for role in ROLES for key in ("answer", "stats", "scores", "input")]
        return [
            self.message,
            self.preference,
            *sides,
            self.sides["aligned"]["token_shift"],
            self.share_link,
            self.report,
        ]


@dataclass(frozen=True)
class RunChoice:
    """What the page asked a run for, once checked: refused before anything runs otherwise."""

    prompt: str
    pair: str
    mode: BaseMode
    settings: SamplingSettings
    adjusted: str  # the note on settings brought into range (escaped), or ""


def build(context: UIContext) -> None:
    layout = lay_out(context)
    wire(context, layout)


def lay_out(context: UIContext) -> CompareLayout:
    config = context.config
    prompt, prompt_size = prompt_box(config.limits)
    # Small min widths keep the four buttons on one line on a phone, so the answers start
    # on the first screen.
    with gr.Row(equal_height=True):
        run_btn = gr.Button("Run both ▶", variant="primary", elem_id="run-btn", scale=2, min_width=90)
        stop_btn = gr.Button("Stop ■", variant="stop", elem_id="stop-btn", min_width=60)
        regen_btn = gr.Button("Regenerate ↻", elem_id="regen-btn", min_width=60)
        clear_btn = gr.Button("Clear", elem_id="clear-btn", min_width=60)
    pair_choice, base_format, pair_label = pair_pickers(config)
    message = gr.HTML(elem_id="message")
    sides = answer_columns(config)
    preference = gr.HTML(elem_id="preference")
    share_link, report = share_panel()
    gr.Markdown(views.LEGEND)
    settings = settings_panel(context)
    example_sets = example_tabs(views.load_examples())
    with gr.Accordion("About the models and scorers", open=False):
        cards = gr.Markdown(views.model_card_markdown(config, {}))
    return CompareLayout(
        controls=RunControls(prompt, run_btn, stop_btn),
        prompt_size=prompt_size,
        regen_btn=regen_btn,
        clear_btn=clear_btn,
        pair_choice=pair_choice,
        base_format=base_format,
        pair_label=pair_label,
        message=message,
        sides=sides,
        preference=preference,
        share_link=share_link,
        report=report,
        settings=settings,
        example_sets=example_sets,
        cards=cards,
        cards_timer=gr.Timer(1.0),  # refreshes the cards until every model has loaded
    )


def prompt_box(limits) -> tuple[gr.Textbox, gr.Markdown]:
    """The prompt, and the line under it saying how much of the limit it takes."""
    prompt = gr.Textbox(
        label="Prompt",
        placeholder="Type an instruction, e.g. “Explain the moon landing to a 6 year old.” — Ctrl/⌘+Enter runs",
        lines=3,
        max_lines=12,
        max_length=limits.max_prompt_chars,
        elem_id="prompt",
    )
    return prompt, gr.Markdown(views.prompt_size_note("", limits), elem_id="prompt-size")


def pair_pickers(config) -> tuple[gr.Dropdown, gr.Radio, gr.Markdown]:
    """The pair (shown only where there is a choice), the base model's input format, and the
    pair's whole name for a phone."""
    with gr.Row(equal_height=True):
        pair_choice = gr.Dropdown(
            [(pair.label, pair.id) for pair in config.pairs],
            value=config.default_pair.id,
            label="Compare",
            elem_id="pair",
            visible=len(config.pairs) > 1,
            scale=2,
        )
        base_format = gr.Radio(
            list(BASE_MODES),
            value="raw",
            label="Base model input",
            elem_id="base-format",
            info=BASE_FORMAT_INFO,
        )
    # On a phone the dropdown's box is narrower than most pair names: the whole name, below it.
    pair_label = gr.Markdown(
        pair_caption(config, config.default_pair.id), elem_id="pair-label", elem_classes="demo-phone-only"
    )
    return pair_choice, base_format, pair_label


def settings_panel(context: UIContext) -> dict[str, gr.components.Component]:
    """The settings, folded, with a word on why the defaults are what they are."""
    with gr.Accordion("Settings", open=False):
        controls = settings_controls(context)
        gr.Markdown(
            "Defaults keep a small base model readable: greedy decoding makes it loop on one "
            "phrase; sampling around 0.7 with a mild repetition penalty does not."
        )
    return controls


def resolve_pair(config, value) -> str:
    """A client's pair among the configured ones (None: the default)."""
    return resolve_choice(value, [pair.id for pair in config.pairs], "pair", config.default_pair.id)


def wire(context: UIContext, layout: CompareLayout) -> None:
    limits = context.config.limits
    # A set of inputs: the handler gets one {component: value} dict, so the settings can be
    # iterated instead of spelled out as parameters.
    run_inputs = {layout.prompt, layout.pair_choice, layout.base_format, *layout.settings.values()}
    run_args = run_event(compare_run(context, layout), run_inputs, layout.results, limits.concurrency_limit)
    run_events = wire_runs(context, layout, run_args)
    wire_resets(context, layout, run_events)
    wire_page_notes(context, layout)
    open_shared_links(
        context, [layout.prompt, layout.pair_choice, layout.base_format], layout.settings, layout.headers, layout.cards
    )
    gr.api(
        compare_endpoint(context),
        api_name="compare",
        concurrency_limit=limits.concurrency_limit,
        concurrency_id=DECODING_QUEUE,
    )


def wire_runs(context: UIContext, layout: CompareLayout, run_args: dict[str, Any]) -> list[Any]:
    """Everything that starts a run: Run, Enter, Regenerate (the next seed) and an example (put
    in the prompt, brought into view); Stop. The run events, for the triggers that cancel them."""
    run_events = layout.controls.wire(run_args, context.stops)
    seed = layout.settings["seed"]
    run_events.append(
        layout.regen_btn.click(lambda s: int(s or 0) + 1, seed, seed, queue=False, api_visibility="private").then(
            **run_args
        )
    )
    for dataset in layout.example_sets:
        # The answers stream far above the examples: bring them into view as the run starts.
        run_events.append(
            dataset.click(lambda sample: sample[0], dataset, layout.prompt, queue=False, api_visibility="private")
            .then(None, None, None, js=SCROLL_TO_ANSWERS)
            .then(**run_args)
        )
    return run_events


def wire_resets(context: UIContext, layout: CompareLayout, run_events: list[Any]) -> None:
    """Clear, a new pair and a new format take the answers off the page (and say the pair's
    whole name). Clearing or switching what the answers belong to cancels a run in the browser
    too, so a snapshot already on its way cannot refill the cleared answers (the server-side flag
    alone cannot catch one sent a moment before the switch)."""
    config, results = context.config, layout.results
    resets = Resets(context, len(results))
    settle: dict[str, Any] = dict(
        fn=resets.settled, inputs=None, outputs=results, queue=False, api_visibility="private"
    )
    private: dict[str, Any] = dict(queue=False, api_visibility="private")
    layout.clear_btn.click(resets.clear, None, [layout.prompt, *results], **private, cancels=run_events).then(**settle)
    # .input, not .change: a shared link sets the pair in code (fill_from_link) and must not
    # abandon the run it starts.
    pair_outputs = [*layout.headers, layout.cards, layout.base_format, *results]
    layout.pair_choice.input(resets.show_pair, layout.pair_choice, pair_outputs, **private, cancels=run_events).then(
        **settle
    )
    layout.pair_choice.change(
        lambda pair_id: pair_caption(config, pair_id),
        layout.pair_choice,
        layout.pair_label,
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )
    layout.base_format.input(resets.format_changed, None, results, **private, cancels=run_events).then(**settle)


class Resets:
    """The handlers that take a session's answers off the page: each stops its run and keeps
    the run's remaining snapshots off the screen (StopFlags.abandon)."""

    def __init__(self, context: UIContext, results: int):
        self.context = context
        self.results = results
        self.cleared = [""] * results

    def show_pair(self, pair_id, request: gr.Request):
        """A new pair: its headings and cards, the raw/prompted switch only where a base model
        answers, and no answer left under a heading that no longer wrote it (a run in progress
        is stopped)."""
        config = self.context.config
        self.context.stops.abandon(session_of(request))
        pair_id = resolve_pair(config, pair_id)
        models = config.pair_models(pair_id)
        headers = [views.model_header(role, models[role]) for role in ROLES]
        has_base_model = models["base"].prompt_format == "base"
        switch = gr.Radio(interactive=has_base_model, info=BASE_FORMAT_INFO if has_base_model else NO_BASE_FORMAT)
        cards = views.model_card_markdown(config, self.context.loaded_info(), pair_id)
        return [*headers, cards, switch, *self.cleared]

    def settled(self, request: gr.Request):
        """Cleared once more a moment later: a snapshot the stopped run sent just before the switch
        can reach the page after the first clear (under load, CI saw it happen) — unless the
        visitor has started a new run meanwhile, whose answers must stay."""
        time.sleep(SETTLE_SECONDS)
        if not self.context.stops.latest_abandoned(session_of(request)):
            return [gr.skip()] * self.results
        return self.cleared

    def clear(self, request: gr.Request):
        self.context.stops.abandon(session_of(request))
        return ["", *self.cleared]

    def format_changed(self, request: gr.Request):
        """The base model's input changed: its answer (and the comparison) no longer match."""
        self.context.stops.abandon(session_of(request))
        return self.cleared


def wire_page_notes(context: UIContext, layout: CompareLayout) -> None:
    """The prompt's size under it as it is typed; the cards refreshed until every model loaded."""
    config, comparator = context.config, context.comparator
    layout.prompt.change(
        lambda text: views.prompt_size_note(text or "", config.limits),
        layout.prompt,
        layout.prompt_size,
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )

    def refresh_cards(pair_id):
        settled = views.loading_status(comparator)[1]
        cards = views.model_card_markdown(config, context.loaded_info(), resolve_pair(config, pair_id))
        return cards, gr.Timer(active=not settled)

    timer = layout.cards_timer
    timer.tick(refresh_cards, layout.pair_choice, [layout.cards, timer], queue=False, api_visibility="private")


def read_run(data: dict, layout: CompareLayout, config) -> RunChoice:
    """The run's prompt, pair, format and settings from the page's values; InvalidPrompt or
    InvalidSetting for what cannot run."""
    limits = config.limits
    prompt_text = data[layout.prompt]
    validate_prompt(prompt_text, limits)
    pair_id = resolve_pair(config, data[layout.pair_choice])
    mode = cast(BaseMode, resolve_choice(data[layout.base_format], list(BASE_MODES), "base_format", "raw"))
    values = {name: data[control] for name, control in layout.settings.items()}
    settings = settings_from_values(values, config.generation, limits)
    adjusted = views.escape(views.adjusted_settings_note(values, settings, limits))
    return RunChoice(prompt_text, pair_id, mode, settings, adjusted)


def compare_run(context: UIContext, layout: CompareLayout):
    """The run: once the pair's models are ready, both answers streamed into the page, scored,
    and (once settled) the link and report to share them."""
    config, comparator = context.config, context.comparator
    render = renderer(context)
    rest = len(layout.results) - 1

    def run(data: dict, request: gr.Request):
        try:
            choice = read_run(data, layout, config)
        except (InvalidPrompt, InvalidSetting) as error:
            yield refusal(error, rest)
            return
        flag = context.stops.fresh(session_of(request))
        workers = comparator.pair_workers(choice.pair).values()
        yield from wait_until_ready(
            workers, lambda: [views.loading_status(comparator)[0], *[gr.skip()] * rest], flag.is_set
        )
        snapshots = comparator.stream(
            choice.prompt, choice.settings, choice.mode, should_stop=flag.is_set, pair=choice.pair, token_shift=True
        )
        shared = SharedComparison(choice.prompt, choice.pair, choice.mode, choice.settings)
        page = share_views.page_url(request)
        for snapshot in paced(snapshots, SCREEN_INTERVAL_SECONDS):
            if context.stops.abandoned(flag):
                return  # the pair or format changed: these answers belong to the old heading
            note = " ".join(filter(None, [choice.adjusted, views.escape(snapshot.error or "")]))
            yield render(snapshot, streaming=True, note=note, shared=shared, page=page)

    return run


def renderer(context: UIContext):
    """A comparison as the run's outputs (CompareLayout.results): answers, stats, scores, inputs,
    the token shift, and the link and report once the comparison has settled without error."""
    config, comparator = context.config, context.comparator
    threshold = config.scoring.toxicity_threshold

    def render(comparison, streaming: bool, note: str = "", shared: SharedComparison | None = None, page: str = ""):
        calibration = comparator.calibration()
        values = [note, views.preference_html(comparison, calibration)]
        for role in ROLES:
            side = comparison.side(role)
            values += [
                views.answer_html(side, streaming=streaming and not side.done),
                views.stats_text(side),
                views.scores_html(side, threshold, calibration),
                side.input_text,
            ]
        aligned = comparison.aligned
        waiting = aligned.done and aligned.error is None and not comparison.error
        values.append(shift_view.token_shift_html(aligned.token_shift, waiting=waiting))
        settled = comparison.done and (aligned.token_shift is not None or not waiting)
        if shared is None or not settled or comparison.error:
            return [*values, "", ""]
        link = share_views.link_html(shared)
        text = markdown_report(comparison, config, shared.settings, shared.base_format, calibration, page or None)
        return [*values, link, text]

    return render


def compare_endpoint(context: UIContext):
    """`/compare(prompt, <each setting>, base_format, pair, token_shift)`: both answers with
    scores, as JSON; with `token_shift=True` the aligned side has a `token_shift` key
    (demo/token_shift.py).

    The signature is derived from demo/settings.py, so the API lists exactly the page's settings
    with the configured defaults. Plain HTTP/JS clients may send null for an optional argument:
    it takes the default. A wrongly typed value is refused with a message naming the parameter.
    """
    config, comparator = context.config, context.comparator
    limits, defaults = config.limits, config.generation
    signature, annotations = compare_signature(config)

    def compare(prompt, *args, **kwargs) -> dict:
        bound = signature.bind(prompt, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        text = values.pop("prompt")
        if text is not None and not isinstance(text, str):
            raise gr.Error(f"prompt must be text; got {type(text).__name__} {text!r}")
        try:
            mode = cast(BaseMode, resolve_choice(values.pop("base_format"), list(BASE_MODES), "base_format", "raw"))
            pair_id = resolve_pair(config, values.pop("pair"))
            token_shift = values.pop("token_shift")
            if token_shift is None:
                token_shift = False
            if not isinstance(token_shift, bool):
                raise InvalidSetting(f"token_shift must be true or false; got {token_shift!r}")
            settings = settings_from_values(values, defaults, limits)
        except InvalidSetting as error:
            raise gr.Error(str(error)) from None
        # Only this pair's models: a request for the default pair must not wait for models that
        # load after it (each waited for in turn, that was up to four timeouts).
        comparator.wait_ready(limits.request_timeout_seconds, pair=pair_id)
        return comparator.run(text, settings, mode, pair=pair_id, token_shift=token_shift).to_json()  # type: ignore[arg-type]  # None: Comparator.stream's validate_prompt refuses it

    compare.__signature__ = signature  # type: ignore[attr-defined]
    compare.__annotations__ = annotations
    compare.__doc__ = (
        "Run a prompt through a configured pair (base and aligned); both answers with scores. "
        "token_shift=True adds the aligned answer's tokens ranked under the base side."
    )
    return compare


def compare_signature(config) -> tuple[inspect.Signature, dict[str, object]]:
    """`/compare`'s parameters and their annotations: the prompt, each setting with its
    configured default (in the historical order), then base_format, pair and token_shift."""
    defaults = config.generation
    parameters = [inspect.Parameter("prompt", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str)]
    annotations: dict[str, object] = {"prompt": str, "return": dict}
    for setting in SETTINGS:
        annotations[setting.name] = setting.kind
        parameters.append(
            inspect.Parameter(
                setting.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=getattr(defaults, setting.name),
                annotation=setting.kind,
            )
        )
    # Keep the historical argument order (seed before repetition_penalty) for positional clients.
    order = ["prompt", "max_new_tokens", "temperature", "top_p", "seed", "repetition_penalty"]
    parameters.sort(key=lambda p: order.index(p.name) if p.name in order else len(order))
    trailing: list[tuple[str, object, object]] = [
        ("base_format", "raw", Literal["raw", "prompted"]),
        ("pair", config.default_pair.id, str),
        ("token_shift", False, bool),
    ]
    for name, default, annotation in trailing:
        parameters.append(
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)
        )
        annotations[name] = annotation
    return inspect.Signature(parameters, return_annotation=dict), annotations
