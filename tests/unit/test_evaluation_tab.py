"""demo/ui/tabs/evaluate.py: the server's cap on what one visitor may queue, shipped suites only,
and the tab opening on the shipped default run (built without a browser)."""

from __future__ import annotations

import pytest

from demo.evaluation.runner import count_work
from demo.ui.tabs import evaluate


@pytest.mark.parametrize(
    "suite, samples", [("instructions", 1), ("instructions", 4), ("toxicity", 3), ("truthfulness", 99)]
)
def test_prompts_times_samples_stay_under_the_cap(suite, samples):
    plan = evaluate.plan_request(suite, samples, limit=60)
    assert plan.items == count_work(plan.options) <= 60
    assert 1 <= plan.options.samples <= evaluate.MAX_SAMPLES
    assert plan.capped == (plan.prompts < plan.rows)


def test_a_small_suite_runs_whole_under_a_large_cap():
    plan = evaluate.plan_request("toxicity", 1, limit=10_000)
    assert not plan.capped and plan.prompts == plan.rows == 48


@pytest.mark.parametrize("suite", ["../models.yaml", "/etc/passwd", "evaluation/instructions.jsonl", None])
def test_only_shipped_suites_are_accepted(suite):
    with pytest.raises(ValueError, match="suite must be one of"):
        evaluate.plan_request(suite, 1, limit=100)


def test_the_default_run_is_shipped_and_renders():
    summary = evaluate.load_summary(evaluate.DEFAULT_RUN_DIR)
    assert summary is not None, "results/evaluation/default-run/summary.json is missing"
    tables, win, truth, tox = evaluate.views(summary, "default")
    assert "win rate" in tables and win is not None and truth is not None and tox is not None
    assert evaluate.results_zip(evaluate.DEFAULT_RUN_DIR).is_file()
