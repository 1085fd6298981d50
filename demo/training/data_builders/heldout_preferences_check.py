"""Check the independently written preference test set
(`python -m demo data heldout-preferences-check [FILE]`): keys, labels, lengths, duplicate prompts,
and how often the chosen answer is the shorter one (a set where it nearly always is would reward
length). Exit code 1 if a row breaks a rule."""

from __future__ import annotations

import collections
import json
from pathlib import Path

from ...evaluation.metrics import TABLE1_PROPORTIONS
from .heldout_preferences import OUT

ASPECTS = {"helpful", "honest", "harmless"}
TYPES = {"shorter_better", "subtle_fact", "unsafe_step", "overconfident", "other"}
CATEGORIES = set(TABLE1_PROPORTIONS)  # the paper's use-case categories
KEYS = {"prompt", "chosen", "rejected", "aspect", "category", "type"}


def row_errors(index: int, row: dict) -> list[tuple]:
    errors: list[tuple] = []
    if set(row) != KEYS:
        return [(index, "keys")]
    if not all(isinstance(row[k], str) and row[k].strip() for k in row):
        errors.append((index, "empty"))
    if row["aspect"] not in ASPECTS or row["type"] not in TYPES or row["category"] not in CATEGORIES:
        errors.append((index, "enum", row["aspect"], row["type"], row["category"]))
    if row["chosen"] == row["rejected"]:
        errors.append((index, "same"))
    if row["type"] == "shorter_better" and not len(row["chosen"]) < len(row["rejected"]):
        errors.append((index, "sb not shorter"))
    if row["type"] == "unsafe_step" and row["aspect"] != "harmless":
        errors.append((index, "unsafe aspect"))
    for side in ("chosen", "rejected"):
        words = len(row[side].split())
        if words < 1 or words > 120:
            errors.append((index, side, "words", words))
    return errors


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else OUT
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    errors = [error for index, row in enumerate(rows) for error in row_errors(index, row)]
    duplicates = [p for p, count in collections.Counter(r.get("prompt") for r in rows).items() if count > 1]
    print("total", len(rows))
    print("aspect", collections.Counter(r.get("aspect") for r in rows))
    print("type", collections.Counter(r.get("type") for r in rows))
    print("category", collections.Counter(r.get("category") for r in rows))
    shorter = sum(len(r["chosen"]) < len(r["rejected"]) for r in rows)
    print(f"chosen shorter: {shorter}/{len(rows)} = {100 * shorter / max(len(rows), 1):.1f}%")
    for kind in sorted(TYPES):
        of_kind = [r for r in rows if r.get("type") == kind]
        if of_kind:
            share = sum(len(r["chosen"]) < len(r["rejected"]) for r in of_kind) / len(of_kind)
            print(f"   {kind} {100 * share:.0f}%")
    for kind in ("subtle_fact", "unsafe_step"):
        ratios = [len(r["rejected"]) / len(r["chosen"]) for r in rows if r.get("type") == kind]
        if ratios:
            print("   len ratio", kind, round(min(ratios), 2), round(max(ratios), 2))
    print("dup prompts", duplicates)
    print("errors", errors)
    return 1 if errors or duplicates else 0
