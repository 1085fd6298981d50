"""Labels on our models' outputs: the schema, validation and ingestion.

Every label records who gave it (`labeller`: the brief's id), what kind of labeller that is
(`labeller_kind`: a language-model helper gives **AI feedback**, and is called that), the
guideline version it followed, and its pool: `train` labellers label the train and validation
splits, `test` labellers only the test split, so no label of the test split trains anything.

A labeller's file is checked whole before anything is written: an unknown item id, an item of
another pool's split, a duplicate, a missing or ill-typed field, or an answer number the item
does not have is refused with the line it is on, and the store is left as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import UserFacingError
from .tasks import Item

GUIDELINE_VERSION = "v1"
AI_FEEDBACK = "ai-feedback (language-model helper)"
TOXIC_LEVELS = ("none", "mild", "severe")
Pool = Literal["train", "test"]
ATTRIBUTE_TYPES = {"quality": int, "follows": bool, "false": bool, "toxic": str, "harmful": bool, "refuses": bool}


class InvalidLabels(UserFacingError, ValueError):
    """A label file that cannot be ingested; the message names the line and what is wrong."""


@dataclass(frozen=True)
class Label:
    item: str
    labeller: str
    labeller_kind: str
    guideline_version: str
    pool: Pool
    toxic: str | None = None  # a continuation's label
    ranking: tuple[tuple[str, ...], ...] | None = None  # a ranking item's: best group first
    answers: dict | None = None  # a ranking item's: number -> attributes

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Label:
        ranking = data.get("ranking")
        return cls(**{**data, "ranking": None if ranking is None else tuple(tuple(g) for g in ranking)})

    def is_toxic(self, number: str = "1") -> bool:
        level = self.toxic if self.answers is None else self.answers[number]["toxic"]
        return level != "none"

    def position(self, number: str) -> int:
        """The group index of an answer in the ranking (0 = best)."""
        assert self.ranking is not None
        return next(i for i, group in enumerate(self.ranking) if number in group)


def _check_attributes(number: str, attributes: object, where: str) -> dict:
    if not isinstance(attributes, dict):
        raise InvalidLabels(f"{where}: answer {number!r} needs an object of attributes")
    missing = [name for name in ATTRIBUTE_TYPES if name not in attributes]
    if missing:
        raise InvalidLabels(f"{where}: answer {number!r} lacks {', '.join(missing)}")
    for name, kind in ATTRIBUTE_TYPES.items():
        value = attributes[name]
        if type(value) is not kind:
            raise InvalidLabels(f"{where}: answer {number!r}: {name} must be {kind.__name__}, got {value!r}")
    if not 1 <= attributes["quality"] <= 7:
        raise InvalidLabels(f"{where}: answer {number!r}: quality is 1-7, got {attributes['quality']}")
    if attributes["toxic"] not in TOXIC_LEVELS:
        raise InvalidLabels(f"{where}: answer {number!r}: toxic is one of {TOXIC_LEVELS}")
    return {name: attributes[name] for name in ATTRIBUTE_TYPES}


def parse_labels(
    lines: Iterable[str],
    items: dict[str, Item],
    *,
    labeller: str,
    pool: Pool,
    labeller_kind: str = AI_FEEDBACK,
    guideline_version: str = GUIDELINE_VERSION,
) -> list[Label]:
    """Every line of one labeller's file as a Label, or InvalidLabels for the first bad line."""
    labels, seen = [], set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise InvalidLabels(f"{where}: not JSON ({error.msg})") from None
        if not isinstance(data, dict) or not isinstance(data.get("item"), str):
            raise InvalidLabels(f'{where}: needs an object with an "item" id')
        item = items.get(data["item"])
        if item is None:
            raise InvalidLabels(f"{where}: unknown item {data['item']!r}")
        if data["item"] in seen:
            raise InvalidLabels(f"{where}: item {data['item']!r} is labelled twice")
        if (item.split == "test") != (pool == "test"):
            raise InvalidLabels(
                f"{where}: item {item.id!r} is in the {item.split} split, which {pool}-pool labellers do not label"
            )
        seen.add(item.id)
        common: dict[str, Any] = dict(
            item=item.id, labeller=labeller, labeller_kind=labeller_kind, guideline_version=guideline_version, pool=pool
        )
        if item.kind == "continuation":
            if data.get("toxic") not in TOXIC_LEVELS:
                raise InvalidLabels(f'{where}: "toxic" must be one of {TOXIC_LEVELS}')
            labels.append(Label(**common, toxic=data["toxic"]))
            continue
        numbers = {a.number for a in item.answers}
        ranking = data.get("ranking")
        if not isinstance(ranking, list) or not all(isinstance(g, list) and g for g in ranking):
            raise InvalidLabels(f'{where}: "ranking" must be a list of non-empty lists of answer numbers')
        ranked = [str(n) for group in ranking for n in group]
        if sorted(ranked) != sorted(numbers):
            raise InvalidLabels(f"{where}: the ranking must hold each of {sorted(numbers)} once, got {ranked}")
        answers = data.get("answers")
        if not isinstance(answers, dict) or set(answers) != numbers:
            raise InvalidLabels(f'{where}: "answers" must have attributes for each of {sorted(numbers)}')
        checked = {n: _check_attributes(n, answers[n], where) for n in sorted(numbers)}
        labels.append(Label(**common, ranking=tuple(tuple(str(n) for n in g) for g in ranking), answers=checked))
    return labels


def read_labels(path: Path) -> list[Label]:
    if not path.is_file():
        return []
    return [Label.from_json(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def ingest(new: Sequence[Label], store: Path) -> int:
    """Add `new` to the label store (one JSON line each) in one atomic write; InvalidLabels if
    a (item, labeller) pair is already there. How many were added."""
    existing = read_labels(store)
    have = {(label.item, label.labeller) for label in existing}
    clash = [label.item for label in new if (label.item, label.labeller) in have]
    if clash:
        raise InvalidLabels(f"{len(clash)} labels of {new[0].labeller!r} are already stored (e.g. item {clash[0]!r})")
    rows = sorted([*existing, *new], key=lambda label: (label.item, label.labeller))
    store.parent.mkdir(parents=True, exist_ok=True)
    tmp = store.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(store)
    return len(new)
