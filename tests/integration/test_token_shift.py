"""The token-shift view (demo/token_shift.py, ModelRunner.token_shift, Comparator): each aligned
answer token ranked under the model before the alignment step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from demo.compare import Comparator, token_shift_unavailable
from demo.settings import SamplingSettings
from demo.token_shift import TokenShift, Unavailable, ranks_and_top, shift_kind, token_texts

PROMPT = "Explain the moon landing to a six year old in a few sentences."
SETTINGS = SamplingSettings(max_new_tokens=16, temperature=0.7, top_p=0.95, repetition_penalty=1.1, seed=42)
ANSWERS = [
    "The moon landing was when astronauts flew a rocket to the moon.",
    "  leading spaces, and a café ☕ with emoji 🚀 and 漢字.",
    "line one\nline two\n\n- a list item",
]


# --- the pure parts ----------------------------------------------------------------------------


def test_the_three_classes_follow_the_papers_ranks():
    assert [shift_kind(rank) for rank in (1, 2, 3, 4, 50)] == [
        "unshifted",
        "marginal",
        "marginal",
        "shifted",
        "shifted",
    ]


def test_ranks_and_top_on_a_known_row_leave_banned_ids_out():
    logits = np.array([[0.0, 3.0, 1.0, 2.0, 9.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    ranks, top_ids, top_p = ranks_and_top(logits, [3, 4], banned=[4], k=3)
    # Row 0 without id 4: 1 (3.0) > 3 (2.0) > 2 (1.0) > 0; target 3 is second. Row 1: id 4 banned, so last.
    assert ranks == [2, 5]
    assert top_ids.tolist() == [[1, 3, 2], [0, 1, 2]]
    expected = np.exp([3.0, 2.0, 1.0]) / np.exp([0.0, 3.0, 1.0, 2.0]).sum()
    assert top_p[0] == pytest.approx(expected)
    assert top_p[1].sum() < 1.0 and top_p[1][0] > top_p[1][1] > top_p[1][2]


def test_piece_texts_join_to_the_text_whatever_the_offsets():
    text = " ab  cd"
    # Offsets that skip whitespace, repeat (a character split into bytes) and overrun the text.
    pieces = token_texts(text, [1, 3, 3, 5, 99])
    assert "".join(pieces) == text
    assert pieces == [" ab", "", "  ", "cd", ""]
    # A lead added for the pass only is dropped from the pieces.
    assert "".join(token_texts(" " + "hello world", [0, 6], skip=1)) == "hello world"


def test_the_control_takes_the_rank_of_the_own_token_covering_each_start():
    from demo.token_shift import ShiftedToken

    before = TokenShift(tuple(ShiftedToken(t, r, ()) for t, r in [("Su", 5), ("re", 1), ("!", 9)]), "base", 0.1)
    own = TokenShift((ShiftedToken("Sure", 2, ()), ShiftedToken("!", 7, ())), "aligned", 0.2)
    view = before.with_self(own)
    assert view.self_ranks == (2, 2, 7) and view.self_model == "aligned" and view.seconds == 0.2
    assert view.self_share("shifted") == pytest.approx(1 / 3) and view.shifted_share == pytest.approx(2 / 3)
    data = view.to_json()
    assert data["self_shifted_share"] == pytest.approx(0.3333) and data["self_model"] == "aligned"
    assert "aligned itself ranks 33% of its own tokens outside its top 3" in view.summary()


def test_the_view_shows_model_text_as_text_never_markup():
    from demo.token_shift import ShiftedToken
    from demo.ui.shift_view import token_shift_html

    payload = '"><img src=x onerror=alert(1)>'
    view = TokenShift((ShiftedToken(payload, 7, ((payload, 0.5), ("<b>", 0.1), ("\n", 0.1))),), "<i>base</i>", 0.01)
    markup = token_shift_html(view)
    assert "<img" not in markup and "<i>" not in markup
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in markup and 'class="ts ts-shifted"' in markup
    assert "&lt;b&gt;" in markup and "&lt;i&gt;base&lt;/i&gt;" in markup
    unavailable = token_shift_html(Unavailable("<script>x</script>"))
    assert "<script>" not in unavailable and "&lt;script&gt;" in unavailable


def test_shares_count_the_tokens_by_class():
    from demo.token_shift import ShiftedToken

    tokens = tuple(ShiftedToken(t, r, ()) for t, r in [("a", 1), ("b", 2), ("c", 7), ("d", 1)])
    view = TokenShift(tokens, "before", 0.01)
    assert (view.shifted_share, view.marginal_share, view.text) == (0.25, 0.25, "abcd")
    data = view.to_json()
    assert set(data) == {"tokens", "shifted_share", "marginal_share", "before_model", "seconds"}
    assert data["tokens"][2] == {"text": "c", "rank": 7, "top": []}


# --- one model ranking another's answer --------------------------------------------------------


def direct_pass(runner, checkpoint, prompt: str, answer: str, base_mode: str = "raw") -> tuple[list[int], list[float]]:
    """The ranks, and the first choice's probability, from a plain transformers forward pass over
    prompt + answer, computed here."""
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), torch_dtype=torch.float32).eval()
    prompt_ids = runner.encode(runner.format(prompt, base_mode))
    lead = runner.lead(answer)
    answer_ids = runner.tokenizer(lead + answer, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + answer_ids])).logits[0].float()
    logits[:, list(runner.suppress_ids)] = -torch.inf
    ranks, first = [], []
    for position, token in enumerate(answer_ids):
        row = logits[len(prompt_ids) - 1 + position]
        ranks.append(int((row > row[token]).sum()) + 1)
        first.append(float(torch.softmax(row, dim=-1).max()))
    if lead and runner.tokenizer.decode(answer_ids[:1]).strip() == "":  # the lead alone: not the answer's
        return ranks[1:], first[1:]
    return ranks, first


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("model", ["gemma", "llama"])
def test_ranks_equal_a_direct_forward_pass_and_texts_join_to_the_answer(
    model, answer, gemma_runner, llama_runner, tiny_gemma_dir, tiny_llama_dir
):
    runner, checkpoint = (gemma_runner, tiny_gemma_dir) if model == "gemma" else (llama_runner, tiny_llama_dir)
    view = runner.token_shift(PROMPT, answer, "raw")
    assert isinstance(view, TokenShift)
    assert view.text == answer
    ranks, first = direct_pass(runner, checkpoint, PROMPT, answer)
    assert [token.rank for token in view.tokens] == ranks
    assert [token.top[0][1] for token in view.tokens] == pytest.approx(first, abs=1e-5)
    assert view.before_model == runner.spec.name
    for token in view.tokens:
        assert len(token.top) == 3 and token.top[0][1] >= token.top[1][1] >= token.top[2][1] >= 0.0


def test_the_prompted_base_format_changes_the_ranks(gemma_runner, tiny_gemma_dir):
    raw = gemma_runner.token_shift(PROMPT, ANSWERS[0], "raw")
    prompted = gemma_runner.token_shift(PROMPT, ANSWERS[0], "prompted")
    assert [t.rank for t in prompted.tokens] == direct_pass(
        gemma_runner, tiny_gemma_dir, PROMPT, ANSWERS[0], "prompted"
    )[0]
    assert [t.rank for t in raw.tokens] != [t.rank for t in prompted.tokens]


# --- in a comparison ---------------------------------------------------------------------------


def test_a_pair_of_two_families_says_why_there_is_no_view(tiny_config, tiny_workers):  # noqa: F811
    pair = tiny_config.default_pair
    why = token_shift_unavailable(tiny_config, pair.base, pair.aligned)
    assert why and "families" in why and "tokenizers" in why
    workers = {getattr(pair, role): worker for role, worker in tiny_workers.items()}
    comparison = Comparator(tiny_config, workers, None, "off").run(PROMPT, SETTINGS, token_shift=True)
    data = comparison.to_json()
    assert data["aligned"]["token_shift"] == {"unavailable": why}
    assert "token_shift" not in data["base"]
    # Without the flag the JSON has no such key (the contract other tools read is unchanged).
    assert "token_shift" not in Comparator(tiny_config, workers, None, "off").run(PROMPT, SETTINGS).to_json()["aligned"]


def test_stages_rank_each_stage_under_the_one_before(tiny_stages_config, stage_workers, llama_runner, tiny_llama_dir):  # noqa: F811
    comparator = Comparator(tiny_stages_config, stage_workers, None, "scores off in this test")
    last = None
    for last in comparator.stream_stages(PROMPT, SETTINGS, token_shift=True):
        pass
    base, sft, aligned = last.sides
    assert base.token_shift is None
    # The tiny stages go Gemma base -> Llama SFT (two families) -> Llama aligned (one family).
    assert isinstance(sft.token_shift, Unavailable) and "families" in sft.token_shift.reason
    view = aligned.token_shift
    assert isinstance(view, TokenShift), view
    assert view.text == aligned.text
    assert view.before_model == sft.model
    assert 0.0 <= view.shifted_share + view.marginal_share <= 1.0
    # The tiny SFT stage is the tiny chat checkpoint: the aligned answer ranked as a direct pass
    # of that checkpoint, after the prompt in its chat format, ranks it.
    assert [t.rank for t in view.tokens] == direct_pass(llama_runner, tiny_llama_dir, PROMPT, aligned.text)[0]
    # The control: the answer under the model that wrote it, the same checkpoint here.
    assert view.self_ranks == tuple(t.rank for t in view.tokens) and view.self_model == aligned.model


def test_a_stopped_answer_is_not_ranked(tiny_stages_config, stage_workers):  # noqa: F811
    comparator = Comparator(tiny_stages_config, stage_workers, None, "off")
    last = None
    for last in comparator.stream_stages(PROMPT, SETTINGS, should_stop=lambda: True, token_shift=True):
        pass
    aligned = last.sides[2]
    assert aligned.stop_reason == "cancelled"
    assert isinstance(aligned.token_shift, Unavailable) and "no complete answer" in aligned.token_shift.reason


def test_a_ranking_that_fails_leaves_the_answer_and_says_why(tiny_stages_config, stage_workers):  # noqa: F811
    class Failing:
        def __init__(self, inner):
            self.inner = inner

        def stream(self, request, should_stop=lambda: False):
            yield from self.inner.stream(request, should_stop)

        def call(self, method, *args):
            raise RuntimeError("the worker died")

    workers = dict(stage_workers)
    sft = tiny_stages_config.stages.models[1]
    workers[sft] = Failing(stage_workers[sft])
    last = None
    for last in Comparator(tiny_stages_config, workers, None, "off").stream_stages(PROMPT, SETTINGS, token_shift=True):
        pass
    aligned = last.sides[2]
    assert aligned.text and aligned.error is None
    # A failure's own text stays in the server log; the page gets a plain sentence.
    assert isinstance(aligned.token_shift, Unavailable) and "ranking the answer" in aligned.token_shift.reason
