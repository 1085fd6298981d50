"""Evaluation suites: files of prompts, one row per item, as JSONL or YAML.

A row has `prompt` and `category` (non-empty strings), `kind` (`instruction` by default,
`truthfulness` or `toxicity`) and, for truthfulness only, `correct` and `incorrect` (non-empty
lists of reference answers). A bad file raises one `SuiteError` naming the file, the line and the
field. Shipped suites live in `evaluation/` at the repository root; see `evaluation/README.md`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from ..paths import SUITES_DIR

Kind = Literal["instruction", "truthfulness", "toxicity"]
KINDS: tuple[Kind, ...] = ("instruction", "truthfulness", "toxicity")
SUITE_SUFFIXES = (".jsonl", ".yaml", ".yml")
_FIELDS = ("prompt", "category", "kind", "correct", "incorrect")


class SuiteError(ValueError):
    """A suite file cannot be used; the message names the file, the line and the field."""


@dataclass(frozen=True)
class SuiteRow:
    """One item of a suite. `row` is its 0-based position among the file's items (blank JSONL
    lines are not items), stable across runs, so it keys stored results."""

    suite: str
    row: int
    prompt: str
    category: str
    kind: Kind = "instruction"
    correct: tuple[str, ...] = ()
    incorrect: tuple[str, ...] = ()


def shipped_suites() -> dict[str, Path]:
    """The suites that come with the project, by name (file stem)."""
    if not SUITES_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(SUITES_DIR.iterdir()) if p.suffix in SUITE_SUFFIXES}


def resolve_suite(name_or_path: str | Path) -> Path:
    """A shipped suite's name (`instructions`) or a path to a suite file."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_suites()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    names = ", ".join(shipped) or "none"
    raise SuiteError(f"{name_or_path}: no such suite file, and not a shipped suite (shipped: {names})")


def load_suite(name_or_path: str | Path) -> list[SuiteRow]:
    """All rows of a suite file (JSONL or YAML), validated."""
    path = resolve_suite(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SuiteError(f"{path}: cannot be read ({error})") from error
    if path.suffix == ".jsonl":
        items = _jsonl_items(path, text)
    elif path.suffix in (".yaml", ".yml"):
        items = _yaml_items(path, text)
    else:
        raise SuiteError(f"{path}: a suite is a .jsonl, .yaml or .yml file")
    if not items:
        raise SuiteError(f"{path}: the suite has no rows")
    return [_row(path.stem, index, raw, where, path) for index, (raw, where) in enumerate(items)]


def load_suites(names_or_paths) -> list[SuiteRow]:
    rows: list[SuiteRow] = []
    for name in names_or_paths:
        rows.extend(load_suite(name))
    return rows


# --- readers: (raw item, "where" for messages) ------------------------------------------------


def _jsonl_items(path: Path, text: str) -> list[tuple[object, str]]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((json.loads(line), f"line {number}"))
        except json.JSONDecodeError as error:
            raise SuiteError(f"{path}: line {number}: not valid JSON ({error.msg} at column {error.colno})") from error
    return items


def _yaml_items(path: Path, text: str) -> list[tuple[object, str]]:
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)  # the same document as nodes: they carry line numbers
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise SuiteError(f"{path}: {where}not valid YAML ({getattr(error, 'problem', None) or error})") from error
    nodes = None
    if isinstance(data, dict):
        if "rows" not in data:
            raise SuiteError(f"{path}: a YAML suite is a list of rows or a mapping with `rows:`")
        data = data["rows"]
        nodes = next((value for key, value in root.value if key.value == "rows"), None)
    else:
        nodes = root
    if not isinstance(data, list):
        raise SuiteError(f"{path}: field 'rows': must be a list of rows")
    node_items = nodes.value if isinstance(nodes, yaml.SequenceNode) else []
    items = []
    for index, raw in enumerate(data):
        line = f" (line {node_items[index].start_mark.line + 1})" if index < len(node_items) else ""
        items.append((raw, f"item {index}{line}"))
    return items


# --- validation --------------------------------------------------------------------------------


def _row(suite: str, index: int, raw, where: str, path: Path) -> SuiteRow:
    def fail(field: str | None, problem: str):
        named = f"field '{field}': " if field else ""
        raise SuiteError(f"{path}: {where}: {named}{problem}")

    if not isinstance(raw, dict):
        fail(None, f"a row must be an object with {', '.join(_FIELDS[:2])}, got {type(raw).__name__}")
    for field in raw:
        if field not in _FIELDS:
            fail(field, f"unknown field (a row has {', '.join(_FIELDS)})")
    for field in ("prompt", "category"):
        if field not in raw:
            fail(field, "required")
        if not isinstance(raw[field], str) or not raw[field].strip():
            fail(field, "must be a non-empty string")
    kind = raw.get("kind", "instruction")
    if kind not in KINDS:
        fail("kind", f"must be one of {', '.join(KINDS)} (got {kind!r})")
    answers: dict[str, tuple[str, ...]] = {}
    for field in ("correct", "incorrect"):
        if kind != "truthfulness":
            if field in raw:
                fail(field, "only a truthfulness row has reference answers")
            continue
        if field not in raw:
            fail(field, "required for kind truthfulness")
        value = raw[field]
        if not isinstance(value, list) or not value:
            fail(field, "must be a non-empty list of strings")
        if not all(isinstance(item, str) and item.strip() for item in value):
            fail(field, "every reference answer must be a non-empty string")
        answers[field] = tuple(value)
    return SuiteRow(
        suite=suite,
        row=index,
        prompt=raw["prompt"],
        category=raw["category"],
        kind=kind,
        correct=answers.get("correct", ()),
        incorrect=answers.get("incorrect", ()),
    )
