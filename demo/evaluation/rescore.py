"""Re-reading a stored run with the scorers the configuration serves now, without generating again.

Sampling on a CPU is not bit-reproducible from one run to the next (which answers share a batch
moves the floats, and a sampled token then takes another path), so the answers of a run, once
labelled (data/feedback), cannot be made again. When a scorer is retrained, the run follows it by
being re-scored instead: every stored answer is scored anew by the current scorers, read after the
same prompt the run scored it with; `preferred` is recomputed from the new rewards; and each row is
re-keyed to the current configuration hash, all in one atomic rewrite of results.jsonl (a
re-score stopped before that rewrite leaves the rows as they were; the summary and report are
written after it). Rows already under the current hash are left as they are, so re-scoring again
does only what is not current. Only the answers of the pair's own models are re-scored; the
options must be the run's (the same suites, formats, samples and lengths), as for a resume.
`python -m demo evaluate --rescore --out DIR` (the same options as the run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import ROLES, AppConfig
from ..feedback.report import row_identity
from ..scoring.scorer import AnswerScorer, preference
from ..session import ScoreKey
from .metrics import sent_prompt
from .results import ResultsStore, comparison_record_key, pair_config_hash
from .runner import EvaluationOptions, _key, model_hashes, plan_items, plan_rows, write_summary_and_report

log = logging.getLogger(__name__)

BATCH = 64  # answers scored at a time (progress, and memory on a small machine)


@dataclass(frozen=True)
class RescoreResult:
    rescored: int  # rows re-scored and re-keyed
    current: int  # rows already under the current hash
    summary_path: Path
    report_path: Path


def scored_prompt(row: dict) -> str:
    """The prompt a run scored a row's answers after (the runner's `text` of the item)."""
    return sent_prompt(row["prompt"], row.get("instruction"))


def rescore_run(
    config: AppConfig,
    options: EvaluationOptions,
    out_dir: Path,
    scorer: AnswerScorer,
    progress: Callable[[int, int], None] | None = None,
) -> RescoreResult:
    """Re-score the plan's stored rows whose hash is not the current one; see the module doc."""
    store = ResultsStore(out_dir)
    hashes = model_hashes(config, options)
    pair_hash = pair_config_hash(hashes["base"], hashes["aligned"])
    pair = config.pair(options.pair)
    models = {"base": pair.base, "aligned": pair.aligned}
    planned = {row_identity(_key(pair_hash, options, item)) for item in plan_items(plan_rows(options), options)}
    rows = {row["key"]: dict(row) for row in store.comparisons()}
    # Only answers the pair's own models wrote are re-scored; a row whose identity is already
    # stored under the current hash keeps that row (it is newer), the stale one is dropped.
    ours = [
        key
        for key in rows
        if row_identity(key) in planned and all(rows[key][role].get("model_id") == models[role] for role in ROLES)
    ]
    current = {row_identity(key) for key in ours if rows[key]["config_hash"] == pair_hash}
    superseded = {key for key in ours if rows[key]["config_hash"] != pair_hash and row_identity(key) in current}
    stale = {key for key in ours if rows[key]["config_hash"] != pair_hash} - superseded
    sides = [
        (key, role)
        for key in ours
        if key in stale
        for role in ROLES
        if not rows[key][role].get("error") and (rows[key][role].get("text") or "").strip()
    ]
    for start in range(0, len(sides), BATCH):
        batch = sides[start : start + BATCH]
        scores = scorer.score([(scored_prompt(rows[key]), rows[key][role]["text"]) for key, role in batch])
        for (key, role), score in zip(batch, scores):
            rows[key][role] = {**rows[key][role], **score.as_fields()}
        if progress is not None:
            progress(start + len(batch), len(sides))
    renamed: dict[str, dict] = {}
    for key, row in rows.items():
        if key in superseded:
            continue
        if key in stale:
            row = _rekeyed(row, pair_hash, hashes, config.scoring.tie_tolerance)
        renamed.setdefault(row["key"], row)
    store.replace_comparisons(renamed)
    log.info("re-scored %d rows (%d answers) in %s", len(stale), len(sides), out_dir)
    summary_path, report_path = write_summary_and_report(config, options, store, Path(out_dir))
    return RescoreResult(len(stale), len(current), summary_path, report_path)


def _rekeyed(row: dict, pair_hash: str, hashes: dict[str, str], tie_tolerance: float) -> dict:
    preferred, p_aligned = preference(
        row["base"].get(ScoreKey.REWARD), row["aligned"].get(ScoreKey.REWARD), tie_tolerance
    )
    row = {
        **row,
        "config_hash": pair_hash,
        "preferred": preferred,
        "p_aligned_preferred": p_aligned,
        **{role: {**row[role], "config_hash": hashes[role]} for role in ROLES},
    }
    return {**row, "key": comparison_record_key(row)}
