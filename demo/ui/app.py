"""The Gradio page: a header with the loading status, then one tab per module in `TABS`.

A new tab is a module under demo/ui/tabs/ with `TITLE` and `build(context)`, and one line in
`TABS`; a tab that only some configs offer also has `shown(config)`. Each `build` lays the
components out (returned in a frozen dataclass), then wires their events; a tab that decodes
takes its Run / Stop / wait-until-ready handling from run_controls.py. The logic lives outside
the UI (compare.py, session.py, views.py), so tests need no browser.
"""

from __future__ import annotations

import os
import sys
import threading

import gradio as gr

from ..cache import storage_is_persistent
from ..compare import Comparator, start_comparator
from ..config import AppConfig, load_config
from ..prepare import follow_loading
from . import shift_view, views
from .context import UIContext
from .tabs import arena, compare, evaluate, leaderboard, stages

# The page's tabs, in order.
TABS = [compare, stages, evaluate, arena, leaderboard]

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
.demo-side > .demo-input { margin-top: auto !important; flex-grow: 0 !important; }
.demo-phone-only { display: none; }
/* A phone (390 px): the pair selector takes the whole row so its label can be read, the four
   buttons keep to one line, and charts scroll inside their box instead of being clipped. */
@media (max-width: 480px) {
  #pair { min-width: 100% !important; flex-basis: 100% !important; }
  .demo-phone-only { display: block; }
  #run-btn, #stop-btn, #regen-btn, #clear-btn { font-size: .78rem; padding-left: .25rem; padding-right: .25rem; white-space: nowrap; min-width: fit-content !important; flex: 1 1 auto !important; }
  .js-plotly-plot, .vega-embed { max-width: 100%; overflow-x: auto; }
  .vega-embed details { display: none; }  /* the chart menu would sit on the title */
}
/* Every tab in sight on a phone: Gradio moves the tabs that do not fit on one line into a "⋯"
   menu, measuring them in a hidden copy of the tab bar; measured tiny, they all stay in the bar,
   which wraps onto a second line instead. */
@media (max-width: 640px) {
  .tab-wrapper .tab-container.visually-hidden button { font-size: 1px !important; padding: 0 !important; min-width: 0 !important; }
  .tab-wrapper [role="tablist"].tab-container { flex-wrap: wrap; height: auto; row-gap: .25rem; }
  .tab-wrapper { height: auto !important; padding-bottom: .25rem; }
  .tab-wrapper .overflow-menu { display: none; }
}
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


def build_ui(config: AppConfig, comparator: Comparator) -> gr.Blocks:
    context = UIContext(config, comparator)
    limits = config.limits
    with gr.Blocks(title=config.title) as demo:
        context.page = demo
        gr.Markdown(f"# {config.title}\n{config.description}")
        status = gr.HTML(views.loading_status(comparator)[0], elem_id="status")
        note = views.storage_note(storage_is_persistent())
        if note:
            gr.HTML(note, elem_id="storage-note")
        tabs = shown_tabs(config)
        if len(tabs) == 1:
            tabs[0].build(context)
        else:
            with gr.Tabs():
                for tab in tabs:
                    with gr.Tab(tab.TITLE, elem_id=f"tab-{tab.TITLE.lower().replace(' ', '-')}"):
                        tab.build(context)

        def refresh_status():
            text, settled = views.loading_status(comparator)
            return text, gr.Timer(active=not settled)

        timer = gr.Timer(1.0)
        timer.tick(refresh_status, None, [status, timer], queue=False, api_visibility="private")
        demo.load(refresh_status, None, [status, timer], queue=False, api_visibility="private")

    demo.queue(max_size=limits.max_queue_size, default_concurrency_limit=limits.concurrency_limit)
    accept_short_api_calls(demo, {"compare"})
    return demo


def shown_tabs(config: AppConfig) -> list:
    """The tabs of `TABS` this config offers: all, except those whose `shown(config)` says no."""
    return [tab for tab in TABS if not hasattr(tab, "shown") or tab.shown(config)]


def accept_short_api_calls(demo: gr.Blocks, api_names: set[str]) -> None:
    """Let plain-HTTP clients omit trailing optional arguments of these endpoints (they take
    their defaults, as null does). gradio 6 otherwise refuses a short `data` list before the
    function runs, with `{"error": null}` and a traceback in the log — so adding an optional
    argument (`pair`) would have broken every client that sends the earlier, shorter list."""
    validate = demo.validate_inputs

    def padded(block_fn, inputs):
        if getattr(block_fn, "api_name", None) in api_names and len(inputs) < len(block_fn.inputs):
            inputs.extend([None] * (len(block_fn.inputs) - len(inputs)))  # in place: the caller reads it
        return validate(block_fn, inputs)

    demo.validate_inputs = padded  # type: ignore[method-assign]


def launch_options() -> dict:
    """What every launch of the page passes (the app, and the tests' server): its look, and the
    one folder outside gradio's own temp folder whose files the page may serve (the evaluation
    downloads it writes into the cache, wherever the cache lives)."""
    # uvicorn rewrites the client address from X-Forwarded-For for requests from 127.0.0.1 by
    # default; models.yaml's `arena.trusted_proxies` is the one place that says whose forwarded
    # address is believed (demo/arena/limits.py), so uvicorn believes none unless told so.
    os.environ.setdefault("FORWARDED_ALLOW_IPS", "")
    return {
        "css": CSS + shift_view.CSS,
        "head": HEAD,
        "theme": gr.themes.Soft(),
        "footer_links": ["api", "gradio"],
        "allowed_paths": [str(evaluate.download_folder())],
    }


def serve(config_path: str | None = None) -> None:
    """Start the workers, then serve on $GRADIO_SERVER_NAME:$GRADIO_SERVER_PORT (127.0.0.1:7860)."""
    config = load_config(config_path)
    comparator = start_comparator(config, background_scorer=True)
    # The terminal follows the first start as the page does (which model is building what).
    threading.Thread(
        target=follow_loading, args=(comparator, lambda line: print(line, file=sys.stderr, flush=True)), daemon=True
    ).start()
    demo = build_ui(config, comparator)
    try:
        demo.launch(
            server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
            server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
            **launch_options(),
        )
    finally:
        comparator.close()
