"""How faithful a served build is to the weights it was built from (`python -m demo fidelity`).

For each model: answers are sampled by the served runtime (the page's default sampling, one
seed per prompt) to a fixed prompt set spread over the instruction suite's categories, each in
the model's own input format; then each answer is teacher-forced through the served build
(the same ONNX model, every position's logits) and through an fp32 transformers reference of
the same checkpoint (the de-quantized shipped GGUF, with the adapter merged for a tuned model).
Per answer token: KL(reference || served) in nats, whether both rank the same token first, and
whether the reference gives the sampled token under 1e-4 (a token only the build would write).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import AppConfig, ModelSpec, RuntimeSpec
from ..generation.backends.onnx_genai_backend import THREADS_ENV_VAR
from ..settings import SamplingSettings
from .runner import spread_rows
from .suites import load_suite

RARE_PROBABILITY = 1e-4
DEFAULT_PROMPTS = 24
DEFAULT_TOKENS = 96


@dataclass(frozen=True)
class TokenStats:
    """Per answer token, over every answer of one model."""

    kl: np.ndarray  # nats
    same_top1: np.ndarray  # bool
    rare: np.ndarray  # bool: the reference gives the sampled token < RARE_PROBABILITY

    def summary(self) -> dict[str, float | int]:
        return {
            "mean_kl": round(float(self.kl.mean()), 4),
            "p95_kl": round(float(np.percentile(self.kl, 95)), 4),
            "top1_agreement": round(float(self.same_top1.mean()), 4),
            "rare_token_rate": round(float(self.rare.mean()), 4),
            "tokens": int(self.kl.size),
        }


def token_stats(reference_logits: np.ndarray, served_logits: np.ndarray, tokens: Sequence[int]) -> TokenStats:
    """Compare two [positions, vocab] logit arrays that predicted `tokens` (pure numpy)."""
    ref = _log_softmax(reference_logits.astype(np.float64))
    served = _log_softmax(served_logits.astype(np.float64))
    kl = (np.exp(ref) * (ref - served)).sum(axis=-1)
    same = ref.argmax(axis=-1) == served.argmax(axis=-1)
    rare = ref[np.arange(len(tokens)), np.asarray(tokens)] < np.log(RARE_PROBABILITY)
    return TokenStats(kl=np.maximum(kl, 0.0), same_top1=same, rare=rare)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


def fidelity_prompts(count: int) -> list[str]:
    """`count` prompts of the shipped instruction suite, round-robin over its categories."""
    return [row.prompt for row in spread_rows(load_suite("instructions"), count)]


def _reference_logits(checkpoint: Path) -> Callable[[list[int], list[int]], np.ndarray]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32)
    model.eval()

    def logits(prompt_ids: list[int], answer_ids: list[int]) -> np.ndarray:
        ids = torch.tensor([prompt_ids + answer_ids])
        with torch.no_grad():
            out = model(input_ids=ids).logits[0]
        return out[len(prompt_ids) - 1 : len(prompt_ids) + len(answer_ids) - 1].numpy()

    return logits


def tokens_only_the_build_writes(
    spec: ModelSpec, config: AppConfig, prompt: str, answers: Sequence[str]
) -> list[list[str]]:
    """For each of `answers` (written by the served build of `spec` to `prompt`, in its own input
    format): the tokens to which the fp32 reference of the same weights gives under
    RARE_PROBABILITY at their place, as text. An empty list: the reference could have written
    every token of that answer."""
    from ..generation.loading import load_runner

    runner, info = load_runner(spec, config.base_prompted)
    prompt_ids = list(runner.encode(runner.format(prompt, "raw")))
    reference = _reference_logits(Path(info.checkpoint))
    found = []
    for text in answers:
        answer_ids = list(
            runner.tokenizer(runner.lead(text.strip()) + text.strip(), add_special_tokens=False)["input_ids"]
        )
        log_probs = _log_softmax(reference(prompt_ids, answer_ids).astype(np.float64))
        rare = log_probs[np.arange(len(answer_ids)), answer_ids] < np.log(RARE_PROBABILITY)
        found.append([runner.tokenizer.decode([token]) for token, flag in zip(answer_ids, rare) if flag])
    return found


def _decode_speed(runner, prompt: str, tokens: int = 128) -> dict[str, float]:
    """Greedy decode speed of the served runtime, one thread, `tokens` new tokens (no stop)."""
    from ..generation.runner import Finished, GenerationRequest, final_event

    settings = SamplingSettings(temperature=0.0, max_new_tokens=tokens, repetition_penalty=1.0)
    best = 0.0
    for _ in range(2):  # the first run warms the session up
        event = final_event(runner.stream(GenerationRequest(prompt, settings, "raw")))
        first = event.first_token_seconds if isinstance(event, Finished) else None
        if isinstance(event, Finished) and first is not None and event.seconds > first and event.new_tokens > 1:
            rate = (event.new_tokens - 1) / (event.seconds - first)
            best = max(best, rate)
    return {"decode_tokens_per_second": round(best, 1)}


def measure_model(
    spec: ModelSpec,
    config: AppConfig,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = DEFAULT_TOKENS,
    override: RuntimeSpec | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict:
    """Fidelity of one model's served (or `override`) build against its fp32 reference."""
    from ..generation.backends.onnx_batch import BatchDecoder
    from ..generation.loading import load_runner
    from ..generation.runner import Finished, GenerationRequest, final_event

    started = time.perf_counter()
    runner, info = load_runner(spec, config.base_prompted, override)
    model_dir = getattr(runner.backend, "model_dir", None)
    if info.backend != "onnxruntime-genai" or model_dir is None:
        raise ValueError(f"{spec.name}: fidelity is measured for onnxruntime-genai builds (this one is {info.backend})")
    sampling = dataclasses.replace(SamplingSettings(**dict(config.generation)), max_new_tokens=max_new_tokens)
    samples = []
    for index, prompt in enumerate(prompts):
        request = GenerationRequest(prompt, dataclasses.replace(sampling, seed=index), "raw")
        event = final_event(runner.stream(request))
        if not isinstance(event, Finished) or not event.text.strip():
            continue
        prompt_ids = runner.encode(runner.format(prompt, "raw"))
        text = event.text.strip()
        answer_ids = list(runner.tokenizer(runner.lead(text) + text, add_special_tokens=False)["input_ids"])
        if answer_ids:
            samples.append((list(prompt_ids), answer_ids))
    log(f"{spec.name}: {len(samples)} answers sampled ({time.perf_counter() - started:.0f} s)")
    speed = _decode_speed(runner, prompts[0])
    served = BatchDecoder(Path(model_dir), threads=None)
    served_logits = [served.continuation_logits(p, a) for p, a in samples]
    del served, runner
    reference = _reference_logits(Path(info.checkpoint))
    stats = [token_stats(reference(p, a), s, a) for (p, a), s in zip(samples, served_logits)]
    merged = TokenStats(
        kl=np.concatenate([s.kl for s in stats]),
        same_top1=np.concatenate([s.same_top1 for s in stats]),
        rare=np.concatenate([s.rare for s in stats]),
    )
    result = {"precision": info.precision, "answers": len(samples), **merged.summary(), **speed}
    result["seconds"] = round(time.perf_counter() - started, 1)
    log(f"{spec.name}: {result}")
    return result


def run_fidelity(
    config: AppConfig,
    model_ids: Sequence[str] | None = None,
    *,
    prompts: int = DEFAULT_PROMPTS,
    max_new_tokens: int = DEFAULT_TOKENS,
    precision: str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict:
    """{"models": {model id: figures}} for every served model (or `model_ids`); `precision`
    measures another onnxruntime-genai build than the configured one."""
    # One intra-op thread, as each model runs in the app (its own process, one core each).
    os.environ.setdefault(THREADS_ENV_VAR, "1")
    texts = fidelity_prompts(prompts)
    results = {}
    for model_id in model_ids or config.served_model_ids():
        spec = config.models[model_id]
        override = None
        if precision is not None:
            override = RuntimeSpec(backend="onnxruntime-genai", precision=precision)
        results[model_id] = measure_model(
            spec, config, texts, max_new_tokens=max_new_tokens, override=override, log=log
        )
    return {"prompts": len(texts), "max_new_tokens": max_new_tokens, "models": results}
