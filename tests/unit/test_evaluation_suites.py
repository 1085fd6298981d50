"""demo/evaluation/suites.py: suite files load, and every mistake names the file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo.evaluation.suites import SuiteError, SuiteRow, load_suite, resolve_suite, shipped_suites


def write_jsonl(tmp_path: Path, rows, name: str = "suite.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def error_of(path) -> str:
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    return str(caught.value)


def test_shipped_suites_load_by_name():
    assert {"instructions", "truthfulness", "toxicity"} <= set(shipped_suites())
    rows = load_suite("instructions")
    assert len(rows) == 130 and rows[0].kind == "instruction" and rows[0].suite == "instructions"
    assert [r.row for r in rows] == list(range(130))
    truth = load_suite("truthfulness")
    assert all(r.kind == "truthfulness" and r.correct and r.incorrect for r in truth)
    assert {r.kind for r in load_suite("toxicity")} == {"toxicity"}


def test_path_and_defaults(tmp_path):
    path = write_jsonl(
        tmp_path, [{"prompt": "Say hi", "category": "chat"}, "", {"prompt": "Q?", "category": "open_qa"}]
    )
    assert resolve_suite(path) == path
    rows = load_suite(path)
    assert rows == [
        SuiteRow("suite", 0, "Say hi", "chat", "instruction"),
        SuiteRow("suite", 1, "Q?", "open_qa", "instruction"),
    ]


def test_unknown_suite_lists_the_shipped_ones():
    message = str(pytest.raises(SuiteError, resolve_suite, "nope").value)
    assert "nope" in message and "instructions" in message


def test_missing_field_names_line_and_field(tmp_path):
    path = write_jsonl(tmp_path, [{"prompt": "a", "category": "chat"}, {"prompt": "b"}])
    message = error_of(path)
    assert str(path) in message and "line 2" in message and "'category'" in message and "required" in message


def test_bad_kind(tmp_path):
    message = error_of(write_jsonl(tmp_path, [{"prompt": "a", "category": "chat", "kind": "poetry"}]))
    assert "line 1" in message and "'kind'" in message and "poetry" in message


def test_bad_json_line_counts_blank_lines(tmp_path):
    path = write_jsonl(tmp_path, [{"prompt": "a", "category": "chat"}, "", '{"prompt": "b", "category":'])
    message = error_of(path)
    assert "line 3" in message and "JSON" in message


def test_truthfulness_needs_references(tmp_path):
    rows = [{"prompt": "Are bats blind?", "category": "science", "kind": "truthfulness", "incorrect": ["Yes."]}]
    message = error_of(write_jsonl(tmp_path, rows))
    assert "line 1" in message and "'correct'" in message and "truthfulness" in message
    rows[0]["correct"] = []
    assert "non-empty list" in error_of(write_jsonl(tmp_path, rows))


def test_empty_strings_and_unknown_fields(tmp_path):
    assert "'prompt'" in error_of(write_jsonl(tmp_path, [{"prompt": "  ", "category": "chat"}]))
    assert "'corect'" in error_of(write_jsonl(tmp_path, [{"prompt": "a", "category": "chat", "corect": ["x"]}]))
    message = error_of(write_jsonl(tmp_path, [{"prompt": "a", "category": "chat", "correct": ["x"]}]))
    assert "'correct'" in message and "only a truthfulness row" in message


def test_yaml_list_and_rows_mapping(tmp_path):
    listed = tmp_path / "listed.yaml"
    listed.write_text("- prompt: Say hi\n  category: chat\n- prompt: Name a fruit\n  category: open_qa\n")
    assert [r.prompt for r in load_suite(listed)] == ["Say hi", "Name a fruit"]
    mapped = tmp_path / "mapped.yml"
    mapped.write_text(
        "name: mine\nrows:\n  - prompt: Are bats blind?\n    category: science\n    kind: truthfulness\n"
        "    correct: [No.]\n    incorrect: [Yes.]\n"
    )
    (row,) = load_suite(mapped)
    assert row.suite == "mapped" and row.correct == ("No.",) and row.incorrect == ("Yes.",)


def test_yaml_error_names_item_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- prompt: a\n  category: chat\n\n- prompt: b\n  kind: toxicity\n")
    message = error_of(path)
    assert "item 1 (line 4)" in message and "'category'" in message
    path.write_text("- prompt: [unclosed\n")
    assert "line" in error_of(path) and "YAML" in error_of(path)
    path.write_text("name: no rows here\n")
    assert "rows" in error_of(path)
