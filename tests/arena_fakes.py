"""Test doubles for the blind vote: workers that answer instantly with text naming their model
and input format, a scorer whose reward is the answer's length, and a vote record factory.
Not a test module."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from demo.compare import Comparator
from demo.generation.runner import Finished, Started, TextDelta


class FakeWorker:
    state = "ready"
    error = None
    info = SimpleNamespace(backend="fake", precision="none", load_seconds=0.0)

    def __init__(self, model_id: str, chat: bool, answers: dict | None = None, spec=None):
        self.model_id, self.chat, self.answers, self.spec = model_id, chat, answers or {}, spec
        self.requests = []

    def wait_ready(self, timeout=None):
        return True

    def stream(self, request, should_stop=lambda: False):
        self.requests.append(request)
        mode = "chat" if self.chat else request.base_mode
        text = self.answers.get(mode, f"answer {'x' * (len(self.model_id) + len(mode))} for {request.prompt}")
        yield Started(input_text=f"[{mode}] {request.prompt}", prompt_tokens=3)
        yield TextDelta(text=text, new_tokens=1)
        yield Finished(text=text, new_tokens=1, seconds=0.01, first_token_seconds=0.01, stop_reason="eos")

    def close(self):
        pass


@dataclass
class _Scores:
    reward: float

    def as_fields(self):
        return {"reward": self.reward, "toxicity": 0.0, "toxic": False}


class LengthScorer:
    reward_error = None

    def score(self, pairs):
        return [_Scores(len(answer) / 10) for _, answer in pairs]


def fake_comparator(config, answers: dict | None = None) -> Comparator:
    workers = {
        model_id: FakeWorker(
            model_id,
            config.models[model_id].prompt_format == "chat",
            (answers or {}).get(model_id),
            config.models[model_id],
        )
        for model_id in config.served_model_ids()
    }
    return Comparator(config, workers, LengthScorer())


def vote_record(battle_id: str, winner: str = "A", system_a=("m1", "raw"), system_b=("m2", "chat"), **overrides):
    from demo.arena.store import VoteRecord

    fields = dict(
        battle_id=battle_id,
        prompt="Name three colours.",
        category="typed",
        model_a=system_a[0],
        format_a=system_a[1],
        config_hash_a="h1",
        model_b=system_b[0],
        format_b=system_b[1],
        config_hash_b="h2",
        settings={"temperature": 0.7},
        seed=42,
        input_a="in a",
        input_b="in b",
        answer_a="red",
        answer_b="red, blue and yellow",
        reward_a=0.1,
        reward_b=0.9,
        positions={"A": "base", "B": "aligned"},
        winner=winner,
        judge="B",
        attributes={"A": ["fails_instruction"], "B": []},
    )
    fields.update(overrides)
    return VoteRecord(**fields)
