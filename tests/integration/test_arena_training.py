"""Votes back into the reward model: `votes export` and `votes stats` on a real database, and
`train-reward --with-votes` (the trainer on a tiny backbone) training on the vote pairs and
reporting held-out accuracy before and after, recorded in the model card."""

from __future__ import annotations

import json

import pytest
from arena_fakes import vote_record
from test_reward import backbone, llama_dir, local_config, toy_pairs, write_parts  # noqa: F401 (fixtures)

from demo.arena.export import VoteTraining, accuracy_lines, export_trl
from demo.arena.store import VoteStore
from demo.cli import main
from demo.training.reward import HeadConfig, train_reward_head


def make_votes(tmp_path, count: int = 12):
    store = VoteStore(tmp_path / "votes.sqlite")
    for i in range(count):
        winner = ["A", "B", "tie", "bad"][i % 4]
        store.record(
            vote_record(
                f"b{i}",
                winner,
                prompt=f"Question number {i}?",
                answer_a=f"short {i}",
                answer_b=f"a longer and better answer number {i}",
            )
        )
    return store


def test_votes_export_and_stats_commands(tmp_path, capsys, tiny_config_file):
    store = make_votes(tmp_path)
    out = tmp_path / "trl" / "votes.jsonl"
    assert (
        main(
            [
                "votes",
                "export",
                "--format",
                "trl",
                "--out",
                str(out),
                "--database",
                str(store.path),
                "--config",
                str(tiny_config_file),
            ]
        )
        == 0
    )
    assert "6 preference pairs" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and all({"prompt", "chosen", "rejected"} <= set(r) for r in rows)
    assert len((tmp_path / "trl" / "votes.unpaired.jsonl").read_text().splitlines()) == 12
    assert main(["votes", "stats", "--database", str(store.path), "--config", str(tiny_config_file)]) == 0
    text = capsys.readouterr().out
    assert "12 votes" in text and "m1:raw" in text and "paper: 85 ± 3 %" in text
    assert main(["votes", "stats", "--json", "--database", str(store.path), "--config", str(tiny_config_file)]) == 0
    assert json.loads(capsys.readouterr().out)["votes"] == 12


def test_votes_commands_without_a_database_say_so(tmp_path, capsys, tiny_config_file):
    missing = tmp_path / "none.sqlite"
    assert main(["votes", "stats", "--database", str(missing), "--config", str(tiny_config_file)]) == 1
    assert "no vote database" in capsys.readouterr().err


@pytest.mark.timeout(600)
def test_train_reward_with_votes_reports_before_and_after(tmp_path, backbone, llama_dir):  # noqa: F811
    root = write_parts(tmp_path / "prefs", toy_pairs(120), toy_pairs(20, seed=99))
    store = make_votes(tmp_path, 16)
    done = export_trl(store.votes(), tmp_path / "votes.jsonl")
    votes = VoteTraining.from_file(done.pairs_path)
    assert votes.train and votes.test and len(votes.train) + len(votes.test) == 8
    report = train_reward_head(
        local_config(llama_dir),
        seed=0,
        out_dir=tmp_path / "out",
        data_dir=root,
        backbone=backbone,
        head_config=HeadConfig(layer=None, feature="last_token", epochs=60),
        votes=votes,
    )
    summary = report.votes
    assert summary["train_votes"] == len(votes.train) and summary["heldout_votes"] == len(votes.test)
    for when in ("before", "after"):
        assert 0.0 <= summary[when]["written"] <= 1.0 and 0.0 <= summary[when]["votes"] <= 1.0
    assert summary["after"]["written"] == report.heldout_accuracy  # the written head is the new one
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Trained with arena votes" in card and f"n={len(votes.test)}" in card
    lines = accuracy_lines(summary)
    assert "before (written only)" in lines and "after (written + votes)" in lines


def test_a_vote_file_that_is_not_trl_is_refused(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "answer": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: expected a TRL preference line"):
        VoteTraining.from_file(bad)
