"""Choosing the next token from a row of logits, in numpy: the decoders that run a model graph
themselves (demo/generation/backends/onnx_batch.py) use it, one row per answer.

The order is onnxruntime-genai's and transformers': banned ids masked, the repetition penalty on
every id already in the sequence (prompt included: divide a positive logit, multiply a negative
one), then greedy argmax, or temperature and top-p (the smallest set of ids whose probability
reaches top_p) and a draw from the row's own random stream.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..settings import SamplingSettings


def row_generator(seed: int) -> np.random.Generator:
    """One answer's random stream: its draws depend on its seed only, not on the batch it ran in."""
    return np.random.default_rng(seed)


def penalise(logits: np.ndarray, seen: Iterable[int], penalty: float) -> np.ndarray:
    """The repetition penalty on one row of logits (a new array)."""
    out = np.array(logits, dtype=np.float32, copy=True)
    if penalty == 1.0:
        return out
    ids = np.fromiter(set(seen), dtype=np.int64)
    ids = ids[(ids >= 0) & (ids < out.shape[-1])]
    values = out[ids]
    out[ids] = np.where(values > 0, values / penalty, values * penalty)
    return out


def next_token(
    logits: np.ndarray,
    seen: Iterable[int],
    sampling: SamplingSettings,
    rng: np.random.Generator,
    banned: np.ndarray | None = None,
) -> int:
    """The next token id for one row of logits (shape [vocab])."""
    scores = penalise(logits, seen, sampling.repetition_penalty)
    if banned is not None and banned.size:
        scores[banned] = -np.inf
    if sampling.greedy:
        return int(np.argmax(scores))
    scaled = scores / np.float32(sampling.temperature)
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    order = _descending(probs, sampling.top_p)
    sorted_probs = probs[order].astype(np.float64)
    # Keep ids until their cumulative probability reaches top_p (the one crossing it included).
    keep = min(int(np.searchsorted(np.cumsum(sorted_probs), sampling.top_p) + 1), len(order))
    kept = sorted_probs[:keep] / sorted_probs[:keep].sum()
    return int(order[rng.choice(keep, p=kept)])


# Ids below this probability are left out of the sort while the others hold top_p: then every id
# of the top-p set is among them (a full sort of a 262k vocabulary costs ~50 ms a token).
_NEGLIGIBLE = 1e-7


def _descending(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Ids by falling probability, at least as far as the top_p mass reaches (ties: lower id first)."""
    candidates = np.flatnonzero(probs >= _NEGLIGIBLE)
    if probs[candidates].sum(dtype=np.float64) < top_p:
        candidates = np.arange(probs.size)
    return candidates[np.argsort(-probs[candidates], kind="stable")]
