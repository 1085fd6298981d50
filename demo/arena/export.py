"""Votes back into the reward model's data, in TRL's formats.

- decisive votes (A or B better) → TRL's *preference* format, one line per vote:
  {"prompt", "chosen", "rejected"} (plus "category" and "battle_id", which TRL ignores);
- ties and "both are bad" → TRL's *unpaired* format (as for KTO), one line per answer:
  {"prompt", "completion", "label"}: a tie says both answers are acceptable (True), "both are
  bad" that neither is (False).

Votes whose answer named its model are exported too (they are real preferences; only the
ratings leave them out). Votes cast faster than the answers could be read are not: they are
what a script stuffing votes would send. `load_vote_pairs` reads the preference file back for
`train-reward --with-votes`, and `split_votes` keeps a held-out share, by prompt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..preferences import PreferencePair, prompt_key, split_position
from .store import VoteRecord

VOTE_ASPECT, VOTE_FLAW = "arena vote", "human preference"
HELD_OUT_FRACTION = 0.25


@dataclass(frozen=True)
class Exported:
    pairs_path: Path
    unpaired_path: Path
    pairs: int
    unpaired: int


def unpaired_path_for(path: Path) -> Path:
    """`votes.jsonl` → `votes.unpaired.jsonl`, next to it."""
    return path.with_name(f"{path.stem}.unpaired{path.suffix or '.jsonl'}")


def preference_rows(votes: Sequence[VoteRecord]) -> list[dict]:
    rows = []
    for vote in votes:
        if vote.winner not in ("A", "B") or vote.answer_a == vote.answer_b:
            continue
        chosen, rejected = (vote.answer_a, vote.answer_b) if vote.winner == "A" else (vote.answer_b, vote.answer_a)
        rows.append(
            {
                "prompt": vote.prompt,
                "chosen": chosen,
                "rejected": rejected,
                "category": vote.category,
                "battle_id": vote.battle_id,
            }
        )
    return rows


def unpaired_rows(votes: Sequence[VoteRecord]) -> list[dict]:
    rows = []
    for vote in votes:
        if vote.winner in ("tie", "bad"):
            for answer in (vote.answer_a, vote.answer_b):
                rows.append(
                    {
                        "prompt": vote.prompt,
                        "completion": answer,
                        "label": vote.winner == "tie",
                        "category": vote.category,
                        "battle_id": vote.battle_id,
                    }
                )
    return rows


def _write(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def export_trl(votes: Sequence[VoteRecord], out: str | Path) -> Exported:
    out = Path(out)
    votes = [vote for vote in votes if not vote.too_fast]
    pairs, unpaired = preference_rows(votes), unpaired_rows(votes)
    _write(pairs, out)
    _write(unpaired, unpaired_path_for(out))
    return Exported(out, unpaired_path_for(out), len(pairs), len(unpaired))


def load_vote_pairs(path: str | Path) -> list[PreferencePair]:
    """The exported preference file as training pairs (aspect "arena vote")."""
    pairs = []
    text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pairs.append(
                PreferencePair(
                    row["prompt"],
                    row["chosen"],
                    row["rejected"],
                    row.get("category") or "typed",
                    VOTE_ASPECT,
                    VOTE_FLAW,
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(
                f'{path}:{number}: expected a TRL preference line {{"prompt", "chosen", "rejected"}}: {error}'
            ) from None
    return pairs


def split_votes(pairs: Sequence[PreferencePair], fraction: float = HELD_OUT_FRACTION) -> tuple[list, list]:
    """(train, held-out) by prompt, in sha256 order (stable, no random state): at least one
    prompt is held out once there are two."""
    keys = sorted({prompt_key(p.prompt) for p in pairs}, key=lambda k: (split_position(k), k))
    count = 0 if len(keys) < 2 else max(1, round(fraction * len(keys)))
    held = set(keys[:count])
    return ([p for p in pairs if prompt_key(p.prompt) not in held], [p for p in pairs if prompt_key(p.prompt) in held])


def vote_card_section(votes: dict) -> str:
    """The model card's record of a `train-reward --with-votes` run."""
    before, after = votes["before"], votes["after"]

    def pct(value):
        return "–" if value is None or value != value else f"{100 * value:.1f}%"

    return f"""
## Trained with arena votes

`python -m demo train-reward --with-votes {votes["file"]}` added {votes["train_votes"]} blind-vote
pairs to the written training pairs and kept {votes["heldout_votes"]} votes (by prompt) held out.
"Before" is the same head trained with the same seed on the written pairs alone.

| | held-out written pairs (n={votes["heldout_written"]}) | held-out votes (n={votes["heldout_votes"]}) |
|---|---|---|
| before (written only) | {pct(before["written"])} | {pct(before["votes"])} |
| after (written + votes) | {pct(after["written"])} | {pct(after["votes"])} |

A handful of votes moves these by noise only; the numbers say the votes were used, not that
they helped.
"""


@dataclass(frozen=True)
class VoteTraining:
    """Vote pairs for `train-reward --with-votes`: the file, and its train / held-out split."""

    file: str
    train: tuple[PreferencePair, ...]
    test: tuple[PreferencePair, ...]

    @classmethod
    def from_file(cls, path: str | Path, fraction: float = HELD_OUT_FRACTION) -> VoteTraining:
        pairs = load_vote_pairs(path)
        if not pairs:
            raise ValueError(f"{path}: no vote pairs (export some with `python -m demo votes export`)")
        train, test = split_votes(pairs, fraction)
        return cls(str(path), tuple(train), tuple(test))


def train_with_votes(written_fit, votes: VoteTraining, train, test, features, fit, accuracy):
    """Refit the head on the written train pairs plus the vote train pairs; measure the
    written-only head ("before") and the new one ("after") on held-out written pairs and votes.

    `features(pairs)`, `fit(chosen, rejected)` and `accuracy(head, chosen, rejected)` are the
    reward trainer's own functions, so this module stays free of torch."""
    import torch

    vote_test = features(votes.test) if votes.test else None
    new_fit = written_fit
    if votes.train:
        vote_train = features(votes.train)
        new_fit = fit(torch.cat([train.chosen, vote_train.chosen]), torch.cat([train.rejected, vote_train.rejected]))

    def measure(head) -> dict:
        return {
            "written": accuracy(head, test.chosen, test.rejected),
            "votes": accuracy(head, vote_test.chosen, vote_test.rejected) if vote_test is not None else None,
        }

    report = {
        "file": votes.file,
        "train_votes": len(votes.train),
        "heldout_votes": len(votes.test),
        "heldout_written": len(test.pairs),
        "before": measure(written_fit.head),
        "after": measure(new_fit.head),
    }
    report["card"] = vote_card_section(report)
    return new_fit, report


def accuracy_lines(votes: dict) -> str:
    """What `train-reward --with-votes` prints: pair accuracy before and after, on both held-out sets."""

    def pct(value):
        return "–" if value is None or value != value else f"{100 * value:.1f}%"

    return "\n".join(
        [
            f"votes: {votes['train_votes']} trained on, {votes['heldout_votes']} held out ({votes['file']})",
            f"{'':24} {'held-out written':>18} {'held-out votes':>16}",
            f"{'before (written only)':24} {pct(votes['before']['written']):>18} {pct(votes['before']['votes']):>16}",
            f"{'after (written + votes)':24} {pct(votes['after']['written']):>18} {pct(votes['after']['votes']):>16}",
        ]
    )
