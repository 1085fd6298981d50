"""demo/generation.py: incremental decoding, stop sequences, and ModelRunner on tiny models."""

from __future__ import annotations

import dataclasses

import pytest

from demo.generation.runner import (
    Failed,
    Finished,
    GenerationRequest,
    IncrementalDecoder,
    ModelRunner,
    PromptTooLong,
    SamplingSettings,
    Started,
    StopSequenceFilter,
    TextDelta,
)

GREEDY = SamplingSettings(max_new_tokens=12, temperature=0.0, top_p=1.0, repetition_penalty=1.1, seed=0)
SAMPLED = SamplingSettings(max_new_tokens=12, temperature=1.0, top_p=0.95, repetition_penalty=1.1, seed=7)


def run(
    runner,
    prompt="Tell me a joke about computers.",
    sampling=GREEDY,
    base_mode="raw",
    should_stop=lambda: False,
    max_prompt_tokens=512,
):
    request = GenerationRequest(
        prompt=prompt, sampling=sampling, base_mode=base_mode, max_prompt_tokens=max_prompt_tokens
    )
    return list(runner.stream(request, should_stop))


def finished(events) -> Finished:
    last = events[-1]
    assert isinstance(last, Finished), events
    return last


class RecordingBackend:
    """Wraps a real back end and remembers the ids it produced and the arguments it got."""

    def __init__(self, inner):
        self.inner = inner
        self.eos_token_ids = getattr(inner, "eos_token_ids", ())
        self.ids: list[int] = []
        self.calls: list[dict] = []

    def generate_ids(self, prompt_ids, sampling, *, eos_ids, suppress_ids):
        self.calls.append(
            {"prompt_ids": list(prompt_ids), "eos_ids": tuple(eos_ids), "suppress_ids": tuple(suppress_ids)}
        )
        for token in self.inner.generate_ids(prompt_ids, sampling, eos_ids=eos_ids, suppress_ids=suppress_ids):
            self.ids.append(token)
            yield token


class ScriptedBackend:
    """A TokenGenerator test double that emits a fixed list of ids (up to max_new_tokens)."""

    eos_token_ids = ()

    def __init__(self, ids):
        self.script = list(ids)
        self.closed = False

    def generate_ids(self, prompt_ids, sampling, *, eos_ids, suppress_ids):
        try:
            for token in self.script[: sampling.max_new_tokens]:
                yield token
                if token in eos_ids:
                    return
        finally:
            self.closed = True


def scripted_runner(runner, text: str, *, then=(), **spec_changes) -> tuple[ModelRunner, ScriptedBackend]:
    ids = runner.tokenizer(text, add_special_tokens=False)["input_ids"] + list(then)
    backend = ScriptedBackend(ids)
    spec = runner.spec.model_copy(update=spec_changes) if spec_changes else runner.spec
    return ModelRunner(spec, runner.tokenizer, backend, runner.prompted), backend


# --- IncrementalDecoder ------------------------------------------------------------------------


class FakeTokenizer:
    """decode() of a prefix of ids returns the scripted text (U+FFFD = incomplete character)."""

    def __init__(self, texts):
        self.texts = texts

    def decode(self, ids, skip_special_tokens=True):
        return self.texts[len(ids) - 1]


def test_incremental_decoder_holds_back_a_partial_character():
    decoder = IncrementalDecoder(FakeTokenizer(["a", "a\ufffd", "a\ufffd\ufffd", "a€", "a€ b"]))
    deltas = [decoder.push(i) for i in range(5)]
    assert deltas == ["a", "", "", "€", " b"]
    assert decoder.text == "a€ b"


def test_incremental_decoder_on_a_byte_level_tokenizer(llama_runner):
    tokenizer = llama_runner.tokenizer
    text = "Great job 👍🏽 — café 日本 done"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text.split())  # emoji and CJK span several byte tokens
    decoder = IncrementalDecoder(tokenizer)
    deltas = [decoder.push(i) for i in ids]
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) == text == decoder.text
    assert "" in deltas  # some pushes were held back


def test_incremental_decoder_skips_special_tokens(llama_runner):
    tokenizer = llama_runner.tokenizer
    ids = tokenizer("Hi<|im_end|> there", add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(tokenizer)
    assert "".join(decoder.push(i) for i in ids) == "Hi there"


# --- StopSequenceFilter ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stops, deltas, emitted, flushed, stopped",
    [
        pytest.param(("\nInstruction:",), ["Hello", " world"], ["Hello", " world"], "", False, id="no-stop"),
        pytest.param(
            ("\nInstruction:",),
            ["Hello", " world\nIns", "truction: next"],
            ["Hello", " world", ""],
            "",
            True,
            id="cut-across-deltas",
        ),
        pytest.param(
            ("\nInstruction:",),
            ["\n", "Instr", "uction:", "more"],
            ["", "", "", ""],
            "",
            True,
            id="stop-split-in-three",
        ),
        pytest.param(
            ("\nInstruction:",), ["abc\nIn", "deed"], ["abc", "\nIndeed"], "", False, id="held-prefix-released"
        ),
        pytest.param(("\nInstruction:",), ["abc\nInst"], ["abc"], "\nInst", False, id="held-prefix-flushed"),
        pytest.param(("\n\n\n",), ["a\n\n", "b"], ["a", "\n\nb"], "", False, id="newlines-released"),
        pytest.param(("\n\n\n",), ["a\n\n", "\nb"], ["a", ""], "", True, id="newlines-stop"),
        pytest.param(("B", "A"), ["xxAyyB"], ["xx"], "", True, id="earliest-stop-wins"),
        pytest.param(("\nUser:",), ["\nUser:"], [""], "", True, id="stop-at-start"),
        pytest.param((), ["any\nInstruction: text"], ["any\nInstruction: text"], "", False, id="no-stops-pass-through"),
        pytest.param(("END",), ["E", "N", "X"], ["", "", "ENX"], "", False, id="false-alarm"),
        pytest.param(("END",), ["xEND", "after"], ["x", ""], "", True, id="nothing-after-stop"),
    ],
)
def test_stop_sequence_filter_table(stops, deltas, emitted, flushed, stopped):
    stop_filter = StopSequenceFilter(stops)
    assert [stop_filter.feed(d) for d in deltas] == emitted
    assert stop_filter.flush() == flushed
    assert stop_filter.stopped is stopped


# --- ModelRunner on the tiny models ------------------------------------------------------------


def test_events_are_started_deltas_finished(llama_runner):
    events = run(llama_runner, sampling=SAMPLED)
    assert isinstance(events[0], Started)
    assert all(isinstance(e, TextDelta) for e in events[1:-1])
    done = finished(events)
    assert not any(isinstance(e, Failed) for e in events)
    formatted = llama_runner.format("Tell me a joke about computers.", "raw")
    assert events[0].input_text == formatted.text
    assert events[0].prompt_tokens == len(llama_runner.encode(formatted))
    streamed = "".join(e.text for e in events[1:-1])
    assert streamed.strip() == done.text
    counts = [e.new_tokens for e in events[1:-1]]
    assert counts == sorted(counts)
    assert 1 <= done.new_tokens <= SAMPLED.max_new_tokens
    assert done.seconds > 0 and done.first_token_seconds is not None
    assert done.first_token_seconds <= done.seconds


def test_same_seed_same_text(llama_runner, gemma_runner):
    for runner in (llama_runner, gemma_runner):
        first, second = finished(run(runner, sampling=SAMPLED)), finished(run(runner, sampling=SAMPLED))
        assert first.text == second.text
        assert first.new_tokens == second.new_tokens


def test_different_seeds_give_different_samples(llama_runner):
    texts = {finished(run(llama_runner, sampling=dataclasses.replace(SAMPLED, seed=seed))).text for seed in range(4)}
    assert len(texts) > 1


def test_greedy_is_deterministic_and_ignores_the_seed(llama_runner):
    texts = {finished(run(llama_runner, sampling=dataclasses.replace(GREEDY, seed=seed))).text for seed in (0, 1, 99)}
    assert len(texts) == 1


@pytest.mark.parametrize("limit", [1, 5])
def test_max_new_tokens_is_respected(llama_runner, gemma_runner, limit):
    for runner in (llama_runner, gemma_runner):
        sampling = dataclasses.replace(SAMPLED, max_new_tokens=limit)
        recording = RecordingBackend(runner.backend)
        probe = ModelRunner(runner.spec, runner.tokenizer, recording, runner.prompted)
        done = finished(run(probe, sampling=sampling))
        assert len(recording.ids) <= limit
        assert done.new_tokens == len(recording.ids)
        if done.stop_reason == "max_new_tokens":
            assert done.new_tokens == limit
        else:
            assert done.stop_reason == "eos" and recording.ids[-1] in recording.calls[0]["eos_ids"]


def test_suppressed_tokens_are_never_emitted(llama_runner):
    sampling = dataclasses.replace(GREEDY, max_new_tokens=8)
    first = RecordingBackend(llama_runner.backend)
    finished(
        run(ModelRunner(llama_runner.spec, llama_runner.tokenizer, first, llama_runner.prompted), sampling=sampling)
    )
    assert first.ids
    banned = tuple(llama_runner.tokenizer.convert_ids_to_tokens(sorted(set(first.ids))))

    spec = llama_runner.spec.model_copy(update={"suppress_tokens": banned})
    second = RecordingBackend(llama_runner.backend)
    finished(run(ModelRunner(spec, llama_runner.tokenizer, second, llama_runner.prompted), sampling=sampling))
    assert second.ids
    assert not set(second.ids) & set(first.ids)
    assert set(second.calls[0]["suppress_ids"]) == set(first.ids)


def test_configured_image_tokens_are_passed_as_suppressed(gemma_runner):
    recording = RecordingBackend(gemma_runner.backend)
    probe = ModelRunner(gemma_runner.spec, gemma_runner.tokenizer, recording, gemma_runner.prompted)
    finished(run(probe, sampling=dataclasses.replace(SAMPLED, max_new_tokens=3)))
    vocab = gemma_runner.tokenizer.get_vocab()
    expected = {vocab[t] for t in gemma_runner.spec.suppress_tokens}
    assert vocab["<start_of_image>"] in expected
    assert set(recording.calls[0]["suppress_ids"]) == expected


def test_should_stop_cancels(llama_runner):
    done = finished(
        run(llama_runner, sampling=dataclasses.replace(SAMPLED, max_new_tokens=50), should_stop=lambda: True)
    )
    assert done.stop_reason == "cancelled"
    assert done.new_tokens == 1


def test_prompt_over_the_token_limit_is_refused(llama_runner):
    request = GenerationRequest(prompt="word " * 40, sampling=GREEDY, max_prompt_tokens=20)
    stream = llama_runner.stream(request)
    with pytest.raises(PromptTooLong) as info:
        next(stream)
    assert "20 tokens" in str(info.value)
    assert llama_runner.spec.name in str(info.value)


@pytest.mark.parametrize("mode", ["raw", "prompted"])
def test_gemma_generates_past_its_sliding_window(gemma_runner, mode):
    """Prompted input is far longer than the 16-token window; the KV-cache loop must still
    match transformers' own greedy generate token for token."""
    import torch

    sampling = SamplingSettings(max_new_tokens=24, temperature=0.0, top_p=1.0, repetition_penalty=1.0, seed=0)
    formatted = gemma_runner.format("Write a short poem about the sea.", mode)
    prompt_ids = gemma_runner.encode(formatted)
    ours = list(gemma_runner.backend.generate_ids(prompt_ids, sampling, eos_ids=(), suppress_ids=()))
    model = gemma_runner.backend.model
    with torch.inference_mode():
        reference = model.generate(
            torch.tensor([prompt_ids], device=model.device),
            max_new_tokens=24,
            min_new_tokens=24,
            do_sample=False,
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long, device=model.device),
            pad_token_id=0,
        )[0, len(prompt_ids) :].tolist()
    assert ours == reference


def test_llama_cached_loop_matches_transformers_generate(llama_runner):
    import torch

    sampling = SamplingSettings(max_new_tokens=20, temperature=0.0, top_p=1.0, repetition_penalty=1.0, seed=0)
    prompt_ids = llama_runner.encode(llama_runner.format("Hello there", "raw"))
    ours = list(llama_runner.backend.generate_ids(prompt_ids, sampling, eos_ids=(), suppress_ids=()))
    model = llama_runner.backend.model
    with torch.inference_mode():
        reference = model.generate(
            torch.tensor([prompt_ids], device=model.device),
            max_new_tokens=20,
            min_new_tokens=20,
            do_sample=False,
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long, device=model.device),
        )[0, len(prompt_ids) :].tolist()
    assert ours == reference


# --- ModelRunner with a scripted back end ------------------------------------------------------


def test_stop_sequence_cuts_the_answer(gemma_runner):
    runner, backend = scripted_runner(gemma_runner, "Blue.\nInstruction: Name a fruit.\nAnswer: apple")
    events = run(
        runner, prompt="Name a colour.", base_mode="prompted", sampling=dataclasses.replace(GREEDY, max_new_tokens=100)
    )
    done = finished(events)
    assert done.text == "Blue."
    assert done.stop_reason == "stop_sequence"
    streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "Instr" not in streamed and streamed.strip() == "Blue."
    assert backend.closed


def test_raw_mode_has_no_few_shot_stops(gemma_runner):
    runner, _ = scripted_runner(gemma_runner, "Blue.\nInstruction: more")
    done = finished(run(runner, base_mode="raw", sampling=dataclasses.replace(GREEDY, max_new_tokens=100)))
    assert done.text == "Blue.\nInstruction: more"
    assert done.stop_reason == "max_new_tokens" or done.stop_reason == "eos"


def test_eos_ends_the_answer(llama_runner):
    eos = llama_runner.tokenizer.eos_token_id
    runner, _ = scripted_runner(
        llama_runner, "Hi there!", then=[eos, *llama_runner.tokenizer("never shown")["input_ids"]]
    )
    done = finished(run(runner, sampling=dataclasses.replace(GREEDY, max_new_tokens=100)))
    assert done.text == "Hi there!"
    assert done.stop_reason == "eos"


def test_ignore_eos_decodes_the_full_budget(llama_runner):
    eos = llama_runner.tokenizer.eos_token_id
    runner, backend = scripted_runner(llama_runner, "Hi", then=[eos] * 10)
    budget = len(backend.script) - 2
    done = finished(run(runner, sampling=dataclasses.replace(GREEDY, max_new_tokens=budget, ignore_eos=True)))
    assert done.new_tokens == budget
    assert done.stop_reason == "max_new_tokens"
    assert done.text == "Hi"


def test_multibyte_characters_stream_whole(llama_runner):
    runner, _ = scripted_runner(llama_runner, "Sea 🌊 and 日本 👨\u200d👩\u200d👧 done")
    events = run(runner, sampling=dataclasses.replace(GREEDY, max_new_tokens=200))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) == "Sea 🌊 and 日本 👨\u200d👩\u200d👧 done" == finished(events).text


def test_closing_the_stream_closes_the_backend(llama_runner):
    runner, backend = scripted_runner(llama_runner, "one two three four five six seven eight")
    stream = runner.stream(GenerationRequest(prompt="x", sampling=dataclasses.replace(GREEDY, max_new_tokens=100)))
    assert isinstance(next(stream), Started)
    assert isinstance(next(stream), TextDelta)
    stream.close()
    assert backend.closed
