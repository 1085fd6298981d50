"""Batched generation and batched likelihoods (`ModelRunner.generate_batch`, `answer_logprobs`)
against the one-at-a-time path, on the tiny models: at temperature 0 a batch must give each
prompt exactly the answer it gets alone, with the same stop rules."""

from __future__ import annotations

import dataclasses

import pytest

from demo.generation.runner import Finished, GenerationRequest, _batch_groups
from demo.settings import SamplingSettings

GREEDY = SamplingSettings(max_new_tokens=24, temperature=0.0, repetition_penalty=1.1)
PROMPTS = [
    "Why is the sky blue?",
    "Name three primary colours.",
    "Write a short poem about the sea and the garden behind the library.",
    "Hello",
    "What is the capital of France? Explain in a few sentences.",
]


def _single(runner, request) -> Finished:
    return [e for e in runner.stream(request) if isinstance(e, Finished)][0]


@pytest.mark.parametrize("model, base_mode", [("llama", "raw"), ("gemma", "raw"), ("gemma", "prompted")])
def test_batched_greedy_answers_equal_unbatched(model, base_mode, llama_runner, gemma_runner):
    runner = llama_runner if model == "llama" else gemma_runner
    requests = [GenerationRequest(p, GREEDY, base_mode) for p in PROMPTS]
    batched = runner.generate_batch(requests)
    for request, answer in zip(requests, batched):
        alone = _single(runner, request)
        assert isinstance(answer, Finished)
        assert (answer.text, answer.new_tokens, answer.stop_reason) == (alone.text, alone.new_tokens, alone.stop_reason)


def test_stop_rules_apply_per_prompt_in_a_batch(gemma_runner):
    # The few-shot format adds stop sequences; the budget ends the others.
    requests = [GenerationRequest(p, dataclasses.replace(GREEDY, max_new_tokens=40), "prompted") for p in PROMPTS]
    reasons = {a.stop_reason for a in gemma_runner.generate_batch(requests)}
    assert reasons <= {"eos", "stop_sequence", "max_new_tokens"}
    assert all("\nInstruction:" not in a.text for a in gemma_runner.generate_batch(requests))


def test_a_prompt_over_the_limit_fails_alone(llama_runner):
    requests = [GenerationRequest("word " * 300, GREEDY, max_prompt_tokens=50), GenerationRequest("Hello", GREEDY)]
    too_long, fine = llama_runner.generate_batch(requests)
    assert "limit is 50 tokens" in too_long.message
    assert isinstance(fine, Finished)


def test_each_request_keeps_its_own_settings(llama_runner):
    short = dataclasses.replace(GREEDY, max_new_tokens=3)
    requests = [GenerationRequest("a b c", GREEDY), GenerationRequest("a b c", short), GenerationRequest("x", GREEDY)]
    answers = llama_runner.generate_batch(requests)
    for request, answer in zip(requests, answers):
        alone = _single(llama_runner, request)
        assert (answer.text, answer.new_tokens) == (alone.text, alone.new_tokens)
    assert answers[1].new_tokens <= 3


def test_sampled_batches_are_reproducible(llama_runner):
    sampled = dataclasses.replace(GREEDY, temperature=1.0, top_p=0.95, seed=3)
    requests = [GenerationRequest(p, sampled) for p in PROMPTS[:3]]
    first = [a.text for a in llama_runner.generate_batch(requests)]
    assert first == [a.text for a in llama_runner.generate_batch(requests)]


@pytest.mark.parametrize("model, base_mode", [("llama", "raw"), ("gemma", "raw"), ("gemma", "prompted")])
def test_batched_logprobs_equal_one_at_a_time(model, base_mode, llama_runner, gemma_runner):
    runner = llama_runner if model == "llama" else gemma_runner
    answers = ["No, that is a myth.", "Yes.", "The capital of France is Paris, a city of gardens."]
    batched = runner.answer_logprobs("Is it true that humans only use ten percent of their brains?", answers, base_mode)
    backend = runner.backend
    prompt_ids = runner.encode(runner.format("Is it true that humans only use ten percent of their brains?", base_mode))
    lead = "" if runner.spec.prompt_format == "chat" else " "
    for answer, (total, count) in zip(answers, batched):
        ids = list(runner.tokenizer(lead + answer, add_special_tokens=False)["input_ids"])
        alone = backend.continuation_logprobs(prompt_ids, ids)
        assert count == len(ids)
        assert total == pytest.approx(sum(alone), abs=1e-4)


def test_lockstep_groups_share_settings_and_keep_every_request():
    settings = [GREEDY, dataclasses.replace(GREEDY, max_new_tokens=3), GREEDY, dataclasses.replace(GREEDY, seed=9)]
    requests = [GenerationRequest("p", s) for s in settings * 3]
    prepared = [(i, None, [0] * (1 + i % 5)) for i in range(len(requests))]
    groups = _batch_groups(prepared, requests)
    for group in groups:
        assert len({dataclasses.replace(requests[i].sampling, seed=0) for i, _, _ in group}) == 1
        assert len(group) <= 8
    assert sorted(i for g in groups for i, _, _ in g) == list(range(len(requests)))
