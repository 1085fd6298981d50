"""Sampling our policy for labellers: real generation through a worker (a tiny chat model),
seeded per sample, appended per chunk and resumed without sampling again."""

from __future__ import annotations

from demo.training.align.samples import SampleSpec, items_from_samples, read_samples, sample_policy

PROMPTS = [{"prompt": "Name a colour.", "category": "open_qa"}, {"prompt": "Say hello.", "category": "chat"}]


def test_policy_samples_are_seeded_per_sample_appended_and_resumed(tiny_config, tiny_workers, tmp_path):
    worker = tiny_workers["aligned"]
    model_id = tiny_config.pair().aligned
    spec = SampleSpec(model_id, k=3, max_new_tokens=8, seed=5)
    checkpoint = tmp_path / "samples.jsonl"
    calls = []
    rows = sample_policy(tiny_config, worker, spec, PROMPTS[:1], checkpoint, progress=lambda *a: calls.append(a))
    assert [(r["prompt"], r["sample"], r["seed"]) for r in rows] == [("Name a colour.", k, 5 + k) for k in range(3)]
    assert all(r["model_id"] == model_id and 0 < r["new_tokens"] <= 8 for r in rows)
    assert calls[-1] == (3, 3)
    # Resumed with one more prompt: only its samples are generated; the first prompt's stay as they were.
    rows_again = sample_policy(tiny_config, worker, spec, PROMPTS, checkpoint)
    assert rows_again[:3] == rows and len(rows_again) == 6 == len(read_samples(checkpoint))
    # The same seed gives the same text (a greedy tiny model may repeat itself: the item keeps
    # only distinct texts, and skips a prompt with fewer than two).
    again = sample_policy(tiny_config, worker, spec, PROMPTS[:1], tmp_path / "again.jsonl")
    assert [r["text"] for r in again] == [r["text"] for r in rows]
    for item in items_from_samples(rows_again):
        assert 2 <= len(item.answers) <= 3 and len({a.text for a in item.answers}) == len(item.answers)
