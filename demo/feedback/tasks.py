"""Label tasks from an evaluation run: every distinct answer our models wrote, blind.

Two kinds of item (docs/labelling/guidelines.md):
- `continuation`: one continuation of a toxicity sentence start, labelled toxic none/mild/severe;
- `ranking`: one instruction with every system's answer, ranked (ties allowed), each answer with
  the guideline's attributes.

Items are split by prompt (train / validation / test, a stable hash, so a prompt never sits in
two splits). `items.jsonl` keeps what a labeller must not see (which system wrote each answer,
the run's row keys); a labeller's batch holds only item ids, prompts and shuffled answers
numbered "1", "2", … .
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")
SPLIT_SHARES = (0.6, 0.2, 0.2)


@dataclass(frozen=True)
class Answer:
    number: str  # what the labeller sees: "1", "2", …
    system: str  # model id:format (hidden from labellers)
    text: str
    run_keys: tuple[str, ...]  # the evaluation rows this text came from (a text may repeat)


@dataclass(frozen=True)
class Item:
    id: str
    kind: Literal["continuation", "ranking"]
    split: Split
    prompt: str
    category: str
    instruction: str | None  # the toxicity suite's instruction variant (none / respectful / biased)
    answers: tuple[Answer, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Item:
        answers = tuple(Answer(**{**a, "run_keys": tuple(a["run_keys"])}) for a in data["answers"])
        return cls(**{**data, "answers": answers})

    def blind(self) -> dict:
        """What a labeller sees."""
        if self.kind == "continuation":
            return {"item": self.id, "kind": self.kind, "prompt": self.prompt, "text": self.answers[0].text}
        return {
            "item": self.id,
            "kind": self.kind,
            "prompt": self.prompt,
            "answers": {a.number: a.text for a in self.answers},
        }


def split_of(prompt: str, shares: Sequence[float] = SPLIT_SHARES) -> Split:
    """A stable split by prompt: the same prompt lands in the same split in every build."""
    value = int(hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    edge = 0.0
    for split, share in zip(SPLITS, shares):
        edge += share
        if value < edge:
            return split
    return SPLITS[-1]


def item_id(*parts: str) -> str:
    """An item's id: a content hash of its kind and text (the same text, the same id)."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:12]


def _system(side: dict, role: str, base_format: str) -> str:
    return f"{side['model_id']}:{base_format if role == 'base' else 'chat'}"


def items_from_run(rows: Iterable[dict], seed: int = 0) -> list[Item]:
    """Every distinct text of the run's instruction and toxicity rows as items (answers of one
    ranking item shuffled with `seed`)."""
    rng = random.Random(seed)
    texts: dict[tuple, dict[str, dict]] = {}  # (suite, prompt, instruction) -> system -> {text, keys}
    meta: dict[tuple, dict] = {}
    for row in rows:
        if row.get("suite") not in ("instructions", "toxicity") or row.get("error"):
            continue
        group = (row["suite"], row["prompt"], row.get("instruction"))
        meta[group] = {"category": row.get("category") or "", "instruction": row.get("instruction")}
        for role in ("base", "aligned"):
            side = row[role]
            if side.get("error") or not side.get("text", "").strip():
                continue
            system = _system(side, role, row["base_format"])
            entry = texts.setdefault(group, {}).setdefault(system, {"text": side["text"], "keys": []})
            entry["keys"].append(row["key"])
    items = []
    for (suite, prompt, instruction), by_system in sorted(texts.items(), key=lambda kv: str(kv[0])):
        split = split_of(prompt)
        info = meta[(suite, prompt, instruction)]
        if suite == "toxicity":
            for system, entry in sorted(by_system.items()):
                answer = Answer("1", system, entry["text"], tuple(entry["keys"]))
                item_id_ = item_id("continuation", prompt, instruction or "", entry["text"])
                items.append(Item(item_id_, "continuation", split, prompt, info["category"], instruction, (answer,)))
        else:
            systems = sorted(by_system)
            rng.shuffle(systems)
            answers = tuple(
                Answer(str(n), system, by_system[system]["text"], tuple(by_system[system]["keys"]))
                for n, system in enumerate(systems, 1)
            )
            items.append(Item(item_id("ranking", prompt), "ranking", split, prompt, info["category"], None, answers))
    return items


def write_items(items: Sequence[Item], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(item.to_json(), ensure_ascii=False) + "\n" for item in items)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def read_items(path: Path) -> list[Item]:
    return [Item.from_json(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_batch(items: Sequence[Item], path: Path, seed: int) -> None:
    """One labeller's batch: blind items in a shuffled order of its own."""
    order = list(items)
    random.Random(seed).shuffle(order)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(i.blind(), ensure_ascii=False) + "\n" for i in order), encoding="utf-8")
