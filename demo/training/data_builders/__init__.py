"""The builders of inputs under data/ and of the studies behind its cards, each a module with a
`main(argv) -> exit code`, run as `python -m demo data <name> [args]` (the registry below)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Builder:
    module: str  # under demo.training.data_builders
    help: str


BUILDERS: dict[str, Builder] = {
    "rl-prompts": Builder("rl_prompts", "write data/rl/prompts.jsonl from the prompts written in the module"),
    "rl-prompts-check": Builder(
        "rl_prompts_check", "check data/rl/prompts.jsonl: counts, duplicates, overlap with every other prompt set"
    ),
    "heldout-preferences": Builder(
        "heldout_preferences",
        "write data/preferences/independent/heldout.jsonl from the pairs another writer wrote in the module",
    ),
    "heldout-preferences-check": Builder(
        "heldout_preferences_check", "check the independent preference set: labels, lengths, duplicates [FILE]"
    ),
    "align-examples": Builder(
        "align_examples", "answer three held-out prompts with the base and the named tuned models [sft] [rlhf]"
    ),
    "reward-faults": Builder(
        "reward_faults", "what the RL reward model likes that the judge does not (RL samples in the cache) [--rescore]"
    ),
    "reward-study": Builder(
        "reward_study", "the reward head's feature study: extract smollm2|gemma, cv, final, committed, retrain, card"
    ),
}


def run_builder(name: str, argv: list[str]) -> int:
    from importlib import import_module

    return import_module(f"{__name__}.{BUILDERS[name].module}").main(argv)
