"""`python -m demo feedback tasks|ingest|report`: the label loop's three steps.

- `tasks`: the items of an evaluation run (data/feedback/items.jsonl) and, with `--batches DIR`,
  one blind batch per labeller (`--labeller NAME:POOL[:SUBSET]`, e.g. `T1:train`, `H3:test:0.2`);
  re-running on the same run gives the same items (ids are content hashes) and splits.
- `ingest FILE --labeller NAME --pool train|test`: one labeller's file, checked whole, then added
  to data/feedback/labels.jsonl in one atomic write (re-ingesting the same labeller is refused).
- `report`: agreement, the toxicity flag calibrated on the labels, the judge against the
  labellers; writes results/feedback/report.json (`--check`: fail if it would change).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from ..paths import DATA_DIR, RESULTS_DIR
from .labels import AI_FEEDBACK, GUIDELINE_VERSION, ingest, parse_labels, read_labels
from .policy_report import policy_report
from .report import build_report, judge_agreement, row_identity
from .tasks import Item, items_from_run, read_items, write_batch, write_items

ITEMS = DATA_DIR / "feedback" / "items.jsonl"
LABELS = DATA_DIR / "feedback" / "labels.jsonl"
# Our SFT policy's own samples, K per prompt, ranked for the RL step's reward model.
POLICY_ITEMS = DATA_DIR / "feedback" / "policy" / "items.jsonl"
POLICY_LABELS = DATA_DIR / "feedback" / "policy" / "labels.jsonl"
# `--set`: which labelled set a command reads and writes (items, labels).
LABEL_SETS = {"outputs": (ITEMS, LABELS), "policy": (POLICY_ITEMS, POLICY_LABELS)}
REPORT = RESULTS_DIR / "feedback" / "report.json"
POLICY_REPORT = RESULTS_DIR / "feedback" / "policy-report.json"
RULE_BEFORE = (0.5, 0.5)  # (wording, meaning): the flag rule the default run was scored with, before labels v1


def _run_rows(run: Path) -> list[dict]:
    path = run / "results.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def make_tasks(run: Path, items_path: Path, batches: Path | None, labellers: list[str]) -> str:
    items = items_from_run(_run_rows(run))
    write_items(items, items_path)
    lines = [f"{len(items)} items -> {items_path}"]
    if batches is not None:
        lines += write_batches(items, batches, labellers)
    return "\n".join(lines)


def labeller_items(items: Sequence[Item], spec: str) -> tuple[str, str, list[Item]]:
    """(name, pool, items) of one `NAME:POOL[:SHARE|:K/N]` spec: the pool's items (test split for
    the test pool, train and validation for the train pool); a SHARE in 0–1 is a random subset of
    that size (an overlap labeller), K/N the K-th of N disjoint parts (labellers sharing a set)."""
    name, pool, *part = spec.split(":")
    if pool not in ("train", "test"):
        raise ValueError(f"--labeller {spec!r}: the pool is train or test")
    own = sorted((i for i in items if (i.split == "test") == (pool == "test")), key=lambda i: i.id)
    if part and "/" in part[0]:
        k, n = (int(x) for x in part[0].split("/"))
        if not 1 <= k <= n:
            raise ValueError(f"--labeller {spec!r}: part K/N needs 1 <= K <= N")
        order = random.Random(f"parts-{pool}-{n}").sample(own, len(own))
        own = sorted(order[k - 1 :: n], key=lambda i: i.id)
    elif part:
        own = random.Random(name).sample(own, max(1, round(len(own) * float(part[0]))))
    return name, pool, own


def write_batches(items: Sequence[Item], batches: Path, labellers: list[str]) -> list[str]:
    """One blind batch per labeller spec (`labeller_items`), each in a shuffled order of its own."""
    lines = []
    for number, spec in enumerate(labellers):
        name, pool, own = labeller_items(items, spec)
        write_batch(own, batches / f"{name}.jsonl", seed=number)
        lines.append(f"{name} ({pool}): {len(own)} items -> {batches / (name + '.jsonl')}")
    return lines


def ingest_file(path: Path, labeller: str, pool: str, items_path: Path, store: Path, kind: str) -> str:
    items = {item.id: item for item in read_items(items_path)}
    labels = parse_labels(
        path.read_text(encoding="utf-8").splitlines(),
        items,
        labeller=labeller,
        pool=pool,  # type: ignore[arg-type]
        labeller_kind=kind,
        guideline_version=GUIDELINE_VERSION,
    )
    return f"{ingest(labels, store)} labels of {labeller} ({pool} pool, {kind}) -> {store}"


def labellers_on_run(run_rows: Sequence[dict], items_path: Path = ITEMS, store: Path = LABELS) -> dict:
    """For an evaluation run's rows: per labeller pool (held-out first) and base format, the
    labellers' win rate of the aligned answer beside the judge's on the same prompts and their
    agreement (`judge_agreement`); {} when none of the run's answers was labelled."""
    if not items_path.is_file() or not store.is_file():
        return {}
    items, labels = read_items(items_path), read_labels(store)
    by_id, rows = {item.id: item for item in items}, {row_identity(row["key"]): row for row in run_rows}
    found = {pool: judge_agreement(by_id, labels, rows, pool) for pool in ("test", "train")}
    return {pool: formats for pool, formats in found.items() if formats}


def report(run: Path, items_path: Path, store: Path, out: Path, check: bool) -> tuple[bool, str]:
    result = build_report(read_items(items_path), read_labels(store), _run_rows(run), RULE_BEFORE)
    return _write_or_check(out, json.dumps(result, indent=2, ensure_ascii=False) + "\n", check)


def _write_or_check(out: Path, text: str, check: bool) -> tuple[bool, str]:
    """Write a report; with `check`, only say whether the committed file differs from `text`."""
    if check:
        same = out.is_file() and out.read_text(encoding="utf-8") == text
        return same, "up to date" if same else f"{out} differs from what the committed labels give"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return True, text


def write_policy_report(check: bool) -> tuple[bool, str]:
    """results/feedback/policy-report.json from the policy set's items and labels (`check`: only
    say whether the committed file would change)."""
    report = policy_report(read_items(POLICY_ITEMS), read_labels(POLICY_LABELS))
    return _write_or_check(POLICY_REPORT, json.dumps(report, indent=1) + "\n", check)


__all__ = [
    "AI_FEEDBACK",
    "ITEMS",
    "LABELS",
    "LABEL_SETS",
    "POLICY_ITEMS",
    "POLICY_LABELS",
    "POLICY_REPORT",
    "REPORT",
    "ingest_file",
    "labellers_on_run",
    "make_tasks",
    "read_items",
    "report",
    "write_batches",
    "write_policy_report",
]
