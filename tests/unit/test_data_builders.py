"""The builders of data/ are `python -m demo data` subcommands: each imports from the package
(no sys.path edits), and the committed RL prompts are what their builder writes and pass its check."""

from __future__ import annotations

import importlib

import pytest

from demo import cli
from demo.paths import DATA_DIR
from demo.training.data_builders import BUILDERS, run_builder


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_builder_is_a_module_with_a_main(name):
    module = importlib.import_module(f"demo.training.data_builders.{BUILDERS[name].module}")
    assert callable(module.main)
    assert "sys.path" not in importlib.util.find_spec(module.__name__).loader.get_source(module.__name__)


def test_the_committed_rl_prompts_are_what_their_builder_writes(tmp_path, monkeypatch, capsys):
    from demo.training.data_builders import rl_prompts

    monkeypatch.setattr(rl_prompts, "OUT", tmp_path / "prompts.jsonl")
    assert run_builder("rl-prompts", []) == 0
    assert (tmp_path / "prompts.jsonl").read_bytes() == (DATA_DIR / "rl" / "prompts.jsonl").read_bytes()
    assert "wrote 560 rows" in capsys.readouterr().out


def test_the_committed_rl_prompts_pass_their_check_through_the_cli(capsys):
    assert cli.main(["data", "rl-prompts-check"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("PASS") and "clashes with references: 0" in out


def test_a_study_without_a_step_says_which_steps_exist():
    with pytest.raises(SystemExit, match="name a step"):
        run_builder("reward-study", [])
