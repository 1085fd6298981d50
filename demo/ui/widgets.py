"""Gradio components with the page's own rules."""

from __future__ import annotations

import gradio as gr
from gradio.components.number import Number


def typed_slider(*args, **kwargs) -> gr.Slider:
    """Gradio's slider whose typed-in number reaches the handler as typed. Gradio's range check
    would answer 0 typed into the box with an "Error" badge over the page (and a traceback in the
    log); the handler clamps the value instead and says in one sentence what it used.

    The check is replaced on the instance: a subclass of a Gradio component makes Gradio write a
    .pyi stub beside this module at import, which a read-only install cannot take."""
    slider = gr.Slider(*args, **kwargs)

    def preprocess(payload: float) -> float:
        return Number.round_to_precision(payload, slider.precision)

    slider.preprocess = preprocess  # type: ignore[method-assign]
    return slider
