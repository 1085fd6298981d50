"""demo/ui/run_controls.py: the run / stop / wait-for-ready pattern the decoding tabs share, without
a browser."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from demo.ui import run_controls
from demo.ui.context import StopFlags
from demo.ui.run_controls import RunControls, refusal, run_event, session_of, wait_until_ready


class LoadsAfter:
    """A worker that reports "loading" for its first `polls` looks, then "ready"."""

    def __init__(self, polls: int):
        self.polls = polls

    @property
    def state(self) -> str:
        self.polls -= 1
        return "loading" if self.polls >= 0 else "ready"


def test_a_run_says_it_waits_once_a_second_until_every_model_is_ready(monkeypatch):
    slept = []
    monkeypatch.setattr(run_controls.time, "sleep", slept.append)
    rows = list(wait_until_ready([SimpleNamespace(state="ready"), LoadsAfter(2)], lambda: ["loading…"]))
    assert rows == [["loading…"], ["loading…"]]
    assert slept == [run_controls.LOADING_POLL_SECONDS] * 2


def test_ready_models_or_a_stopped_run_do_not_wait(monkeypatch):
    monkeypatch.setattr(run_controls.time, "sleep", lambda _: None)
    assert list(wait_until_ready([SimpleNamespace(state="ready")], lambda: ["loading…"])) == []
    assert list(wait_until_ready([LoadsAfter(5)], lambda: ["loading…"], stopped=lambda: True)) == []


def test_a_session_without_a_hash_is_anonymous():
    assert session_of(SimpleNamespace(session_hash="abc")) == "abc"  # type: ignore[arg-type]
    assert session_of(SimpleNamespace(session_hash=None)) == "anonymous"  # type: ignore[arg-type]


def test_a_refused_prompt_fills_the_message_escaped_and_leaves_the_rest():
    with pytest.warns(UserWarning, match="too long"):  # gr.Warning outside a request
        row = refusal(ValueError("<b>too long</b>"), 2)
    assert row[0] == '<div class="demo-error" role="alert">&lt;b&gt;too long&lt;/b&gt;</div>'
    assert len(row) == 3 and all(value == gr.skip() for value in row[1:])


def test_every_run_shares_the_decoding_queue_and_the_stop_button_stops_this_session_only():
    def run(text):
        yield [text]

    flags = StopFlags()
    with gr.Blocks() as page:
        prompt, button, stop, answer = gr.Textbox(), gr.Button(), gr.Button(), gr.HTML()
        args = run_event(run, [prompt], [answer], 3)
        events = RunControls(prompt, button, stop).wire(args, flags)
    assert len(events) == 2
    runs = [fn for fn in page.fns.values() if fn.fn is run]
    assert len(runs) == 2
    assert {(fn.concurrency_id, fn.concurrency_limit, fn.show_progress) for fn in runs} == {
        (run_controls.DECODING_QUEUE, 3, "minimal")
    }
    stops = [fn for fn in page.fns.values() if fn.fn is not run]
    assert len(stops) == 1 and not stops[0].queue
    mine, theirs = flags.fresh("mine"), flags.fresh("theirs")
    stops[0].fn(SimpleNamespace(session_hash="mine"))
    assert mine.is_set() and not theirs.is_set()
