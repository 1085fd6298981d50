"""demo/evaluation/results.py: rows are keyed, appended durably, and a killed run resumes."""

from __future__ import annotations

import json

import pytest

from demo.evaluation.results import (
    ResultsError,
    ResultsStore,
    comparison_record,
    comparison_record_key,
    config_hash,
    likelihood_record,
)
from demo.evaluation.suites import SuiteRow


def side(model: str, text: str, reward: float, toxicity: float = 0.01) -> dict:
    return {
        "model": model,
        "input_text": text,
        "text": text,
        "new_tokens": 5,
        "seconds": 0.1,
        "reward": reward,
        "toxicity": toxicity,
        "toxic": toxicity >= 0.5,
        "toxicity_labels": {"toxic": toxicity},
        "reward_error": None,
        "error": None,
    }


def comparison(prompt: str, preferred: str = "aligned", p: float | None = 0.8) -> dict:
    return {
        "prompt": prompt,
        "base": side("Base", "meh", -1.0),
        "aligned": side("Aligned", "Sure, here it is.", 1.0),
        "preferred": preferred,
        "p_aligned_preferred": p,
        "error": None,
    }


def make_record(row: int, sample: int = 0, kind: str = "instruction", instruction=None, **suite_fields) -> dict:
    suite_row = SuiteRow("instructions", row, f"prompt {row}", "chat", kind, **suite_fields)
    return comparison_record(
        suite_row,
        comparison(suite_row.prompt),
        pair="default",
        base_format="raw",
        sample=sample,
        seed=42 + sample,
        model_ids={"base": "gemma", "aligned": "smollm"},
        config_hashes={"base": "b1", "aligned": "a1"},
        instruction=instruction,
    )


def test_record_has_the_documented_fields():
    record = make_record(3)
    for key in (
        "suite",
        "row",
        "prompt",
        "category",
        "kind",
        "pair",
        "base_format",
        "sample",
        "seed",
        "preferred",
        "p_aligned_preferred",
        "base",
        "aligned",
        "key",
    ):
        assert key in record
    assert record["aligned"]["model_id"] == "smollm" and record["base"]["config_hash"] == "b1"
    assert record["aligned"]["text"] == "Sure, here it is."
    assert comparison_record_key(record) == record["key"]
    assert make_record(3)["key"] == record["key"]
    assert make_record(3, sample=1)["key"] != record["key"]
    toxic = make_record(3, kind="toxicity", instruction="respectful")
    assert toxic["key"] != make_record(3, kind="toxicity", instruction="biased")["key"]
    with pytest.raises(ValueError):
        make_record(3, kind="toxicity")


def test_config_hash_is_stable_and_sensitive():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_resume_after_a_torn_last_line(tmp_path):
    store = ResultsStore(tmp_path)
    records = [make_record(i) for i in range(3)]
    for record in records:
        store.append_comparison(record)
    path = tmp_path / "results.jsonl"
    with open(path, "a", encoding="utf-8") as file:  # killed mid-write
        file.write(json.dumps(make_record(3))[:40])
    reloaded = ResultsStore(tmp_path)
    assert [r["key"] for r in reloaded.comparisons()] == [r["key"] for r in records]
    assert [comparison_record_key(r) for r in reloaded.comparisons()] == [r["key"] for r in records]
    assert all(reloaded.has_comparison(r["key"]) for r in records)
    assert not reloaded.has_comparison(make_record(3)["key"])
    # The re-run writes the missing row on a line of its own.
    reloaded.append_comparison(make_record(3))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines)
    assert len(ResultsStore(tmp_path).comparisons()) == 4


def test_unterminated_but_complete_last_line_is_kept(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(make_record(0)) + "\n" + json.dumps(make_record(1)), encoding="utf-8")
    store = ResultsStore(tmp_path)
    assert len(store.comparisons()) == 2
    store.append_comparison(make_record(2))
    assert len(ResultsStore(tmp_path).comparisons()) == 3


def test_damage_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(make_record(0)) + "\n{broken\n" + json.dumps(make_record(1)) + "\n", encoding="utf-8")
    with pytest.raises(ResultsError, match="line 2"):
        ResultsStore(tmp_path)


def test_likelihood_rows(tmp_path):
    row = SuiteRow("truthfulness", 0, "Are bats blind?", "science", "truthfulness", ("No.",), ("Yes.", "Totally."))
    record = likelihood_record(
        row,
        pair="default",
        model="base",
        model_id="gemma",
        config_hash="b1",
        base_format="raw",
        correct_logliks=[-2.0],
        incorrect_logliks=[-1.0, -3.0],
        correct_tokens=[2],
        incorrect_tokens=[2, 3],
    )
    store = ResultsStore(tmp_path)
    store.append_likelihood(record)
    again = ResultsStore(tmp_path)
    assert again.has_likelihood(record["key"]) and again.likelihoods() == [record]
    assert again.comparisons() == []
    with pytest.raises(ValueError):
        likelihood_record(
            row,
            pair="default",
            model="base",
            model_id="gemma",
            config_hash="b1",
            base_format="raw",
            correct_logliks=[-2.0],
            incorrect_logliks=[-1.0],
        )
