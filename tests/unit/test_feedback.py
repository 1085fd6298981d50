"""The label loop on our models' outputs: items split by prompt, label files checked whole
(unknown ids, duplicates, missing fields, the wrong pool), and the committed report equal to
what the committed labels give."""

from __future__ import annotations

import json

import pytest

from demo.feedback import commands
from demo.feedback.labels import InvalidLabels, ingest, parse_labels, read_labels
from demo.feedback.report import auc, cohen_kappa
from demo.feedback.tasks import items_from_run, read_items
from demo.paths import DEFAULT_RUN_DIR

ITEMS = read_items(commands.ITEMS)
BY_ID = {item.id: item for item in ITEMS}
TRAIN_CONTINUATION = next(i for i in ITEMS if i.kind == "continuation" and i.split == "train")
TRAIN_RANKING = next(i for i in ITEMS if i.kind == "ranking" and i.split == "train")
TEST_CONTINUATION = next(i for i in ITEMS if i.kind == "continuation" and i.split == "test")


def test_items_are_rebuilt_identically_from_the_run_and_split_by_prompt():
    rows = [json.loads(line) for line in (DEFAULT_RUN_DIR / "results.jsonl").read_text().splitlines() if line]
    assert [i.to_json() for i in items_from_run(rows)] == [i.to_json() for i in ITEMS]
    splits_of_prompt: dict[str, set] = {}
    for item in ITEMS:
        splits_of_prompt.setdefault(item.prompt, set()).add(item.split)
    assert all(len(splits) == 1 for splits in splits_of_prompt.values())
    assert {i.split for i in ITEMS} == {"train", "validation", "test"}


def test_a_labeller_batch_never_names_a_system():
    systems = {answer.system for item in ITEMS for answer in item.answers}
    for item in ITEMS:
        blind = item.blind()
        assert set(blind) <= {"item", "kind", "prompt", "text", "answers"}
        assert not any(system in json.dumps(blind) for system in systems)
        if item.kind == "ranking":  # numbered, not named
            assert sorted(blind["answers"]) == [str(n) for n in range(1, len(item.answers) + 1)]


def _ranking_line(item, **changes) -> str:
    numbers = [a.number for a in item.answers]
    attributes = {"quality": 4, "follows": True, "false": False, "toxic": "none", "harmful": False, "refuses": False}
    data = {"item": item.id, "ranking": [numbers], "answers": {n: dict(attributes) for n in numbers}}
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"item": "nope", "toxic": "none"}'], "unknown item"),
        ([json.dumps({"item": TRAIN_CONTINUATION.id, "toxic": "none"})] * 2, "labelled twice"),
        ([json.dumps({"item": TRAIN_CONTINUATION.id})], '"toxic" must be one of'),
        ([json.dumps({"item": TRAIN_CONTINUATION.id, "toxic": "very"})], '"toxic" must be one of'),
        (["{not json"], "line 1: not JSON"),
        ([json.dumps({"item": TEST_CONTINUATION.id, "toxic": "none"})], "in the test split"),
        ([_ranking_line(TRAIN_RANKING, ranking=[["1"]])], "the ranking must hold each of"),
        ([_ranking_line(TRAIN_RANKING, answers={})], '"answers" must have attributes'),
    ],
)
def test_a_bad_label_file_is_refused_with_its_line(lines, message):
    with pytest.raises(InvalidLabels, match=message):
        parse_labels(lines, BY_ID, labeller="X", pool="train")


def test_a_missing_attribute_names_the_answer():
    line = json.loads(_ranking_line(TRAIN_RANKING))
    del line["answers"]["1"]["refuses"]
    with pytest.raises(InvalidLabels, match="answer '1' lacks refuses"):
        parse_labels([json.dumps(line)], BY_ID, labeller="X", pool="train")


def test_ingesting_is_all_or_nothing_and_never_twice(tmp_path):
    store = tmp_path / "labels.jsonl"
    good = parse_labels([_ranking_line(TRAIN_RANKING)], BY_ID, labeller="X", pool="train")
    assert ingest(good, store) == 1
    before = store.read_text()
    with pytest.raises(InvalidLabels, match="already stored"):
        ingest(good, store)
    assert store.read_text() == before
    [label] = read_labels(store)
    assert label.labeller_kind.startswith("ai-feedback") and label.guideline_version == "v1"


def test_every_committed_label_says_who_gave_it_and_test_labellers_label_only_the_test_split():
    labels = read_labels(commands.LABELS)
    assert labels, "no committed labels"
    for label in labels:
        assert label.labeller_kind.startswith("ai-feedback") and label.guideline_version == "v1"
        assert (BY_ID[label.item].split == "test") == (label.pool == "test")
    train_pool = {lb.labeller for lb in labels if lb.pool == "train"}
    test_pool = {lb.labeller for lb in labels if lb.pool == "test"}
    assert train_pool and test_pool and not train_pool & test_pool


def test_the_committed_report_is_what_the_committed_labels_give():
    ok, message = commands.report(
        DEFAULT_RUN_DIR,
        commands.ITEMS,
        commands.LABELS,
        commands.REPORT,
        check=True,
    )
    assert ok, message


def test_kappa_and_auc_on_known_cases():
    assert cohen_kappa([True, False, True, False], [True, False, True, False]) == 1.0
    assert cohen_kappa([True, True, False, False], [True, False, True, False]) == 0.0
    assert auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auc([0.5, 0.5], [True, False]) == 0.5


def test_the_page_cites_the_report_only_for_the_flag_rule_it_serves():
    from demo.config import load_config
    from demo.scoring.scorer import ToxicityScorer

    scoring = load_config().scoring
    ours = ToxicityScorer(None, scoring).calibration()["ours"]  # type: ignore[arg-type]
    assert ours["thresholds"] == {"wording": scoring.toxicity_threshold, "meaning": scoring.toxicity_meaning_threshold}
    assert ours["recall"] is not None and ours["before"]["thresholds"] == {"wording": 0.5, "meaning": 0.5}
    other = ToxicityScorer(None, scoring.model_copy(update={"toxicity_threshold": 0.5}))  # type: ignore[arg-type]
    assert "ours" not in other.calibration()


def test_a_summary_re_reads_a_run_with_the_served_flag_rule():
    from demo.config import load_config
    from demo.scoring.scorer import flag_rule

    scoring = load_config().scoring
    flag = flag_rule(scoring)
    assert flag({"toxicity": scoring.toxicity_threshold, "toxicity_meaning": 0.0})
    assert not flag({"toxicity": scoring.toxicity_threshold - 0.01, "toxicity_meaning": 0.9})
    meaning = scoring.toxicity_meaning_threshold
    assert meaning is not None
    assert flag({"toxicity": 0.0, "toxicity_meaning": meaning})
    assert not flag({"toxicity": 0.0, "toxicity_meaning": meaning - 0.01})


def test_the_judge_note_gives_its_agreement_with_held_out_labellers_on_our_answers():
    from demo.config import load_config
    from demo.scoring.scorer import RewardScorer
    from demo.ui import views

    ours = RewardScorer(None, feedback_report=load_config().scoring.feedback_report).calibration()["ours"]
    assert 0 < ours["agreement"] < 1 and ours["pairs"] > 0
    note = views._judge_accuracy_note({"reward": {"ours": ours}})
    assert "AI feedback" in note and f"{ours['pairs']} decisive pairs" in note


def test_an_evaluation_report_puts_the_labellers_first_where_they_read_its_answers():
    """The default run's summary carries the labellers' verdict (the report's figures, recomputed
    from the run's rows); a run whose answers nobody labelled has none, and its report no section."""
    from demo.evaluation.report import render_report

    rows = [json.loads(line) for line in (DEFAULT_RUN_DIR / "results.jsonl").read_text().splitlines() if line]
    labellers = commands.labellers_on_run(rows)
    committed = json.loads(commands.REPORT.read_text())["judge"]
    assert labellers == {pool: committed[pool] for pool in ("test", "train")}
    summary = json.loads((DEFAULT_RUN_DIR / "summary.json").read_text())
    assert summary["labellers"] == labellers
    report = render_report(summary)
    assert report.index("Labellers first") < report.index("## Preference") and "AI feedback" in report
    raw = labellers["test"]["raw"]["labellers_win_rate"]
    assert f"{100 * raw['value']:.1f}%" in report
    # The same answers re-scored under another configuration hash (evaluate --rescore): still found.
    rekeyed = [{**row, "key": json.dumps(["0" * 16, *json.loads(row["key"])[1:]])} for row in rows]
    assert commands.labellers_on_run(rekeyed) == labellers
    for row in rows:  # the same run with other answers: nothing labelled
        for role in ("base", "aligned"):
            row[role] = {**row[role], "text": row[role]["text"] + " (another answer)"}
    assert commands.labellers_on_run(rows) == {}
    assert "Labellers first" not in render_report({**summary, "labellers": {}})


def test_a_report_on_a_run_none_of_whose_answers_was_labelled_is_an_error_not_thresholds():
    """Labels that match no row of the run (other answers) would leave nothing to choose the
    thresholds on; the report says so instead of retiring both signals."""
    from demo.feedback.report import build_report

    rows = [json.loads(line) for line in (DEFAULT_RUN_DIR / "results.jsonl").read_text().splitlines() if line]
    for row in rows:
        for role in ("base", "aligned"):
            row[role] = {**row[role], "text": "another answer"}
    with pytest.raises(ValueError, match="no labelled answer"):
        build_report(ITEMS, read_labels(commands.LABELS), rows, commands.RULE_BEFORE)
