"""Back end: transformers on CPU or CUDA, in fp32/bf16/fp16 or bitsandbytes 4-bit/8-bit.

Decoding is a plain loop over the model's forward pass with a KV cache, so each new token is
available at once, the caller can stop it by closing the iterator, and sampling draws from a
per-request `torch.Generator`: the same seed gives the same answer, whatever else runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModelForCausalLM,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from ...settings import SamplingSettings

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def quantization_config(precision: str):
    """The BitsAndBytesConfig for a bnb precision, or None for a plain dtype."""
    if not precision.startswith("bnb-"):
        return None
    from transformers import BitsAndBytesConfig

    if precision == "bnb-nf4":
        compute = torch.bfloat16
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=True,
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def load_causal_lm(checkpoint: Path, precision: str, device: str, trust_remote_code: bool = False):
    """Load a checkpoint directory with the requested precision on the requested device."""
    quant = quantization_config(precision)
    kwargs: dict[str, Any] = dict(trust_remote_code=trust_remote_code)
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map=device, dtype=torch.bfloat16)
    else:
        kwargs.update(dtype=_DTYPES[precision])
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), **kwargs)
    if quant is None:
        model.to(device)  # type: ignore[arg-type]  # transformers' wrapper of .to() types its first argument as the model
    model.eval()
    return model


class TransformersGenerator:
    """`TokenGenerator` over a transformers causal LM."""

    def __init__(self, model):
        self.model = model
        self.device = next(model.parameters()).device
        eos = model.generation_config.eos_token_id
        self.eos_token_ids = tuple(eos) if isinstance(eos, (list, tuple)) else ((eos,) if eos is not None else ())

    @classmethod
    def load(cls, checkpoint: Path, precision: str, device: str, trust_remote_code: bool = False, options=None):
        return cls(load_causal_lm(checkpoint, precision, device, trust_remote_code))

    def _processors(self, sampling: SamplingSettings, suppress_ids: Sequence[int]) -> LogitsProcessorList:
        processors = LogitsProcessorList()
        if sampling.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(sampling.repetition_penalty))
        if suppress_ids:
            processors.append(SuppressTokensLogitsProcessor(list(suppress_ids), device=self.device))
        if not sampling.greedy:
            processors.append(TemperatureLogitsWarper(sampling.temperature))
            if sampling.top_p < 1.0:
                processors.append(TopPLogitsWarper(sampling.top_p))
        return processors

    @torch.inference_mode()
    def generate_ids(
        self,
        prompt_ids: Sequence[int],
        sampling: SamplingSettings,
        *,
        eos_ids: Sequence[int],
        suppress_ids: Sequence[int],
    ) -> Iterator[int]:
        processors = self._processors(sampling, suppress_ids)
        rng = torch.Generator(device=self.device).manual_seed(sampling.seed)
        sequence = torch.tensor([list(prompt_ids)], dtype=torch.long, device=self.device)
        step_input, past = sequence, None
        for _ in range(sampling.max_new_tokens):
            output = self.model(input_ids=step_input, past_key_values=past, use_cache=True)
            past = output.past_key_values
            scores = processors(sequence, output.logits[:, -1, :].float())  # type: ignore[arg-type]  # transformers wants LongTensor; this is a long Tensor
            if sampling.greedy:
                next_id = scores.argmax(dim=-1)
            else:
                probs = torch.softmax(scores, dim=-1)
                next_id = torch.multinomial(probs, 1, generator=rng).squeeze(1)
            token = int(next_id.item())
            yield token
            if token in eos_ids:
                return
            step_input = next_id.view(1, 1)
            sequence = torch.cat([sequence, step_input], dim=1)

    @torch.inference_mode()
    def generate_ids_batch(
        self,
        prompts: Sequence[Sequence[int]],
        sampling: SamplingSettings,
        *,
        eos_ids: Sequence[int],
        suppress_ids: Sequence[int],
    ) -> Iterator[list[int]]:
        """Several prompts per forward pass: left-padded, masked, one KV cache. Yields one token
        per prompt per step (a finished prompt keeps getting tokens; the caller ignores them)
        and ends when every prompt has produced an end-of-sequence id or the budget is spent.

        The logits processors run row by row on each prompt's own, unpadded sequence, so the
        repetition penalty never sees a padding id: each row is decoded as `generate_ids` would.
        """
        processors = self._processors(sampling, suppress_ids)
        rng = torch.Generator(device=self.device).manual_seed(sampling.seed)
        width = max(len(p) for p in prompts)
        pad = 0
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], dtype=torch.long, device=self.device)
        mask = torch.tensor(
            [[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long, device=self.device
        )
        sequences = [torch.tensor([list(p)], dtype=torch.long, device=self.device) for p in prompts]
        done = [False] * len(prompts)
        step_input, past = ids, None
        for _ in range(sampling.max_new_tokens):
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)[:, -step_input.shape[1] :]
            output = self.model(
                input_ids=step_input, attention_mask=mask, position_ids=positions, past_key_values=past, use_cache=True
            )
            past = output.past_key_values
            logits = output.logits[:, -1, :].float()
            scores = torch.cat([processors(seq, logits[i : i + 1]) for i, seq in enumerate(sequences)])  # type: ignore[arg-type]  # the stub wants LongTensor; ids are long
            if sampling.greedy:
                next_ids = scores.argmax(dim=-1)
            else:
                next_ids = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=rng).squeeze(1)
            tokens = [int(t) for t in next_ids.tolist()]
            yield tokens
            done = [d or t in eos_ids for d, t in zip(done, tokens)]
            if all(done):
                return
            step_input = next_ids.view(-1, 1)
            mask = torch.cat([mask, torch.ones_like(step_input)], dim=1)
            sequences = [torch.cat([seq, step_input[i : i + 1]], dim=1) for i, seq in enumerate(sequences)]

    @torch.inference_mode()
    def continuation_logprobs_batch(
        self, prompt_ids: Sequence[int], continuations: Sequence[Sequence[int]]
    ) -> list[list[float]]:
        """`continuation_logprobs` of several continuations of one prompt in one forward pass
        (right-padded: a causal model's earlier positions never see the padding)."""
        rows = [list(prompt_ids) + list(c) for c in continuations]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows], device=self.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
        logprobs = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        start = len(prompt_ids)
        out = []
        for i, continuation in enumerate(continuations):
            targets = torch.tensor(list(continuation), device=self.device)
            picked = logprobs[i, start - 1 : start - 1 + len(continuation)].gather(1, targets[:, None]).squeeze(1)
            out.append(picked.tolist())
        return out

    @torch.inference_mode()
    def continuation_logits(self, prompt_ids: Sequence[int], continuation_ids: Sequence[int]) -> np.ndarray:
        """The logits [len(continuation), vocab] that predicted each continuation token (one pass)."""
        ids = torch.tensor([list(prompt_ids) + list(continuation_ids)], device=self.device)
        return self.model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float().cpu().numpy()

    @torch.inference_mode()
    def continuation_logprobs(self, prompt_ids: Sequence[int], continuation_ids: Sequence[int]) -> list[float]:
        """Log-probability of each continuation token given everything before it (one pass)."""
        ids = torch.tensor([list(prompt_ids) + list(continuation_ids)], device=self.device)
        logits = self.model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        targets = torch.tensor(list(continuation_ids), device=self.device)
        return logprobs.gather(1, targets[:, None]).squeeze(1).tolist()
