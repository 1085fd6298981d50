"""K answers per prompt sampled from our own policy, for labellers to rank: the paper's comparison
data, made of what the model being tuned actually writes (the RL step's reward model never saw
our policy's answers before).

`python -m demo feedback samples` samples through the served runtime (the ONNX batch decoder of
the evaluation, `generate_pair`), a chunk of prompts at a time. Every chunk is appended to a JSONL
checkpoint at once, so a stopped run resumes where it stopped. The samples then become blind
ranking items in the feedback schema (`demo/feedback/tasks.py`): one item per prompt with its
distinct answers, split by prompt, ranked by labellers following docs/labelling/guidelines.md.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...config import AppConfig
from ...evaluation.runner import generate_pair
from ...evaluation.token_shift import read_records
from ...feedback.tasks import Answer, Item, Split, item_id, split_of
from ...generation.runner import Failed, GenerationRequest
from ...settings import SamplingSettings, clamp_settings

# Prompts per round of the batch decoder: each round's rows are appended before the next starts.
CHUNK = 16
# The policy set is split by prompt with more weight on training than the outputs set: the RL
# reward model needs at least 400 training prompts of the 560 in data/rl/prompts.jsonl.
POLICY_SPLIT_SHARES = (0.75, 0.10, 0.15)


@dataclass(frozen=True)
class SampleSpec:
    """What decides the samples: the model, K, the answer length and the sampling (the page's
    settings by default, seeded per sample: sample k of every prompt uses seed `seed + k`)."""

    model_id: str
    k: int = 4
    max_new_tokens: int = 64
    seed: int = 0
    sampling: SamplingSettings | None = None

    def settings(self, config: AppConfig) -> SamplingSettings:
        base = self.sampling or SamplingSettings(**dict(config.generation))
        return clamp_settings(dataclasses.replace(base, max_new_tokens=self.max_new_tokens), config.limits)


def read_prompts(path: Path, limit: int | None = None) -> list[dict]:
    """{"prompt", "category"} rows of a prompt file (e.g. data/rl/prompts.jsonl), first `limit`."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit] if limit is not None else rows


def read_samples(checkpoint: Path) -> list[dict]:
    """The rows sampled so far: the evaluation's tolerant JSONL reader, so a line torn by a killed
    run (and anything appended onto it) is skipped, and its samples are drawn again on resume."""
    return read_records(checkpoint)


def sample_policy(
    config: AppConfig,
    worker,
    spec: SampleSpec,
    prompts: Sequence[dict],
    checkpoint: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """K samples of every prompt from `worker` (the spec's model), resuming from `checkpoint`:
    prompts whose K samples are stored are skipped; each finished chunk is appended and synced."""
    settings = spec.settings(config)
    done = {(row["prompt"], row["sample"]) for row in read_samples(checkpoint) if row.get("seed_base") == spec.seed}
    todo = [(row, k) for row in prompts for k in range(spec.k) if (row["prompt"], k) not in done]
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    total, finished = len(todo), 0
    for start in range(0, len(todo), CHUNK * spec.k):
        chunk = todo[start : start + CHUNK * spec.k]
        requests = {
            (index,): GenerationRequest(
                row["prompt"],
                dataclasses.replace(settings, seed=spec.seed + k),
                "raw",
                config.limits.max_prompt_tokens,
            )
            for index, (row, k) in enumerate(chunk)
        }
        started = time.perf_counter()
        _, answers = generate_pair({"base": worker, "aligned": worker}, {}, requests)
        seconds = round(time.perf_counter() - started, 2)
        lines = []
        for index, (row, k) in enumerate(chunk):
            answer = answers[(index,)]
            if isinstance(answer, Failed):
                raise RuntimeError(f"sampling {spec.model_id} failed: {answer.message}")
            record = {
                "prompt": row["prompt"],
                "category": row.get("category", ""),
                "model_id": spec.model_id,
                "sample": k,
                "seed_base": spec.seed,
                "seed": spec.seed + k,
                "text": answer.text,
                "new_tokens": answer.new_tokens,
                "stop_reason": answer.stop_reason,
                "chunk_seconds": seconds,
            }
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        with open(checkpoint, "a", encoding="utf-8") as file:
            file.write("".join(lines))
            file.flush()
        finished += len(chunk)
        if progress is not None:
            progress(finished, total)
    return read_samples(checkpoint)


def items_from_samples(
    samples: Sequence[dict], *, shares: Sequence[float] = POLICY_SPLIT_SHARES, seed: int = 0
) -> list[Item]:
    """One blind ranking item per prompt: its distinct, non-empty sampled answers (at least two),
    numbered in a shuffled order of the prompt's own (so items made from more samples later keep
    their numbers and labels); the system records which sample wrote each (hidden from
    labellers). Split by prompt with `shares`."""
    by_prompt: dict[str, list[dict]] = {}
    for row in samples:
        by_prompt.setdefault(row["prompt"], []).append(row)
    items = []
    for prompt in sorted(by_prompt):
        rows = sorted(by_prompt[prompt], key=lambda r: r["sample"])
        distinct: dict[str, dict] = {}
        for row in rows:
            if row["text"].strip():
                distinct.setdefault(row["text"], row)
        if len(distinct) < 2:
            continue
        chosen = list(distinct.values())
        random.Random(f"{seed}:{prompt}").shuffle(chosen)
        answers = tuple(
            Answer(
                str(n),
                f"{row['model_id']}:chat:sample{row['sample']}",
                row["text"],
                (json.dumps([row["model_id"], row["seed"]]),),
            )
            for n, row in enumerate(chosen, 1)
        )
        split: Split = split_of(prompt, shares)
        items.append(Item(item_id("ranking", prompt), "ranking", split, prompt, rows[0]["category"], None, answers))
    return items
