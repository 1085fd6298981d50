"""A comparison and its sides, and a stages run and its sides: the state a run builds up,
whatever shows it.

In a comparison a side is keyed by its role in the pair (`base`, `aligned`) and names its model;
`positions` says which role is shown where, so a view can put the sides in any order (or hide who
is who, as a blind vote does). `to_json()` is the contract of `/compare` and `compare --json`.
A stages run holds one side per model of `stages:` in models.yaml, in stage order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .token_shift import ShiftResult


class ScoreKey:
    """The score keys of a side, one spelling each: `/compare`'s and `compare --json`'s JSON, the
    rows of stored runs, the scorers' `fields` and the views read these. Plain strings, not an
    enum: Gradio's JSON encoder (orjson) refuses dict keys that are str subclasses."""

    REWARD = "reward"
    REWARD_ERROR = "reward_error"
    TOXICITY = "toxicity"  # the wording classifier's probability
    TOXIC = "toxic"  # the served flag
    TOXICITY_LABELS = "toxicity_labels"
    TOXICITY_MEANING = "toxicity_meaning"  # the meaning head's probability, where configured
    TOXIC_REASON = "toxic_reason"  # which signal raised the flag


# The built-in keys a side carries as attributes; other scorers' keys go to `extra_scores`.
SCORE_FIELDS = (ScoreKey.REWARD, ScoreKey.TOXICITY, ScoreKey.TOXIC, ScoreKey.TOXICITY_LABELS, ScoreKey.REWARD_ERROR)


@dataclass
class SideState:
    """One model's answer as it streams, then its scores."""

    model: str
    model_id: str = ""
    input_text: str = ""
    text: str = ""
    new_tokens: int = 0
    seconds: float = 0.0
    first_token_seconds: float | None = None
    stop_reason: str | None = None
    done: bool = False
    error: str | None = None
    reward: float | None = None
    toxicity: float | None = None
    toxic: bool | None = None
    toxicity_labels: dict[str, float] | None = None
    reward_error: str | None = None
    extra_scores: dict[str, Any] = field(default_factory=dict)  # from scorers beyond the built-in keys
    # Where the model before this one's alignment step ranks each token (demo/token_shift.py):
    # set on an aligned side when the run asked for it.
    token_shift: ShiftResult | None = None

    @property
    def tokens_per_second(self) -> float | None:
        return self.new_tokens / self.seconds if self.seconds > 0 and self.new_tokens else None

    def apply_scores(self, scores: dict[str, Any]) -> None:
        """Take a scorer's output: the built-in keys by name, anything else into extra_scores."""
        for key, value in scores.items():
            if key in SCORE_FIELDS:
                setattr(self, key, value)
            else:
                self.extra_scores[key] = value

    def to_json(self) -> dict:
        data = {
            "model": self.model,
            "input_text": self.input_text,
            "text": self.text,
            "new_tokens": self.new_tokens,
            "seconds": round(self.seconds, 4),
        }
        data.update({key: getattr(self, key) for key in SCORE_FIELDS})
        data.update(self.extra_scores)
        data["error"] = self.error
        if self.token_shift is not None:
            data["token_shift"] = self.token_shift.to_json()
        return data


@dataclass
class Comparison:
    prompt: str
    base: SideState
    aligned: SideState
    preferred: str = "tie"
    p_aligned_preferred: float | None = None
    error: str | None = None
    pair: str | None = None
    positions: tuple[str, str] = ("base", "aligned")  # which role is shown first, second

    def side(self, role: str) -> SideState:
        if role not in ("base", "aligned"):
            raise KeyError(f"no side {role!r}")
        return self.base if role == "base" else self.aligned

    def side_at(self, position: int) -> SideState:
        """The side shown at screen position 0 or 1."""
        return self.side(self.positions[position])

    @property
    def sides(self) -> tuple[SideState, SideState]:
        """Both sides in role order (base, aligned), not screen order."""
        return self.base, self.aligned

    @property
    def done(self) -> bool:
        return self.base.done and self.aligned.done

    def to_json(self) -> dict:
        return {
            "prompt": self.prompt,
            "pair": self.pair,
            "base": self.base.to_json(),
            "aligned": self.aligned.to_json(),
            "preferred": self.preferred,
            "p_aligned_preferred": self.p_aligned_preferred,
            "error": self.error,
        }


@dataclass
class StagesRun:
    """One prompt through the stages view's models: a side per model, in stage order."""

    prompt: str
    sides: list[SideState]
    error: str | None = None

    @property
    def done(self) -> bool:
        return all(side.done for side in self.sides)


assert set(SCORE_FIELDS) <= {f.name for f in fields(SideState)}
