"""From a user prompt to a stream of answer text, for one model.

`ModelRunner.stream` is the single path every caller takes (UI, CLI, benchmark, tests): format the
prompt for this model, tokenize it, let the back end produce token ids, decode them incrementally
and stop on end-of-sequence, a stop sequence, or the token budget. Back ends only turn prompt ids
into new token ids (`TokenGenerator`); everything a user could notice lives here, so every back
end behaves the same.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from ..config import ModelSpec, PromptedFormat
from ..errors import UserFacingError
from ..settings import SamplingSettings
from ..token_shift import TokenShift, build_token_shift, ranks_and_top, token_texts
from .formatting import BaseMode, answer_lead, format_prompt, special_token_strings


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    sampling: SamplingSettings
    base_mode: BaseMode = "raw"
    max_prompt_tokens: int = 512


class TokenGenerator(Protocol):
    """A back end: prompt token ids in, new token ids out, one at a time.

    It stops by itself at an end-of-sequence id or after `max_new_tokens`; the caller may stop
    earlier by closing the iterator. It must never emit an id in `suppress_ids`.
    """

    def generate_ids(
        self,
        prompt_ids: Sequence[int],
        sampling: SamplingSettings,
        *,
        eos_ids: Sequence[int],
        suppress_ids: Sequence[int],
    ) -> Iterator[int]: ...


class TextGenerator(Protocol):
    """A back end that streams text, not ids (a served model: `openai`). It gets the exact input
    text and its ids, yields one text piece per generated token, and stops by itself at the
    model's end of sequence, a stop sequence or `max_new_tokens`."""

    streams_text: bool

    def generate_text(
        self,
        prompt_text: str,
        prompt_ids: Sequence[int],
        sampling: SamplingSettings,
        *,
        stop_sequences: Sequence[str],
        suppress_ids: Sequence[int],
    ) -> Iterator[str]: ...


# --- events streamed to callers ----------------------------------------------------------------


StopReason = Literal["eos", "stop_sequence", "max_new_tokens", "cancelled"]


@dataclass(frozen=True)
class Started:
    input_text: str
    prompt_tokens: int


@dataclass(frozen=True)
class TextDelta:
    text: str
    new_tokens: int


@dataclass(frozen=True)
class Finished:
    text: str
    new_tokens: int
    seconds: float
    first_token_seconds: float | None
    stop_reason: StopReason


@dataclass(frozen=True)
class Failed:
    message: str


GenerationEvent = Started | TextDelta | Finished | Failed


class PromptTooLong(UserFacingError, ValueError):
    pass


# --- decoding helpers --------------------------------------------------------------------------


class IncrementalDecoder:
    """Turns a growing list of token ids into text deltas.

    Decodes the whole answer each step and emits what is new, holding back a trailing U+FFFD:
    a multi-byte character (emoji, CJK) split across tokens is emitted only once complete.
    """

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._emitted = ""

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        if not text.startswith(self._emitted):
            # A tokenizer may re-space earlier text once it sees more; keep what was shown.
            return ""
        delta, self._emitted = text[len(self._emitted) :], text
        return delta

    @property
    def text(self) -> str:
        return self._emitted


@dataclass
class StopSequenceFilter:
    """Cuts the answer at the first stop sequence; holds back text that might start one, so a
    half-printed "\\nUser:" never flashes on screen."""

    stops: tuple[str, ...]
    _pending: str = ""
    _kept: list[str] = field(default_factory=list)
    stopped: bool = False

    def feed(self, delta: str) -> str:
        if self.stopped or not self.stops:
            return "" if self.stopped else delta
        window = self._pending + delta
        cut = min((i for i in (window.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._pending = ""
            return window[:cut]
        hold = max((_overlap(window, s) for s in self.stops), default=0)
        emit, self._pending = window[: len(window) - hold], window[len(window) - hold :]
        return emit

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return "" if self.stopped else rest


def _overlap(text: str, stop: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `stop`."""
    for length in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:length]):
            return length
    return 0


# --- the runner --------------------------------------------------------------------------------


class ModelRunner:
    """One loaded model: its spec, tokenizer and back end. Streams `GenerationEvent`s."""

    def __init__(self, spec: ModelSpec, tokenizer, backend: TokenGenerator, prompted: PromptedFormat):
        self.spec = spec
        self.tokenizer = tokenizer
        # A TokenGenerator or TextGenerator; the optional batch and likelihood methods are probed.
        self.backend: Any = backend
        self.prompted = prompted
        self._special_tokens = special_token_strings(tokenizer)
        self._eos_ids = _eos_ids(tokenizer, backend)
        self.suppress_ids = _token_ids(tokenizer, spec.suppress_tokens)  # never generated (models.yaml)
        self._shared_prefixes: dict[str, tuple[int, ...]] = {}

    def format(self, prompt: str, base_mode: BaseMode):
        return format_prompt(
            prompt,
            prompt_format=self.spec.prompt_format,
            base_mode=base_mode,
            tokenizer=self.tokenizer,
            prompted=self.prompted,
            special_tokens=self._special_tokens,
            model_stop_sequences=self.spec.stop_sequences,
        )

    def encode(self, formatted) -> list[int]:
        return list(self.tokenizer(formatted.text, add_special_tokens=formatted.add_special_tokens)["input_ids"])

    def lead(self, answer: str) -> str:
        """What this model reads between a prompt and an answer forced after it (formatting.answer_lead)."""
        return answer_lead(self.spec.prompt_format, answer)

    def shared_prefix(self, base_mode: BaseMode) -> tuple[int, ...]:
        """The ids every prompt of this input format begins with (the few-shot examples, the chat
        template's opening turns): what different probe prompts have in common."""
        if base_mode not in self._shared_prefixes:
            probes = [self.encode(self.format(text, base_mode)) for text in ("a", "Z 1", "? x")]
            self._shared_prefixes[base_mode] = tuple(os.path.commonprefix(probes))
        return self._shared_prefixes[base_mode]

    def prefix_length(self, prompt_ids: Sequence[int], base_mode: BaseMode) -> int:
        """How many of `prompt_ids` are the format's shared prefix (0 unless it is all there)."""
        prefix = self.shared_prefix(base_mode)
        return len(prefix) if len(prefix) < len(prompt_ids) and tuple(prompt_ids[: len(prefix)]) == prefix else 0

    def stream(self, request: GenerationRequest, should_stop=lambda: False) -> Iterator[GenerationEvent]:
        """Generate an answer; `should_stop()` is polled between tokens (the Stop button)."""
        started = time.perf_counter()
        formatted = self.format(request.prompt, request.base_mode)
        prompt_ids = self.encode(formatted)
        if len(prompt_ids) > request.max_prompt_tokens:
            raise PromptTooLong(
                f"the prompt is {len(prompt_ids)} tokens for {self.spec.name}; "
                f"the limit is {request.max_prompt_tokens} tokens"
            )
        yield Started(input_text=formatted.text, prompt_tokens=len(prompt_ids))

        eos_ids = () if request.sampling.ignore_eos else self._eos_ids
        text_pieces = getattr(self.backend, "streams_text", False)
        answer = _Answer(self.tokenizer, formatted, eos_ids, request.sampling.max_new_tokens, text_pieces)
        first_token_at = None
        if text_pieces:
            tokens = self.backend.generate_text(
                formatted.text,
                prompt_ids,
                request.sampling,
                stop_sequences=formatted.stop_sequences,
                suppress_ids=self.suppress_ids,
            )
        else:
            tokens = self.backend.generate_ids(
                prompt_ids, request.sampling, eos_ids=eos_ids, suppress_ids=self.suppress_ids
            )
        try:
            for token_id in tokens:
                if first_token_at is None:
                    first_token_at = time.perf_counter() - started
                delta = answer.push(token_id)
                if delta:
                    yield TextDelta(text=delta, new_tokens=answer.new_tokens)
                if answer.reason is not None:
                    break
                if should_stop():
                    answer.reason = "cancelled"
                    break
        finally:
            tokens.close() if hasattr(tokens, "close") else None
        tail = answer.flush()
        if tail:
            yield TextDelta(text=tail, new_tokens=answer.new_tokens)
        yield answer.finished(time.perf_counter() - started, first_token_at)

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[Finished | Failed]:
        """Answers to several prompts, in order, each ended by the same rules as `stream`
        (end of sequence, stop sequence, token budget), but decoded together where the back end
        can, for evaluations: `decode_batch` (continuous batching, any prompt lengths, each
        answer with its own settings and random stream), or `generate_ids_batch` (padded
        lockstep batches of requests that share their settings but the seed; a batch draws from
        one random stream seeded by its first request). A prompt over the token limit fails
        alone; the others still run.
        """
        results: list[Finished | Failed | None] = [None] * len(requests)
        prepared = []
        for index, request in enumerate(requests):
            formatted = self.format(request.prompt, request.base_mode)
            prompt_ids = self.encode(formatted)
            if len(prompt_ids) > request.max_prompt_tokens:
                results[index] = Failed(
                    f"the prompt is {len(prompt_ids)} tokens for {self.spec.name}; "
                    f"the limit is {request.max_prompt_tokens} tokens"
                )
            else:
                prepared.append((index, formatted, prompt_ids))
        results_of: dict[int, Finished | Failed]
        if getattr(self.backend, "decode_batch", None) is not None:
            results_of = dict(self._decode_continuous(prepared, requests))
        elif getattr(self.backend, "generate_ids_batch", None) is not None:
            results_of = {}
            for group in _batch_groups(prepared, requests):
                results_of.update(zip([g[0] for g in group], self._decode_batch(group, requests[group[0][0]].sampling)))
        else:
            results_of = {index: final_event(self.stream(requests[index])) for index, _, _ in prepared}
        for index, answer in results_of.items():
            results[index] = answer
        return [r if r is not None else Failed("no answer was generated") for r in results]

    def _decode_continuous(self, prepared, requests: Sequence[GenerationRequest]) -> dict[int, Finished]:
        started = time.perf_counter()
        order = [index for index, _, _ in prepared]
        answers = []
        for index, formatted, _ in prepared:
            sampling = requests[index].sampling
            eos_ids = () if sampling.ignore_eos else self._eos_ids
            answers.append(_Answer(self.tokenizer, formatted, eos_ids, sampling.max_new_tokens))
        first_token_at: dict[int, float] = {}

        def on_token(job: int, token_id: int) -> bool:
            first_token_at.setdefault(job, time.perf_counter() - started)
            answers[job].push(token_id)
            return answers[job].reason is not None

        prompts = [ids for _, _, ids in prepared]
        extra = {}
        if getattr(self.backend, "reuses_prefixes", False):
            extra["prefixes"] = [self.prefix_length(ids, requests[i].base_mode) for i, ids in zip(order, prompts)]
        self.backend.decode_batch(
            prompts,
            [requests[index].sampling for index in order],
            suppress_ids=self.suppress_ids,
            on_token=on_token,
            **extra,
        )
        seconds = time.perf_counter() - started
        finished = {}
        for job, (index, answer) in enumerate(zip(order, answers)):
            answer.flush()
            finished[index] = answer.finished(seconds, first_token_at.get(job))
        return finished

    def _decode_batch(self, group, sampling: SamplingSettings) -> list[Finished]:
        started = time.perf_counter()
        eos_ids = () if sampling.ignore_eos else self._eos_ids
        answers = [_Answer(self.tokenizer, formatted, eos_ids, sampling.max_new_tokens) for _, formatted, _ in group]
        steps = self.backend.generate_ids_batch(
            [ids for _, _, ids in group], sampling, eos_ids=eos_ids, suppress_ids=self.suppress_ids
        )
        first_token_at = None
        try:
            for tokens in steps:
                first_token_at = first_token_at or time.perf_counter() - started
                for answer, token_id in zip(answers, tokens):
                    if answer.reason is None:
                        answer.push(token_id)
                if all(answer.reason is not None for answer in answers):
                    break
        finally:
            steps.close() if hasattr(steps, "close") else None
        seconds = time.perf_counter() - started
        for answer in answers:
            answer.flush()
        return [answer.finished(seconds, first_token_at) for answer in answers]

    def answer_logprobs(
        self, prompt: str, answers: Sequence[str], base_mode: BaseMode = "raw"
    ) -> list[tuple[float, int]]:
        """(summed log-probability, token count) of each answer given the prompt in this model's
        own input format (chat template, or raw / prompted for a base model): teacher forcing,
        for multiple-choice truthfulness. A base model's answer follows after a space."""
        formatted = self.format(prompt, base_mode)
        prompt_ids = self.encode(formatted)
        continuations = [
            list(self.tokenizer(self.lead(answer.strip()) + answer.strip(), add_special_tokens=False)["input_ids"])
            for answer in answers
        ]
        batched = getattr(self.backend, "continuation_logprobs_batch", None)
        if batched is not None and getattr(self.backend, "reuses_prefixes", False):
            logprobs = batched(prompt_ids, continuations, self.prefix_length(prompt_ids, base_mode))
        elif batched is not None:
            logprobs = batched(prompt_ids, continuations)
        else:
            logprobs = [self.backend.continuation_logprobs(prompt_ids, ids) for ids in continuations]
        return [(float(sum(values)), len(values)) for values in logprobs]

    def token_shift(self, prompt: str, answer: str, base_mode: BaseMode = "raw") -> TokenShift:
        """Another model's answer teacher-forced through this one, after the prompt in this
        model's own input format: each answer token's rank here and this model's top choices
        (demo/token_shift.py). One pass over prompt + answer."""
        started = time.perf_counter()
        logits_of = getattr(self.backend, "continuation_logits", None)
        if logits_of is None:
            raise TokenShiftUnsupported(f"{self.spec.name}'s back end does not expose every position's logits")
        prompt_ids = self.encode(self.format(prompt, base_mode))
        lead = self.lead(answer)  # not part of the answer: the first token's text drops it
        encoded = self.tokenizer(lead + answer, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoded["input_ids"])
        if not ids:
            return TokenShift(tokens=(), before_model=self.spec.name, seconds=time.perf_counter() - started)
        logits = np.asarray(logits_of(prompt_ids, ids))
        ranks, top_ids, top_probabilities = ranks_and_top(logits, ids, self.suppress_ids)
        pieces = token_texts(lead + answer, [start for start, _ in encoded["offset_mapping"]], skip=len(lead))
        if lead and pieces[0] == "":  # the lead is a token of its own: forced, but not the answer's
            pieces, ranks, top_ids, top_probabilities = pieces[1:], ranks[1:], top_ids[1:], top_probabilities[1:]
        return build_token_shift(
            pieces,
            ranks,
            top_ids,
            top_probabilities,
            lambda token_id: self.tokenizer.decode([token_id]),
            self.spec.name,
            time.perf_counter() - started,
        )


class TokenShiftUnsupported(UserFacingError, RuntimeError):
    """This model cannot teacher-force another model's answer (a remote server, say)."""


def final_event(events) -> Finished | Failed:
    """The answer a stream of generation events ends with (Failed when it ends without one)."""
    last: Finished | Failed = Failed("generation ended without an answer")
    for event in events:
        if isinstance(event, (Finished, Failed)):
            last = event
    return last


# Prompts per padded lockstep batch: beyond ~8 a 2-core CPU gains little and a long prompt's
# padding costs the others.
MAX_BATCH = 8


def _batch_groups(prepared: list, requests: Sequence[GenerationRequest]) -> list[list]:
    """Lockstep batches: requests with the same settings but the seed, similar prompt lengths
    together (less padding), at most MAX_BATCH each."""

    def settings(item) -> SamplingSettings:
        return dataclasses.replace(requests[item[0]].sampling, seed=0)

    groups: list[list] = []
    for item in sorted(prepared, key=lambda item: len(item[2])):
        target = next((g for g in groups if len(g) < MAX_BATCH and settings(g[0]) == settings(item)), None)
        if target is None:
            groups.append([item])
        else:
            target.append(item)
    return groups


class _Answer:
    """One answer being decoded from token ids: the stop rules every path shares."""

    def __init__(self, tokenizer, formatted, eos_ids: Sequence[int], max_new_tokens: int, text_pieces: bool = False):
        self.decoder = _TextPieces() if text_pieces else IncrementalDecoder(tokenizer)
        self.stops = StopSequenceFilter(formatted.stop_sequences)
        self.stop_sequences = formatted.stop_sequences
        self.eos_ids = eos_ids
        self.max_new_tokens = max_new_tokens
        self.new_tokens = 0
        self.reason: StopReason | None = None

    def push(self, token_id) -> str:
        """Take one token; the text it adds. Sets `reason` once the answer has ended."""
        self.new_tokens += 1
        if token_id in self.eos_ids:
            self.reason = "eos"
            return ""
        delta = self.stops.feed(self.decoder.push(token_id))
        if self.stops.stopped:
            self.reason = "stop_sequence"
        elif self.new_tokens >= self.max_new_tokens:
            self.reason = "max_new_tokens"
        return delta

    def flush(self) -> str:
        return self.stops.flush()

    def finished(self, seconds: float, first_token_seconds: float | None) -> Finished:
        text = self.decoder.text
        if self.stops.stopped:
            text = _cut_at_stop(text, self.stop_sequences)
        return Finished(
            text=text.strip(),
            new_tokens=self.new_tokens,
            seconds=seconds,
            first_token_seconds=first_token_seconds,
            stop_reason=self.reason or "eos",  # the back end ended by itself
        )


class _TextPieces:
    """The decoder for a text-streaming back end: the pieces are already text."""

    def __init__(self):
        self.text = ""

    def push(self, piece: str) -> str:
        self.text += piece
        return piece


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def _token_ids(tokenizer, tokens: Sequence[str]) -> tuple[int, ...]:
    vocab = tokenizer.get_vocab()
    return tuple(vocab[t] for t in tokens if t in vocab)


def _eos_ids(tokenizer, backend) -> tuple[int, ...]:
    ids = set(getattr(backend, "eos_token_ids", ()) or ())
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return tuple(sorted(ids))
