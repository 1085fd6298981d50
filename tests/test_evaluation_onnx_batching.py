"""onnxruntime-genai's batched paths on the tiny ONNX builds of test_onnx_genai_backend.py:
each row of an equal-length batch decodes exactly as it does alone, and batched teacher forcing
gives the one-at-a-time log-probabilities."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime_genai")
pytest.importorskip("onnx_ir")

import test_onnx_genai_backend as onnx_tests  # noqa: E402

# The tiny ONNX build's fixtures, shared with test_onnx_genai_backend.py.
cache, llama, llama_fp32 = onnx_tests.cache, onnx_tests.llama, onnx_tests.llama_fp32
_tokenizer = onnx_tests._tokenizer

from demo.settings import SamplingSettings  # noqa: E402

GREEDY = SamplingSettings(max_new_tokens=12, temperature=0.0, repetition_penalty=1.1)
# Same token length (6 words, one <s>), different words: an evaluation's equal-length bucket.
PROMPTS = ["the sky is blue because light", "a cat loves rain on warm", "when clouds move over green hills"]


def _ids(text):
    return _tokenizer()(text)["input_ids"]


def test_equal_length_batch_rows_equal_single_runs(llama_fp32):
    prompts = [_ids(p) for p in PROMPTS]
    assert len({len(p) for p in prompts}) == 1
    rows = [[] for _ in prompts]
    for step in llama_fp32.generate_ids_batch(prompts, GREEDY, eos_ids=(), suppress_ids=(5,)):
        for row, token in zip(rows, step):
            row.append(token)
    for prompt, row in zip(prompts, rows):
        alone = list(llama_fp32.generate_ids(prompt, GREEDY, eos_ids=(), suppress_ids=(5,)))
        assert row == alone
        assert 5 not in row


def test_mixed_lengths_are_refused(llama_fp32):
    with pytest.raises(ValueError, match="one token length"):
        list(
            llama_fp32.generate_ids_batch(
                [_ids("the sky"), _ids("the sky is blue")], GREEDY, eos_ids=(), suppress_ids=()
            )
        )


def test_batched_teacher_forcing_matches_one_at_a_time(llama_fp32):
    prompt = _ids("the sky is blue because")
    continuations = [_ids("light scatters")[1:], _ids("a cat loves rain on warm days")[1:], _ids("air")[1:]]
    batched = llama_fp32.continuation_logprobs_batch(prompt, continuations)
    for continuation, values in zip(continuations, batched):
        assert values == pytest.approx(llama_fp32.continuation_logprobs(prompt, continuation), abs=1e-4)
