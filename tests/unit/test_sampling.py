"""Token choice for the decoders that run a graph themselves (demo/generation/sampling.py)."""

from __future__ import annotations

import numpy as np
import pytest

from demo.generation.sampling import _descending, next_token, penalise, row_generator
from demo.settings import SamplingSettings

GREEDY = SamplingSettings(temperature=0.0, repetition_penalty=1.0)


def test_penalty_divides_positive_and_multiplies_negative_logits_of_seen_ids():
    logits = np.array([2.0, -2.0, 3.0, 1.0], dtype=np.float32)
    out = penalise(logits, {0, 1, 7}, 2.0)  # 7 is outside the vocabulary: ignored
    assert out.tolist() == [1.0, -4.0, 3.0, 1.0]
    assert logits.tolist() == [2.0, -2.0, 3.0, 1.0]  # the input is not changed


def test_greedy_takes_the_best_id_after_penalty_and_bans():
    logits = np.array([5.0, 4.0, 3.0, 0.0], dtype=np.float32)
    rng = row_generator(0)
    assert next_token(logits, (), GREEDY, rng) == 0
    assert next_token(logits, (), GREEDY, rng, banned=np.array([0])) == 1
    penalised = SamplingSettings(temperature=0.0, repetition_penalty=2.0)
    assert next_token(logits, {0, 1}, penalised, rng) == 2  # 5/2 and 4/2 fall below 3


def test_sampling_stays_inside_the_top_p_set():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    logits = np.log(probs).astype(np.float32)
    sampling = SamplingSettings(temperature=1.0, top_p=0.75, repetition_penalty=1.0)
    rng = row_generator(3)
    drawn = {next_token(logits, (), sampling, rng) for _ in range(300)}
    assert drawn == {0, 1}  # 0.5 + 0.3 reaches 0.75; 2 and 3 are never drawn


def test_a_row_draws_from_its_own_seed():
    logits = np.zeros(50, dtype=np.float32)
    sampling = SamplingSettings(temperature=1.0, top_p=1.0, repetition_penalty=1.0)

    def draws(seed):
        rng = row_generator(seed)
        return [next_token(logits, (), sampling, rng) for _ in range(20)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


@pytest.mark.parametrize("scale", [0.5, 3.0, 12.0])
def test_the_candidate_sort_gives_the_full_sort_prefix(scale):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(262_144) * scale
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    fast = _descending(probs, 0.95)
    full = np.argsort(-probs, kind="stable")
    reach = int(np.searchsorted(np.cumsum(probs[full]), 0.95) + 1)
    assert fast[:reach].tolist() == full[:reach].tolist()
