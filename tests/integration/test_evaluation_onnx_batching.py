"""The continuous-batching decoder (demo/generation/backends/onnx_batch.py) on the tiny ONNX
builds of test_onnx_genai_backend.py: prompts of different lengths decoded together give the
one-at-a-time answers of onnxruntime-genai, an answer does not depend on the batch it ran in,
finished rows are refilled, and teacher forcing gives the one-at-a-time log-probabilities."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("onnxruntime_genai")
pytest.importorskip("onnx_ir")

import test_onnx_genai_backend as onnx_tests  # noqa: E402

# The tiny ONNX build's fixtures, shared with test_onnx_genai_backend.py.
cache, llama, llama_fp32 = onnx_tests.cache, onnx_tests.llama, onnx_tests.llama_fp32
_tokenizer = onnx_tests._tokenizer

from demo.generation.backends.onnx_batch import BatchDecoder  # noqa: E402
from demo.settings import SamplingSettings  # noqa: E402

GREEDY = SamplingSettings(max_new_tokens=12, temperature=0.0, repetition_penalty=1.1)
SAMPLED = SamplingSettings(max_new_tokens=12, temperature=1.0, top_p=0.9, repetition_penalty=1.1, seed=5)
PROMPTS = [
    "the sky is blue because light",
    "a cat",
    "when clouds move over green hills and the rain falls on warm days",
    "rain",
    "blue light scatters in air because",
]


def _ids(text):
    return _tokenizer()(text)["input_ids"]


def _decode(decoder, prompts, sampling, budget=None, suppress=()):
    rows: list[list[int]] = [[] for _ in prompts]
    limits = budget or [sampling.max_new_tokens] * len(prompts)

    def on_token(job, token):
        rows[job].append(token)
        return len(rows[job]) >= limits[job]

    samplings = [dataclasses.replace(sampling, seed=sampling.seed + i) for i in range(len(prompts))]
    decoder.decode(prompts, samplings, suppress_ids=suppress, on_token=on_token)
    return rows


def test_prompts_of_different_lengths_decode_as_they_do_alone(llama_fp32):
    prompts = [_ids(p) for p in PROMPTS]
    assert len({len(p) for p in prompts}) > 2
    batched = _decode(llama_fp32.batch_decoder(), prompts, GREEDY, suppress=(5,))
    for prompt, row in zip(prompts, batched):
        alone = list(llama_fp32.generate_ids(prompt, GREEDY, eos_ids=(), suppress_ids=(5,)))
        assert row == alone
        assert 5 not in row


def test_an_answer_does_not_depend_on_its_batch(llama):
    from demo.generation.backends.onnx_genai_backend import build_onnx_model

    folder = build_onnx_model(llama, "int4")
    prompts = [_ids(p) for p in PROMPTS]
    for sampling in (GREEDY, SAMPLED):
        wide = _decode(BatchDecoder(folder, threads=1, max_batch=8), prompts, sampling)
        narrow = _decode(BatchDecoder(folder, threads=1, max_batch=2), prompts, sampling)
        alone = [
            _decode(BatchDecoder(folder, threads=1), [p], dataclasses.replace(sampling, seed=sampling.seed + i))[0]
            for i, p in enumerate(prompts)
        ]
        assert wide == narrow == alone


def test_finished_rows_are_refilled_until_every_prompt_is_answered(llama_fp32):
    decoder = BatchDecoder(llama_fp32.model_dir, threads=1, max_batch=2)
    prompts = [_ids(p) for p in PROMPTS]
    budget = [1, 7, 3, 12, 2]
    rows = _decode(decoder, prompts, GREEDY, budget=budget)
    assert [len(r) for r in rows] == budget
    for prompt, row in zip(prompts, rows):
        assert row == list(llama_fp32.generate_ids(prompt, GREEDY, eos_ids=(), suppress_ids=()))[: len(row)]


def test_sampled_answers_follow_their_seed(llama_fp32):
    decoder = llama_fp32.batch_decoder()
    prompts = [_ids(PROMPTS[0])] * 3
    first = _decode(decoder, prompts, SAMPLED)
    assert first == _decode(decoder, prompts, SAMPLED)
    assert len({tuple(r) for r in first}) > 1  # seeds 5, 6, 7: different draws of one prompt


def test_a_prompt_beyond_capacity_is_refused(llama_fp32):
    decoder = llama_fp32.batch_decoder()
    with pytest.raises(ValueError, match="capacity"):
        _decode(decoder, [_ids("the sky")], dataclasses.replace(GREEDY, max_new_tokens=decoder.capacity))


def test_batched_teacher_forcing_matches_one_at_a_time(llama_fp32):
    prompt = _ids("the sky is blue because")
    continuations = [_ids("light scatters")[1:], _ids("a cat loves rain on warm days")[1:], _ids("air")[1:]]
    batched = llama_fp32.continuation_logprobs_batch(prompt, continuations)
    for continuation, values in zip(continuations, batched):
        assert len(values) == len(continuation)
        assert values == pytest.approx(llama_fp32.continuation_logprobs(prompt, continuation), abs=1e-4)


def test_a_shared_prefix_is_computed_once_and_gives_the_same_answers(llama_fp32):
    preamble = _ids("the sky is blue because light scatters in the air and the sea is blue because")
    prompts = [preamble + _ids(p)[1:] for p in PROMPTS]
    prefix = len(preamble)
    decoder = BatchDecoder(llama_fp32.model_dir, threads=1)
    plain = _decode(decoder, prompts, GREEDY)
    assert not decoder._prefixes
    rows: list[list[int]] = [[] for _ in prompts]

    def on_token(job, token):
        rows[job].append(token)
        return len(rows[job]) >= GREEDY.max_new_tokens

    decoder.decode(prompts, [GREEDY] * len(prompts), suppress_ids=(), on_token=on_token, prefixes=[prefix] * 5)
    assert list(decoder._prefixes) == [tuple(preamble)]  # prefilled once for the five prompts
    assert rows == plain
    continuations = [_ids("light scatters")[1:], _ids("air")[1:]]
    assert decoder.continuation_logprobs(prompts[0], continuations, prefix) == [
        pytest.approx(v, abs=1e-4) for v in decoder.continuation_logprobs(prompts[0], continuations)
    ]
