"""What the policy label set holds (data/feedback/policy/): items per split, who labelled what,
and how often two labellers of the same prompt agree. `python -m demo feedback report --set
policy` writes it to results/feedback/policy-report.json; the data card quotes that file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import combinations

from .labels import Label
from .tasks import SPLITS, Item


def decisive_pairs(label: Label) -> list[tuple[str, str]]:
    """(better, worse) answer numbers for every two answers in different groups of a ranking."""
    assert label.ranking is not None
    return [
        (better, worse)
        for high, low in combinations(range(len(label.ranking)), 2)
        for better in label.ranking[high]
        for worse in label.ranking[low]
    ]


def labeller_agreement(labels: Sequence[Label]) -> dict:
    """Between two labellers of the same item: the share of the pairs decisive for both on which
    they agree (the ceiling a reward model can reach against either)."""
    by_item: dict[str, list[Label]] = {}
    for label in labels:
        if label.ranking is not None:
            by_item.setdefault(label.item, []).append(label)
    agreed = total = items = 0
    for item_labels in by_item.values():
        items += len(item_labels) > 1
        for first, second in combinations(item_labels, 2):
            order_first = {frozenset(p): p for p in decisive_pairs(first)}
            for pair in decisive_pairs(second):
                if frozenset(pair) in order_first:
                    total += 1
                    agreed += order_first[frozenset(pair)] == pair
    return {
        "items_with_two_labellers": items,
        "pairs_decisive_for_both": total,
        "agreement": round(agreed / total, 4) if total else None,
    }


def policy_report(items: Sequence[Item], labels: Sequence[Label]) -> dict:
    by_id = {item.id: item for item in items}
    rankings = [label for label in labels if label.ranking is not None and label.item in by_id]
    labellers = sorted({(lb.labeller, lb.pool, lb.labeller_kind, lb.guideline_version) for lb in rankings})
    count = Counter(label.labeller for label in rankings)
    labelled = {label.item for label in rankings}
    return {
        "items": {split: sum(item.split == split for item in items) for split in SPLITS},
        "labelled_items": {split: sum(by_id[i].split == split for i in labelled) for split in SPLITS},
        "answers_per_item": dict(sorted(Counter(len(item.answers) for item in items).items())),
        "labels": len(rankings),
        "labellers": [
            {"labeller": name, "pool": pool, "kind": kind, "guideline_version": version, "labels": count[name]}
            for name, pool, kind, version in labellers
        ],
        "rankings_with_a_tie": round(
            sum(any(len(group) > 1 for group in label.ranking or ()) for label in rankings) / len(rankings), 4
        )
        if rankings
        else None,
        "agreement": {
            pool: labeller_agreement([label for label in rankings if label.pool == pool]) for pool in ("train", "test")
        },
    }
