"""The Gradio page: lays out components and wires events; the logic lives in compare/views.

Reads top to bottom: header, prompt and buttons, the two answers with their scores, the reward
model's preference, settings, examples grouped as in the InstructGPT evaluation, model cards.
Also exposes the named API endpoint `/compare` (same `Comparator.run` as the CLI).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Literal

import gradio as gr

from . import views
from .compare import Comparator, InvalidPrompt, paced, start_comparator, validate_prompt
from .config import AppConfig, load_config
from .generation import sampling_settings
from .weights import storage_is_persistent

# The page shows at most 20 snapshots a second (see compare.paced).
SCREEN_INTERVAL_SECONDS = 0.05

CSS = """
.demo-answer { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 1rem; line-height: 1.5; }
.demo-waiting { opacity: .6; }
.demo-error { color: var(--error-text-color, #b91c1c); margin-bottom: .4rem; }
.demo-scores { font-size: .92rem; margin-top: .3rem; }
.demo-muted { opacity: .7; }
.demo-flag { padding: 0 .35rem; border-radius: .3rem; font-size: .85rem; }
.demo-toxic { background: #fecaca; color: #7f1d1d; }
.demo-clean { background: #d1fae5; color: #064e3b; }
.demo-preference { text-align: center; padding: .4rem 0; }
.demo-bar { height: .45rem; border-radius: .3rem; background: var(--neutral-300, #d4d4d4); margin: .35rem auto 0; max-width: 28rem; overflow: hidden; }
.demo-bar > div { height: 100%; background: var(--color-accent, #f97316); }
.demo-side { min-height: 8rem; }
"""

# Ctrl/⌘+Enter runs the comparison from anywhere on the page.
HEAD = """
<script>
document.addEventListener('keydown', (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === 'Enter') {
    const button = document.querySelector('#run-btn');
    if (button) { event.preventDefault(); button.click(); }
  }
});
</script>
"""


class StopFlags:
    """One stop flag per browser session, so one user's Stop never stops another's answer."""

    def __init__(self):
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def fresh(self, session: str) -> threading.Event:
        with self._lock:
            flag = self._flags[session] = threading.Event()
            return flag

    def stop(self, session: str) -> None:
        with self._lock:
            flag = self._flags.get(session)
        if flag is not None:
            flag.set()


def build_ui(config: AppConfig, comparator: Comparator) -> gr.Blocks:
    defaults = config.generation
    limits = config.limits
    threshold = config.scoring.toxicity_threshold
    stops = StopFlags()
    examples = views.load_examples()

    with gr.Blocks(title=config.title) as demo:
        gr.Markdown(f"# {config.title}\n{config.description}")
        status = gr.HTML(views.loading_status(comparator)[0])
        note = views.storage_note(storage_is_persistent())
        if note:
            gr.HTML(note, elem_id="storage-note")

        prompt = gr.Textbox(
            label="Prompt",
            placeholder="Type an instruction, e.g. “Explain the moon landing to a 6 year old.” — Ctrl/⌘+Enter runs",
            lines=3,
            max_lines=12,
            max_length=limits.max_prompt_chars,
            elem_id="prompt",
        )
        # Small min widths keep the four buttons on one line on a phone, so the answers start
        # on the first screen.
        with gr.Row(equal_height=True):
            run_btn = gr.Button("Run both ▶", variant="primary", elem_id="run-btn", scale=2, min_width=90)
            stop_btn = gr.Button("Stop ■", variant="stop", elem_id="stop-btn", min_width=60)
            regen_btn = gr.Button("Regenerate ↻", elem_id="regen-btn", min_width=60)
            clear_btn = gr.Button("Clear", elem_id="clear-btn", min_width=60)
        message = gr.HTML(elem_id="message")

        outputs: dict[str, dict[str, gr.components.Component]] = {}
        with gr.Row(equal_height=False):
            for role in ("base", "aligned"):
                with gr.Column(min_width=300, elem_classes="demo-side"):
                    gr.Markdown(views.model_header(role, config.models[role]))
                    outputs[role] = {
                        "answer": gr.HTML(elem_id=f"{role}-answer"),
                        "stats": gr.Markdown(elem_id=f"{role}-stats"),
                        "scores": gr.HTML(elem_id=f"{role}-scores"),
                    }
                    with gr.Accordion("Exact input this model received", open=False):
                        outputs[role]["input"] = gr.Textbox(
                            show_label=False, lines=4, max_lines=20, interactive=False,
                            elem_id=f"{role}-input",
                        )
        preference = gr.HTML(elem_id="preference")
        gr.Markdown(views.LEGEND)

        with gr.Accordion("Settings", open=False):
            with gr.Row():
                max_new_tokens = gr.Slider(1, limits.max_new_tokens, value=defaults.max_new_tokens, step=1, label="Max new tokens")
                temperature = gr.Slider(0.0, 2.0, value=defaults.temperature, step=0.05, label="Temperature (0 = greedy)")
                top_p = gr.Slider(0.05, 1.0, value=defaults.top_p, step=0.05, label="Top-p")
            with gr.Row():
                repetition_penalty = gr.Slider(1.0, 2.0, value=defaults.repetition_penalty, step=0.05, label="Repetition penalty")
                seed = gr.Number(value=defaults.seed, precision=0, minimum=0, label="Seed (same prompt + seed ⇒ same answers)")
                base_format = gr.Radio(
                    ["raw", "prompted"], value="raw", label="Base model input",
                    info="raw: the prompt as a document to continue (how GPT-3 was used); prompted: a few-shot instruction prefix (the paper's 'GPT-3 prompted')",
                )
            gr.Markdown(
                "Defaults keep a small base model readable: greedy decoding makes it loop on one "
                "phrase; sampling around 0.7 with a mild repetition penalty does not."
            )

        gr.Markdown("## Examples\nGrouped the way the InstructGPT paper evaluates. Click one to run it.")
        example_sets = []
        with gr.Tabs():
            for group in examples:
                with gr.Tab(group.title):
                    gr.Markdown(group.description)
                    example_sets.append(
                        gr.Dataset(
                            components=[gr.Textbox(visible=False)],
                            samples=[[p] for p in group.prompts],
                            type="values",
                            show_label=False,
                            elem_id=f"examples-{group.id}",
                        )
                    )

        with gr.Accordion("About the models and scorers", open=False):
            cards = gr.Markdown(views.model_card_markdown(config, {}))

        settings_inputs = [prompt, max_new_tokens, temperature, top_p, repetition_penalty, seed, base_format]
        result_outputs = [message, preference] + [
            outputs[role][key] for role in ("base", "aligned") for key in ("answer", "stats", "scores", "input")
        ]

        def render(comparison, streaming: bool, note: str = ""):
            values = [note, views.preference_html(comparison)]
            for role in ("base", "aligned"):
                side = comparison.side(role)
                values += [
                    views.answer_html(side, streaming=streaming and not side.done),
                    views.stats_text(side),
                    views.scores_html(side, threshold),
                    side.input_text,
                ]
            return values

        def run(prompt_text, n_tokens, temp, p, penalty, seed_value, mode, request: gr.Request):
            try:
                validate_prompt(prompt_text, limits)
            except InvalidPrompt as error:
                gr.Warning(str(error))
                yield [f'<div class="demo-error" role="alert">{views.escape(str(error))}</div>'] + [gr.skip()] * (len(result_outputs) - 1)
                return
            flag = stops.fresh(request.session_hash or "anonymous")
            settings = sampling_settings(
                defaults, max_new_tokens=n_tokens, temperature=temp, top_p=p,
                repetition_penalty=penalty, seed=seed_value or 0,
            )
            while any(w.state == "loading" for w in comparator.workers.values()) and not flag.is_set():
                yield [views.loading_status(comparator)[0]] + [gr.skip()] * (len(result_outputs) - 1)
                time.sleep(1.0)
            snapshots = comparator.stream(prompt_text, settings, mode, should_stop=flag.is_set)
            for snapshot in paced(snapshots, SCREEN_INTERVAL_SECONDS):
                yield render(snapshot, streaming=True, note=views.escape(snapshot.error or ""))

        def stop(request: gr.Request):
            stops.stop(request.session_hash or "anonymous")

        def refresh_status():
            text, settled = views.loading_status(comparator)
            loaded = {role: w.info for role, w in comparator.workers.items()}
            return text, views.model_card_markdown(config, loaded), gr.Timer(active=not settled)

        # "minimal" keeps streamed text readable (no overlay) while still showing queue position.
        run_args = dict(
            fn=run, inputs=settings_inputs, outputs=result_outputs, show_progress="minimal",
            concurrency_limit=limits.concurrency_limit, concurrency_id="compare",
        )
        run_btn.click(api_visibility="private", **run_args)
        prompt.submit(api_visibility="private", **run_args)
        stop_btn.click(stop, None, None, queue=False, api_visibility="private")
        regen_btn.click(
            lambda s: int(s or 0) + 1, seed, seed, queue=False, api_visibility="private"
        ).then(api_visibility="private", **run_args)
        clear_btn.click(
            lambda: ["", ""] + ["", "", "", ""] * 2 + [""], None, [prompt] + result_outputs,
            queue=False, api_visibility="private",
        )
        for dataset in example_sets:
            dataset.click(lambda sample: sample[0], dataset, prompt, queue=False, api_visibility="private").then(
                api_visibility="private", **run_args
            )

        timer = gr.Timer(1.0)
        timer.tick(refresh_status, None, [status, cards, timer], queue=False, api_visibility="private")
        demo.load(refresh_status, None, [status, cards, timer], queue=False, api_visibility="private")

        def compare(
            prompt: str,
            max_new_tokens: int = defaults.max_new_tokens,
            temperature: float = defaults.temperature,
            top_p: float = defaults.top_p,
            seed: int = defaults.seed,
            repetition_penalty: float = defaults.repetition_penalty,
            base_format: Literal["raw", "prompted"] = "raw",
        ) -> dict:
            """Run a prompt through the base and aligned models; both answers with scores."""
            # Plain HTTP/JS clients may send null for an optional argument: it takes the default.
            settings = sampling_settings(
                defaults, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                repetition_penalty=repetition_penalty, seed=seed,
            )
            mode = base_format if base_format in ("raw", "prompted") else "raw"
            comparator.wait_ready(limits.request_timeout_seconds)
            return comparator.run(prompt, settings, mode).to_json()

        gr.api(compare, api_name="compare", concurrency_limit=limits.concurrency_limit, concurrency_id="compare")

    demo.queue(max_size=limits.max_queue_size, default_concurrency_limit=limits.concurrency_limit)
    return demo


def serve(config_path: str | None = None) -> None:
    """Start the workers, then serve on $GRADIO_SERVER_NAME:$GRADIO_SERVER_PORT (127.0.0.1:7860)."""
    config = load_config(config_path)
    comparator = start_comparator(config)
    demo = build_ui(config, comparator)
    try:
        demo.launch(
            server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
            server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
            css=CSS,
            head=HEAD,
            theme=gr.themes.Soft(),
            footer_links=["api", "gradio"],
        )
    finally:
        comparator.close()
