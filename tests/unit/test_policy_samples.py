"""Our policy's samples as blind ranking items, and labellers sharing a set in disjoint parts."""

from __future__ import annotations

import json

import pytest

from demo.feedback.commands import labeller_items
from demo.feedback.tasks import split_of
from demo.training.align.samples import POLICY_SPLIT_SHARES, items_from_samples, read_samples


def _samples(prompts: int, k: int, repeat_text: bool = False) -> list[dict]:
    return [
        {
            "prompt": f"Prompt number {p}?",
            "category": "open_qa",
            "model_id": "sft",
            "sample": s,
            "seed": s,
            "text": "same" if repeat_text else f"answer {p}.{s}",
        }
        for p in range(prompts)
        for s in range(k)
    ]


def test_each_prompt_is_one_ranking_of_its_distinct_answers_split_by_prompt():
    items = items_from_samples(_samples(40, 4))
    assert len(items) == 40
    for item in items:
        assert item.kind == "ranking" and [a.number for a in item.answers] == ["1", "2", "3", "4"]
        assert {a.system for a in item.answers} == {f"sft:chat:sample{s}" for s in range(4)}
        assert item.split == split_of(item.prompt, POLICY_SPLIT_SHARES)
        assert "sample" not in json.dumps(item.blind())  # labellers never see which sample wrote what
    orders = {tuple(a.system for a in item.answers) for item in items}
    assert len(orders) > 1  # numbering is shuffled, not the sample order


def test_a_prompt_with_fewer_than_two_distinct_answers_makes_no_item():
    assert items_from_samples(_samples(3, 4, repeat_text=True)) == []
    rows = _samples(1, 3)
    rows[1]["text"] = rows[0]["text"]
    (item,) = items_from_samples(rows)
    assert len(item.answers) == 2


def test_labellers_k_of_n_get_disjoint_parts_that_cover_the_pool():
    items = items_from_samples(_samples(120, 2))
    train = {i.id for i in items if i.split != "test"}
    parts = [labeller_items(items, f"P{k}:train:{k}/3")[2] for k in (1, 2, 3)]
    ids = [{i.id for i in part} for part in parts]
    assert set().union(*ids) == train and sum(map(len, ids)) == len(train)
    assert all(i.split != "test" for part in parts for i in part)
    (_, _, test) = labeller_items(items, "H:test")
    assert {i.id for i in test} == {i.id for i in items if i.split == "test"}
    with pytest.raises(ValueError, match="1 <= K <= N"):
        labeller_items(items, "P:train:4/3")


def test_a_torn_last_line_of_the_samples_checkpoint_is_dropped(tmp_path):
    path = tmp_path / "samples.jsonl"
    rows = _samples(1, 2)
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[1])[:20])
    assert read_samples(path) == rows[:1]


def test_an_items_numbering_does_not_change_when_more_prompts_are_sampled():
    first = {item.id: item for item in items_from_samples(_samples(10, 4))}
    later = {item.id: item for item in items_from_samples(_samples(30, 4))}
    assert all(later[item_id] == item for item_id, item in first.items())
