"""demo/evaluation/token_shift.py: the token-shift view over a run's stored answers (tiny models)."""

from __future__ import annotations

import json

import pytest
from tiny_models import TINY_SAME_FAMILY_PAIR

from demo.evaluation.token_shift import report_markdown, run_token_shift, shift_jobs, summarise
from demo.token_shift import shift_kind

ANSWERS = {
    ("generation", 0): "Once upon a time there was a lighthouse.",
    ("generation", 1): "The sea was grey and the keeper was old.",
    ("open_qa", 2): "Paris is the capital of France.",
}


def write_run(folder, config):
    """A run folder whose results.jsonl holds answers of the one-family pair and of the other."""
    folder.mkdir(parents=True)
    rows = []
    for (category, row), text in ANSWERS.items():
        for pair in (TINY_SAME_FAMILY_PAIR, config.default_pair.id):
            rows.append(
                {
                    "key": json.dumps(["h", "instructions", row, pair]),
                    "suite": "instructions",
                    "row": row,
                    "prompt": f"Question {row}?",
                    "instruction": None,
                    "category": category,
                    "pair": pair,
                    "base_format": "raw",
                    "base": {"text": "whatever", "error": None},
                    "aligned": {"text": text, "error": None},
                }
            )
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def test_only_one_family_answers_are_ranked_and_the_rest_is_said(tiny_stages_config, tmp_path):
    run = write_run(tmp_path / "run", tiny_stages_config)
    jobs, skipped = shift_jobs(tiny_stages_config, [run])
    assert [job.pair for job in jobs] == [TINY_SAME_FAMILY_PAIR] * 3
    assert {job.before for job in jobs} == {tiny_stages_config.pair(TINY_SAME_FAMILY_PAIR).base}
    assert len(skipped) == 1 and "families" in skipped[0]


def test_a_run_writes_records_summary_report_and_chart_and_resumes(tiny_stages_config, llama_runner, tmp_path):
    run = write_run(tmp_path / "run", tiny_stages_config)
    out = tmp_path / "out"
    calls = []
    summary = run_token_shift(tiny_stages_config, [run], out, progress=lambda done, total: calls.append(total))
    records = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert len(records) == 3 and calls[-1] == 3
    for record in records:
        text = ANSWERS[(record["category"], json.loads(record["key"].split(":", 1)[1])[2])]
        assert "".join(t for t, _, _ in record["tokens"]) == text
        # The ranks are the before model's: the tiny SFT stage is the tiny chat checkpoint (and
        # so is the model that wrote the answer, the control).
        direct = llama_runner.token_shift(f"Question {json.loads(record['key'].split(':', 1)[1])[2]}?", text)
        assert [rank for _, rank, _ in record["tokens"]] == [t.rank for t in direct.tokens]
        assert [own for _, _, own in record["tokens"]] == [t.rank for t in direct.tokens]
        assert record["base_format"] == "chat"  # the before model is a chat model
    (step,) = summary["steps"]
    ranks = [rank for r in records for _, rank, _ in r["tokens"]]
    per_answer = [sum(shift_kind(k) == "shifted" for _, k, _ in r["tokens"]) / len(r["tokens"]) for r in records]
    assert step["answers"] == 3 and step["tokens"] == len(ranks)
    assert abs(step["shifted_share"] - sum(per_answer) / 3) < 1e-9
    assert step["shifted_share_ci"][0] <= step["shifted_share"] <= step["shifted_share_ci"][1]
    assert step["self_shifted_share"] == step["shifted_share"] and step["step_shifted_share"] == 0.0
    assert [c["category"] for c in step["categories"]] == ["generation", "open_qa"]
    assert all(t["shifted"] <= t["occurrences"] for t in step["most_shifted"])
    assert (out / "shares.png").stat().st_size > 1000 and (out / "report.md").read_text() == report_markdown(summary)
    # A second run resumes: nothing is ranked again, the summary is the same; a last line a kill
    # cut short is ranked again, not a crash.
    with (out / "answers.jsonl").open("a") as sink:
        sink.write('{"key": "cut sh')
    calls.clear()
    again = run_token_shift(tiny_stages_config, [run], out, progress=lambda done, total: calls.append(total))
    assert calls == [] and again["steps"] == summary["steps"]


def test_most_shifted_tokens_are_counted_per_step():
    def record(tokens):
        return {"step": "s", "pair": "p", "base_format": "raw", "suite": "x", "category": "c", "seconds": 0.1,
                "tokens": tokens}  # fmt: skip

    # [text, rank under the before model, rank under the answer's own model]
    records = [
        record([["Sure", 9, 1], ["!", 1, 1], [" Sure", 5, 9], [" yes", 2, 1]]),
        record([["Sure", 1, 1], ["\n", 50, 1]]),
    ]
    (step,) = summarise(records)["steps"]
    assert step["most_shifted"][0] == {"token": "Sure", "shifted": 2, "occurrences": 3}
    assert step["shifted_share"] == (2 / 4 + 1 / 2) / 2  # "\n" is shifted too; it has no text to list
    assert step["self_shifted_share"] == (1 / 4 + 0) / 2
    assert step["step_shifted_share"] == pytest.approx(((2 / 4 - 1 / 4) + (1 / 2 - 0)) / 2)
