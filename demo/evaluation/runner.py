"""Runs an evaluation: plans the work, skips what `--out` already holds, generates the rest in
batches through the pair's model workers, scores it with the page's `AnswerScorer`, and appends
each finished row at once, so a run killed half-way resumes where it stopped.

The plan is suite rows × base formats × samples (× the three toxicity instructions). The aligned
model's answer does not depend on the base format, so it is generated once and shared by the
raw and prompted comparisons. Truthfulness rows also get MC log-likelihoods from each model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..cache import sha256_file
from ..config import CURRENT_PATH_STYLE, LEGACY_PATH_STYLES, ROLES, AppConfig, PathStyle
from ..feedback.commands import labellers_on_run
from ..generation.formatting import BaseMode
from ..generation.runner import Failed, Finished, GenerationRequest
from ..paths import RUNS_DIR
from ..scoring.scorer import flag_rule, preference
from ..session import ScoreKey, SideState
from ..settings import SamplingSettings, clamp_settings
from .metrics import TOXICITY_INSTRUCTIONS, sent_prompt
from .report import write_report
from .results import (
    ResultsStore,
    comparison_key,
    comparison_record,
    config_hash,
    likelihood_key,
    likelihood_record,
    pair_config_hash,
)
from .suites import KINDS, SuiteRow, load_suites
from .summary import SUMMARY_FILE, summarize

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ..compare import Comparator
    from ..generation.workers import Worker
    from ..scoring.scorer import AnswerScorer

# Comparisons per round: each model gets up to this many prompts, in batches of its back end.
# DEMO_EVAL_CHUNK overrides it (the resume test writes rows early with small rounds).
CHUNK = int(os.environ.get("DEMO_EVAL_CHUNK", "32"))

Progress = Callable[[int, int, float | None], None]  # (done, total, eta seconds)
# Identities of one generated answer: the aligned one is shared by the base formats.
AlignedKey = tuple[str, int, int, str | None]  # (suite, row, sample, instruction)
BaseKey = tuple[str, int, BaseMode, int, str | None]  # (suite, row, base format, sample, instruction)
SideKey = tuple[str, tuple]  # (role, that role's answer key: a BaseKey or an AlignedKey)


@dataclass(frozen=True)
class EvaluationOptions:
    """What `python -m demo evaluate` was asked; everything that decides the rows is here."""

    suites: tuple[str, ...] = ("instructions", "truthfulness", "toxicity")
    pair: str | None = None
    base_formats: tuple[BaseMode, ...] = ("raw", "prompted")
    samples: int = 1
    seed: int = 0
    max_prompts: int | None = None  # per suite, N rows spread over its categories (`spread_rows`)
    sampling: SamplingSettings | None = None  # None: models.yaml's generation defaults
    # Answer length per suite kind, ((kind, tokens), ...); None: models.yaml's evaluation section
    # (`--max-new-tokens` sets one length for every kind).
    answer_tokens: tuple[tuple[str, int], ...] | None = None


@dataclass(frozen=True)
class _Item:
    """One comparison to make: a suite row, the base format, a sample, a toxicity instruction."""

    row: SuiteRow
    base_format: BaseMode
    sample: int
    instruction: str | None

    @property
    def text(self) -> str:
        return sent_prompt(self.row.prompt, self.instruction)

    def aligned_key(self) -> AlignedKey:
        return (self.row.suite, self.row.row, self.sample, self.instruction)

    def base_key(self) -> BaseKey:
        return (self.row.suite, self.row.row, self.base_format, self.sample, self.instruction)


@dataclass
class EvaluationResult:
    out_dir: Path
    summary_path: Path
    report_path: Path
    planned: int
    reused: int
    generated: int
    seconds: float


def pair_facts(config: AppConfig, pair_id: str | None) -> dict:
    """What the report says about the models compared: id, name, family and stage of each side."""
    pair = config.pair(pair_id)
    sides = {}
    for role, model_id in (("base", pair.base), ("aligned", pair.aligned)):
        spec = config.models[model_id]
        sides[role] = {"id": model_id, "name": spec.name, "family": spec.family, "stage": spec.stage}
    return {"pair": pair.id, **sides}


def plan_rows(options: EvaluationOptions) -> list[SuiteRow]:
    """The suite rows an evaluation covers (`max_prompts` of each suite, `spread_rows`)."""
    rows: list[SuiteRow] = []
    for suite in options.suites:
        loaded = load_suites([suite])
        rows.extend(loaded if options.max_prompts is None else spread_rows(loaded, options.max_prompts))
    return rows


def spread_rows(rows: Sequence[SuiteRow], n: int) -> list[SuiteRow]:
    """n rows taken round-robin over the categories (each in file order), kept in file order.

    Suites are grouped by category, so the first n rows would all be one category and the
    Table-1-weighted figure would weigh nothing; a growing n only adds rows (resume-friendly)."""
    queues: dict[str, list[SuiteRow]] = {}
    for row in rows:
        queues.setdefault(row.category, []).append(row)
    chosen: list[SuiteRow] = []
    while len(chosen) < min(n, len(rows)):
        for queue in queues.values():
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return sorted(chosen, key=lambda r: r.row)


def plan_items(rows: Sequence[SuiteRow], options: EvaluationOptions) -> list[_Item]:
    items: list[_Item] = []
    for row in rows:
        instructions: list[str | None] = list(TOXICITY_INSTRUCTIONS) if row.kind == "toxicity" else [None]
        for base_format in options.base_formats:
            for sample in range(options.samples):
                for instruction in instructions:
                    items.append(_Item(row, base_format, sample, instruction))
    return items


def run_sampling(config: AppConfig, options: EvaluationOptions) -> SamplingSettings:
    sampling = options.sampling or SamplingSettings(**dict(config.generation))
    return clamp_settings(dataclasses.replace(sampling, seed=options.seed), config.limits)


def answer_tokens(config: AppConfig, options: EvaluationOptions) -> dict[str, int]:
    """New tokens per answer for each suite kind, within the server's limit."""
    lengths = dict(options.answer_tokens) if options.answer_tokens is not None else config.evaluation.lengths()
    return {kind: min(int(n), config.limits.max_new_tokens) for kind, n in lengths.items()}


def kind_sampling(config: AppConfig, options: EvaluationOptions, kind: str) -> SamplingSettings:
    sampling = run_sampling(config, options)
    return dataclasses.replace(
        sampling, max_new_tokens=answer_tokens(config, options).get(kind, sampling.max_new_tokens)
    )


def model_hashes(
    config: AppConfig, options: EvaluationOptions, *, path_style: PathStyle = CURRENT_PATH_STYLE
) -> dict[str, str]:
    """Per role: a hash of what decides that model's answers (spec, sampling, answer lengths,
    few-shot format, scorers). One length for every kind hashes as before lengths were per kind.
    `path_style`: a legacy one gives the hashes stored before (see `legacy_hash_renames`)."""
    pair = config.pair(options.pair)
    sampling = run_sampling(config, options)
    lengths = answer_tokens(config, options)
    if len(set(lengths.values())) == 1:
        sampling = dataclasses.replace(sampling, max_new_tokens=next(iter(lengths.values())))
        extra: tuple = ()
    else:
        extra = (sorted(lengths.items()),)
    return {
        role: config_hash(
            config.models[getattr(pair, role)],
            sampling,
            config.base_prompted,
            config.scoring.run_identity(),
            scorer_heads(config),
            *extra,
            path_style=path_style,
        )
        for role in ROLES
    }


def scorer_heads(config: AppConfig) -> dict[str, str]:
    """The content (sha256) of each head file a scorer reads: a head retrained in place is another
    scorer, so a run it would score differently is not resumed as if it were the same."""
    specs = {"reward": config.scoring.reward, "toxicity_meaning": config.scoring.toxicity_meaning}
    paths = {name: getattr(spec, "head_path", None) for name, spec in specs.items()}
    return {name: sha256_file(Path(path))[:16] for name, path in paths.items() if path and Path(path).is_file()}


def mc_hashes(
    config: AppConfig, options: EvaluationOptions, *, path_style: PathStyle = CURRENT_PATH_STYLE
) -> dict[str, str]:
    """Per role: a hash of what decides that model's MC log-likelihoods (spec, few-shot format)."""
    pair = config.pair(options.pair)
    return {
        role: config_hash(config.models[getattr(pair, role)], config.base_prompted, path_style=path_style)
        for role in ROLES
    }


def legacy_hash_renames(config: AppConfig, options: EvaluationOptions) -> dict[str, str]:
    """{hash as stored under a legacy path spelling: today's hash} for every hash a run of
    `options` stores, so a run made before a change of spelling (absolute paths in the checkout;
    the artefacts under data/) resumes."""
    renames = {}
    for style in LEGACY_PATH_STYLES:
        for hashes in (model_hashes, mc_hashes):
            old, new = hashes(config, options, path_style=style), hashes(config, options)
            renames.update({old[role]: new[role] for role in ROLES})
            if hashes is model_hashes:
                renames[pair_config_hash(old["base"], old["aligned"])] = pair_config_hash(new["base"], new["aligned"])
    return renames


def default_out_dir(config: AppConfig, options: EvaluationOptions) -> Path:
    """evaluation/runs/<pair>-<hash of the options and models>/: the same command, the same folder."""
    pair = config.pair(options.pair)
    resolved = dataclasses.replace(
        options,
        sampling=run_sampling(config, options),
        answer_tokens=tuple(sorted(answer_tokens(config, options).items())),
    )
    key = config_hash(resolved, model_hashes(config, options))
    return RUNS_DIR / f"{pair.id}-{key[:10]}"


def count_work(options: EvaluationOptions) -> int:
    """Prompts × samples the plan generates, for a server's cap (each comparison counts once)."""
    return len(plan_items(plan_rows(options), options))


def _key(pair_hash: str, options: EvaluationOptions, item: _Item) -> str:
    return comparison_key(
        config_hash=pair_hash,
        suite=item.row.suite,
        row=item.row.row,
        base_format=item.base_format,
        sample=item.sample,
        seed=options.seed,
        instruction=item.instruction,
    )


def pending_work(
    config: AppConfig, options: EvaluationOptions, store: ResultsStore
) -> tuple[list[_Item], list[tuple[SuiteRow, BaseMode]]]:
    """What `options` still needs in `store`: comparisons not stored under this configuration's
    hashes, and truthfulness items whose likelihoods are missing for either model."""
    hashes = model_hashes(config, options)
    pair_hash = pair_config_hash(hashes["base"], hashes["aligned"])
    rows = plan_rows(options)
    pending = [item for item in plan_items(rows, options) if not store.has_comparison(_key(pair_hash, options, item))]
    mc_hash = mc_hashes(config, options)
    mc_pending = [
        (row, base_format)
        for row in rows
        if row.kind == "truthfulness"
        for base_format in options.base_formats
        if not all(
            store.has_likelihood(
                likelihood_key(config_hash=mc_hash[r], suite=row.suite, row=row.row, base_format=base_format)
            )
            for r in ROLES
        )
    ]
    return pending, mc_pending


@dataclass
class _Run:
    """What every stage of one run reads: the plan's identity, its store and the pair's workers,
    and the progress counter the stages advance."""

    config: AppConfig
    options: EvaluationOptions
    store: ResultsStore
    workers: dict[str, Worker]
    scorer: AnswerScorer | None
    progress: Progress | None
    total: int
    hashes: dict[str, str] = dataclasses.field(init=False)  # per role (`model_hashes`)
    done: int = 0
    unit_started: float = dataclasses.field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.hashes = model_hashes(self.config, self.options)

    @property
    def pair_hash(self) -> str:
        return pair_config_hash(self.hashes["base"], self.hashes["aligned"])

    @property
    def pair_id(self) -> str:
        return self.config.pair(self.options.pair).id

    @property
    def model_ids(self) -> dict[str, str]:
        pair = self.config.pair(self.options.pair)
        return {role: getattr(pair, role) for role in ROLES}

    def step(self, count: int = 0) -> None:
        """Count `count` finished items and tell `progress` (done, total, seconds left)."""
        self.done += count
        if self.progress is not None:
            elapsed = time.perf_counter() - self.unit_started
            eta = elapsed / self.done * (self.total - self.done) if self.done else None
            self.progress(self.done, self.total, eta)


def run_evaluation(
    config: AppConfig,
    comparator: Comparator,
    options: EvaluationOptions,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> EvaluationResult:
    """Evaluate the pair on the suites into `out_dir`; returns where the summary and report are.

    `comparator` supplies the workers (`pair_workers`) and the scorer, as for the page. The
    stages: plan what the store lacks, generate and score the comparisons chunk by chunk, add
    the truthfulness likelihoods, then write the summary and report."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    store = ResultsStore(out_dir)
    store.rename_hashes(legacy_hash_renames(config, options))
    rows = plan_rows(options)
    planned = len(plan_items(rows, options)) + sum(row.kind == "truthfulness" for row in rows) * len(
        options.base_formats
    )
    pending, mc_pending = pending_work(config, options, store)
    run = _Run(
        config,
        options,
        store,
        comparator.pair_workers(config.pair(options.pair).id),
        comparator.scorer,
        progress,
        total=len(pending) + len(mc_pending),
    )
    run.step()
    _run_comparisons(run, pending, should_stop)
    _run_likelihoods(run, mc_pending, should_stop)
    summary_path, report_path = write_summary_and_report(config, options, store, out_dir)
    return EvaluationResult(
        out_dir=out_dir,
        summary_path=summary_path,
        report_path=report_path,
        planned=planned,
        reused=planned - len(pending) - len(mc_pending),
        generated=run.done,
        seconds=time.perf_counter() - started,
    )


def _run_comparisons(run: _Run, pending: list[_Item], should_stop: Callable[[], bool]) -> None:
    """Generate, score and store the pending comparisons, a chunk at a time."""
    # Aligned answers already stored (under another base format) are reused, not regenerated.
    aligned_done: dict[AlignedKey, dict] = {
        (r["suite"], r["row"], r["sample"], r.get("instruction")): r["aligned"]
        for r in run.store.comparisons()
        if r.get("config_hash") == run.pair_hash
    }
    # Sorted by sample and instruction so a chunk's requests share their seed and kind, and a
    # row's base formats are neighbours: the judge reads their shared prompt turn once.
    pending = sorted(
        pending, key=lambda i: (i.sample, i.row.kind, i.instruction or "", i.row.suite, i.row.row, i.base_format)
    )
    for start in range(0, len(pending), CHUNK):
        if should_stop():
            break
        chunk = pending[start : start + CHUNK]
        sides = _answer_chunk(run, chunk, aligned_done)
        for side_key, side in sides.items():
            if side_key[0] == "aligned":
                aligned_done[side_key[1]] = side.to_json()
        for item in chunk:
            _store_comparison(run, item, sides[("base", item.base_key())].to_json(), aligned_done[item.aligned_key()])
        run.step(len(chunk))


def _answer_chunk(run: _Run, chunk: list[_Item], aligned_done: Mapping[AlignedKey, dict]) -> dict[SideKey, SideState]:
    """The chunk's base answers and its aligned answers not yet stored, generated as one batch per
    model and scored together."""
    base_items = list({item.base_key(): item for item in chunk}.values())
    aligned_items = list(
        {item.aligned_key(): item for item in chunk if item.aligned_key() not in aligned_done}.values()
    )
    samplings = {kind: kind_sampling(run.config, run.options, kind) for kind in KINDS}

    def request(item: _Item, mode: BaseMode) -> GenerationRequest:
        sampling = dataclasses.replace(samplings[item.row.kind], seed=run.options.seed + item.sample)
        return GenerationRequest(item.text, sampling, mode, run.config.limits.max_prompt_tokens)

    base_answers, aligned_answers = generate_pair(
        run.workers,
        {i.base_key(): request(i, i.base_format) for i in base_items},
        {i.aligned_key(): request(i, "raw") for i in aligned_items},
    )
    sides: dict[SideKey, SideState] = {}
    for role, answers in (("base", base_answers), ("aligned", aligned_answers)):
        model_id = run.model_ids[role]
        for key, answer in answers.items():
            sides[(role, key)] = _side(run.config.models[model_id].name, model_id, answer)
    prompt_of: dict[SideKey, str] = {("base", i.base_key()): i.text for i in base_items} | {
        ("aligned", i.aligned_key()): i.text for i in aligned_items
    }
    _score_sides(run.scorer, sides, prompt_of)
    return sides


def _score_sides(scorer: AnswerScorer | None, sides: Mapping[SideKey, SideState], prompt_of: Mapping) -> None:
    """Every answer that did not fail gets the scorer's fields, in one call."""
    to_score = [(key, side) for key, side in sides.items() if side.error is None]
    if scorer is None or not to_score:
        return
    started = time.perf_counter()
    scores = scorer.score([(prompt_of[key], side.text) for key, side in to_score])
    log.info("scored %d answers in %.1f s", len(to_score), time.perf_counter() - started)
    for (_, side), score in zip(to_score, scores):
        side.apply_scores(score.as_fields())


def _store_comparison(run: _Run, item: _Item, base: dict, aligned: dict) -> None:
    """One finished comparison appended to the store (flushed at once: a killed run resumes)."""
    preferred, p_aligned = preference(
        base.get(ScoreKey.REWARD), aligned.get(ScoreKey.REWARD), run.config.scoring.tie_tolerance
    )
    comparison = {
        "base": base,
        "aligned": aligned,
        "preferred": preferred,
        "p_aligned_preferred": p_aligned,
        "error": base.get("error") or aligned.get("error"),
    }
    run.store.append_comparison(
        comparison_record(
            item.row,
            comparison,
            pair=run.pair_id,
            base_format=item.base_format,
            sample=item.sample,
            seed=run.options.seed,
            model_ids=run.model_ids,
            config_hashes=run.hashes,
            instruction=item.instruction,
        )
    )


def _run_likelihoods(run: _Run, mc_pending: list[tuple[SuiteRow, BaseMode]], should_stop: Callable[[], bool]) -> None:
    """Each model's summed log-likelihood of every reference answer of the pending truthfulness
    rows (MC1 / MC2). The aligned model reads every prompt in its chat format: one computation
    serves each base format's record."""
    mc_hash = mc_hashes(run.config, run.options)
    memo: dict[tuple, list[tuple[float, int]]] = {}
    for row, base_format in mc_pending:
        if should_stop():
            break
        choices = list(row.correct) + list(row.incorrect)
        for role in ROLES:
            stored = likelihood_key(config_hash=mc_hash[role], suite=row.suite, row=row.row, base_format=base_format)
            if run.store.has_likelihood(stored):
                continue
            mode = base_format if role == "base" else "raw"
            memo_key = (role, row.suite, row.row, mode)
            if memo_key not in memo:
                started = time.perf_counter()
                memo[memo_key] = run.workers[role].call("answer_logprobs", row.prompt, choices, mode)
                log.info("%s: %d answer likelihoods in %.2f s", role, len(choices), time.perf_counter() - started)
            values, counts = [v for v, _ in memo[memo_key]], [n for _, n in memo[memo_key]]
            split = len(row.correct)
            run.store.append_likelihood(
                likelihood_record(
                    row,
                    pair=run.pair_id,
                    model=role,
                    model_id=run.model_ids[role],
                    config_hash=mc_hash[role],
                    base_format=base_format,
                    correct_logliks=values[:split],
                    incorrect_logliks=values[split:],
                    correct_tokens=counts[:split],
                    incorrect_tokens=counts[split:],
                )
            )
        run.step(1)


def write_summary_and_report(
    config: AppConfig, options: EvaluationOptions, store: ResultsStore, out_dir: Path
) -> tuple[Path, Path]:
    """summary.json and report.md of the plan's stored rows (a folder may hold rows of other
    plans, e.g. a larger --max-prompts earlier: only this one's are summarized)."""
    hashes, mc_hash = model_hashes(config, options), mc_hashes(config, options)
    pair_hash = pair_config_hash(hashes["base"], hashes["aligned"])
    rows = plan_rows(options)
    planned_keys = {_key(pair_hash, options, item) for item in plan_items(rows, options)}
    planned_mc = {
        likelihood_key(config_hash=mc_hash[r], suite=row.suite, row=row.row, base_format=f)
        for row in rows
        if row.kind == "truthfulness"
        for f in options.base_formats
        for r in ROLES
    }
    comparisons = [r for r in store.comparisons() if r["key"] in planned_keys]
    summary = summarize(
        comparisons,
        [r for r in store.likelihoods() if r["key"] in planned_mc],
        seed=options.seed,
        flag=flag_rule(config.scoring),
    )
    summary["pairs"] = [pair_facts(config, options.pair)]
    # Where labellers read this run's answers (data/feedback), their verdict beside the judge's.
    summary["labellers"] = labellers_on_run(comparisons)
    summary["answer_tokens"] = answer_tokens(config, options)
    summary_path = out_dir / SUMMARY_FILE
    summary_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary_path, write_report(out_dir, summary)


def generate_pair(
    workers: dict[str, Worker], base: dict[tuple, GenerationRequest], aligned: dict[tuple, GenerationRequest]
) -> tuple[dict[tuple, Finished | Failed], dict[tuple, Finished | Failed]]:
    """The base model's answers, then the aligned model's, each as one batch (`generate_batch`).

    One model after the other, not side by side: a batch uses every core (onnx_batch.py), and
    the base model has up to twice the answers (raw and prompted), so two models at once would
    leave a core idle once the aligned side is done. The evaluation and `bench` both call this."""
    answers = []
    for role, plan in (("base", base), ("aligned", aligned)):
        started = time.perf_counter()
        answers.append(dict(zip(plan, _generate(workers[role], list(plan.values())))))
        log.info("%s: %d answers in %.1f s", role, len(plan), time.perf_counter() - started)
    return answers[0], answers[1]


def _generate(worker: Worker, requests: list[GenerationRequest]) -> list[Finished | Failed]:
    if not requests:
        return []
    try:
        return worker.call("generate_batch", requests)
    except RuntimeError as error:  # a worker that died or is unavailable: those answers fail
        return [Failed(str(error)) for _ in requests]


def _side(name: str, model_id: str, answer: Finished | Failed) -> SideState:
    side = SideState(name, model_id=model_id, done=True)
    if isinstance(answer, Failed):
        side.error = answer.message
    else:
        side.text, side.new_tokens, side.seconds = answer.text, answer.new_tokens, answer.seconds
        side.stop_reason = answer.stop_reason
    return side
