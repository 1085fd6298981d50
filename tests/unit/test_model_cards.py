"""The two model cards of the heads this project trains are rendered from result files
(`python -m demo docs [--check]`): a figure typed into a card, or a results file made by another
head than the shipped one, is found and named."""

from __future__ import annotations

import json

import pytest

from demo import docs
from demo.config import load_config
from demo.paths import RESULTS_DIR
from demo.training import toxicity_head
from demo.training.heads import head_facts
from demo.training.reward import card as reward_card


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.mark.parametrize("module", [reward_card, toxicity_head], ids=["reward", "toxicity"])
def test_the_committed_cards_are_what_their_sources_render(config, module):
    text, sources = module.shipped_card(config)
    card = next(path for path, render in docs._cards(config) if render is module.shipped_card)
    assert card.read_text(encoding="utf-8") == text
    assert sources and all(source.is_file() for source in sources)


def test_a_figure_typed_into_a_card_is_found_and_named(config, monkeypatch, tmp_path):
    card, render = docs._cards(config)[0]
    text = card.read_text(encoding="utf-8")
    tampered = tmp_path / card.name
    tampered.write_text(text.replace("80.8%", "90.8%", 1), encoding="utf-8")
    monkeypatch.setattr(docs, "_cards", lambda config: [(tampered, render)])
    monkeypatch.setattr(docs, "DOCUMENTS", ())
    (name,) = docs.run_docs(check=True)
    assert tampered.name in name and "results/reward/evaluate.json" in name and "reward_head.safetensors" in name
    assert docs.run_docs(check=False) and tampered.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("module", [reward_card, toxicity_head], ids=["reward", "toxicity"])
def test_a_results_file_made_by_another_head_is_refused(config, module, monkeypatch, tmp_path):
    monkeypatch.setattr(module, "TRAINING_RESULTS_DIR", tmp_path)
    record = {"command": "python -m demo train-x", "head": {"file": "x", "tensors_sha256": "0" * 64}}
    (tmp_path / module.RESULTS_FILE).write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(ValueError, match="another head"):
        module.shipped_card(config)
    card = next(path for path, render in docs._cards(config) if render is module.shipped_card)
    with pytest.raises(docs.StaleFigures, match=card.name):
        docs.render_card(config, card, module.shipped_card)


def test_a_training_run_that_made_the_shipped_head_renders_the_whole_card(config, monkeypatch, tmp_path):
    """With a committed record of the run that made this very head (the same tensors), the card
    quotes the run's own figures: its evaluation, loss curve and training data."""
    spec = config.scoring.reward
    measured = json.loads((RESULTS_DIR / "reward" / "evaluate.json").read_text(encoding="utf-8"))
    record = {
        "command": "python -m demo train-reward --replace-shipped",
        "commit": "abc1234",
        "date": "2026-12-08T00:00:00+00:00",
        "machine": "a test machine",
        "head": head_facts(spec.head_path),
        "evaluation": {name: measured[name] for name in ("independent", "heldout", "unseen")},
        "training": {
            "train_pairs": 560,
            "loss_first": 0.6931,
            "loss_last": 0.0981,
            "loss_curve": [0.6931, 0.2, 0.0981],
            "train_accuracy": 0.995,
            "seconds": 123.4,
            "feature_seconds": 100.0,
            "train_aspects": {"helpful": 226},
            "train_flaws": {"wrong_fact": 170},
            "votes": None,
        },
    }
    monkeypatch.setattr(reward_card, "TRAINING_RESULTS_DIR", tmp_path)
    (tmp_path / reward_card.RESULTS_FILE).write_text(json.dumps(record), encoding="utf-8")
    text, sources = reward_card.shipped_card(config)
    assert sources[0] == tmp_path / reward_card.RESULTS_FILE
    assert "0.693 to 0.098" in text and "99.5%" in text and "123 s on a test machine" in text
    assert "wrong_fact 170" in text and "commit abc1234" in text
