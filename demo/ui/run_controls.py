"""The run / stop / wait-for-ready pattern of the tabs that decode (Compare, Three stages, Blind
vote): a Run button and Enter in the prompt start one streamed run in the decoding queue, a Stop
button (where the tab has one) sets the session's stop flag, and a run whose models are still
loading says so, once a second, before it starts.

Wiring only: what a run yields is the tab's; the flags are `StopFlags` (context.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from . import views
from .context import StopFlags

# One concurrency group for every run that decodes (the Compare tab, its `/compare` endpoint,
# the Three stages tab, the blind vote): they decode on the same cores.
DECODING_QUEUE = "compare"
# How often a run waiting for its models says so again.
LOADING_POLL_SECONDS = 1.0


def session_of(request: gr.Request) -> str:
    """The browser session a request came from: its stop flag, its battles."""
    return request.session_hash or "anonymous"


def never() -> bool:
    return False


def wait_until_ready(
    workers: Collection[Any], waiting: Callable[[], list], stopped: Callable[[], bool] = never
) -> Iterator[list]:
    """While one of `workers` is still loading (and the run is not stopped), yield the tab's
    `waiting()` outputs once every LOADING_POLL_SECONDS."""
    while any(worker.state == "loading" for worker in workers) and not stopped():
        yield waiting()
        time.sleep(LOADING_POLL_SECONDS)


def refusal(error: Exception, rest: int) -> list:
    """A prompt or setting refused before the run: a warning, and the sentence in the tab's
    message box (the first output); the `rest` outputs are left as they are."""
    gr.Warning(str(error))
    return [f'<div class="demo-error" role="alert">{views.escape(str(error))}</div>', *[gr.skip()] * rest]


def run_event(fn: Callable, inputs: Any, outputs: list, concurrency_limit: int | None) -> dict[str, Any]:
    """The keyword arguments of a tab's run event (the Run button's, Enter's, and any trigger that
    ends in a run). "minimal" keeps streamed text readable (no overlay) while still showing the
    queue position."""
    return dict(  # gradio's per-keyword types can't be checked through **
        fn=fn,
        inputs=inputs,
        outputs=outputs,
        show_progress="minimal",
        concurrency_limit=concurrency_limit,
        concurrency_id=DECODING_QUEUE,
        api_visibility="private",
    )


@dataclass(frozen=True)
class RunControls:
    """A tab's prompt box, Run button and (where it has one) Stop button."""

    prompt: gr.Textbox
    run: gr.Button
    stop: gr.Button | None = None

    def wire(self, run_args: dict[str, Any], stops: StopFlags) -> list[Any]:
        """The Run button and Enter in the prompt start `run_args`; Stop sets the session's
        stop flag (at once, outside the queue). The run events, for a trigger that cancels them."""
        events = [self.run.click(**run_args), self.prompt.submit(**run_args)]
        if self.stop is not None:

            def stop(request: gr.Request):
                stops.stop(session_of(request))

            self.stop.click(stop, None, None, queue=False, api_visibility="private")
        return events
