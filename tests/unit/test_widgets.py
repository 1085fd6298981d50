"""A number typed out of range into a slider's box reaches the handler, which clamps it and says
so, instead of Gradio's "Error" badge over the page."""

from __future__ import annotations

import gradio as gr
import pytest

from demo.ui.tabs.evaluate import MAX_SAMPLES, plan_request, samples_note
from demo.ui.widgets import typed_slider


def test_gradio_answers_an_out_of_range_number_with_an_error_and_the_typed_slider_passes_it_on():
    with pytest.raises(gr.Error):
        gr.Slider(1, 4, step=1).preprocess(0)
    slider = typed_slider(1, 4, step=1, precision=0)
    assert slider.preprocess(0) == 0 and slider.preprocess(9999) == 9999
    assert slider.get_block_name() == "slider"  # drawn by Gradio's own slider


@pytest.mark.parametrize(("given", "used"), [(0, 1), (9, MAX_SAMPLES), (-3, 1)])
def test_samples_out_of_range_are_clamped_and_the_plan_says_so(given, used):
    plan = plan_request("toxicity", given, 120)
    assert plan.options.samples == used
    assert (
        samples_note(given, plan) == f"Adjusted: samples per prompt {given} is outside 1–{MAX_SAMPLES}: used {used}. "
    )
    assert samples_note(used, plan_request("toxicity", used, 120)) == ""
