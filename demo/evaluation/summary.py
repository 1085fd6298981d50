"""Stored rows → `summary.json`: preference, truthfulness and toxicity figures with 95 % CIs.

Rows are grouped by pair and base format (the base model's prompting changes its answers); a
prompt is (suite, row). A comparison whose reward is missing (a side failed, or no reward model)
is left out of the preference figures and counted in `n_excluded`, rather than counted as a tie.
Lengths are in words: the two models' tokenizers differ, so token counts do not compare.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ..session import ScoreKey
from .metrics import (
    N_RESAMPLES,
    TABLE1_PROPORTIONS,
    TOXICITY_INSTRUCTIONS,
    Estimate,
    grouped_mean,
    match_truthful,
    mc1,
    mc2,
    preference_score,
    weighted_mean,
)
from .results import ROLES, ResultsStore

SUMMARY_FILE = "summary.json"
WEIGHTING = "InstructGPT Table 1 use-case proportions, renormalised over the categories present"


def summarize(
    comparisons: Iterable[Mapping],
    likelihoods: Iterable[Mapping] = (),
    *,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
    flag: Callable[[Mapping], bool] | None = None,
) -> dict:
    """The `summary.json` object: lists `preference`, `truthfulness` and `toxicity`. `flag(side)`:
    the toxicity flag rule to apply to the stored scores (default: the flag stored with them)."""
    comparisons, likelihoods = list(comparisons), list(likelihoods)
    options = {"seed": seed, "n_resamples": n_resamples}
    return {
        "preference": preference_summary([r for r in comparisons if r["kind"] == "instruction"], **options),
        "truthfulness": truthfulness_summary(
            [r for r in comparisons if r["kind"] == "truthfulness"], likelihoods, **options
        ),
        "toxicity": toxicity_summary([r for r in comparisons if r["kind"] == "toxicity"], flag=flag, **options),
        "confidence": {"level": 0.95, "method": "percentile bootstrap over prompts", **options},
    }


def write_summary(out_dir: str | Path, *, seed: int = 0, n_resamples: int = N_RESAMPLES) -> Path:
    """Summarize the rows stored in `out_dir` into `out_dir/summary.json`; its path."""
    store = ResultsStore(out_dir)
    summary = summarize(store.comparisons(), store.likelihoods(), seed=seed, n_resamples=n_resamples)
    path = Path(out_dir) / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _prompt(row: Mapping) -> tuple:
    return (row["suite"], row["row"])


def _words(side: Mapping) -> int:
    return len((side.get("text") or "").split())


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _ci(estimate: Estimate) -> list[float | None]:
    return [_rounded(v) for v in estimate.ci]


def _mean(values: list[float]) -> float | None:
    return _rounded(sum(values) / len(values)) if values else None


def _groups(rows: Iterable[Mapping], *fields: str) -> dict[tuple, list[Mapping]]:
    groups: dict[tuple, list[Mapping]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[f] for f in fields)].append(row)
    return dict(groups)


def _category_order(category: str) -> tuple:
    order = list(TABLE1_PROPORTIONS)
    return (order.index(category), "") if category in order else (len(order), category)


def preference_summary(rows: list[Mapping], *, seed: int = 0, n_resamples: int = N_RESAMPLES) -> list[dict]:
    """Per pair × base format: an overall row (`category` "all", with the Table-1-weighted
    figures under `weighted`) followed by one row per category."""
    out = []
    for (pair, base_format), group in _groups(rows, "pair", "base_format").items():
        scored = [r for r in group if r.get("p_aligned_preferred") is not None]
        excluded = len(group) - len(scored)
        categories = sorted({r["category"] for r in scored}, key=_category_order)
        for category in ["all", *categories]:
            chosen = scored if category == "all" else [r for r in scored if r["category"] == category]
            entry = _preference_entry(pair, base_format, category, chosen, seed, n_resamples)
            if category == "all":
                entry["n_excluded"] = excluded
                entry["weighted"] = _weighted_entry(chosen, seed, n_resamples)
            out.append(entry)
    return out


def _preference_entry(pair, base_format, category, rows, seed, n_resamples) -> dict:
    prompts = [_prompt(r) for r in rows]
    wins = grouped_mean([preference_score(r["preferred"]) for r in rows], prompts, seed=seed, n_resamples=n_resamples)
    p_aligned = grouped_mean([r["p_aligned_preferred"] for r in rows], prompts, seed=seed, n_resamples=n_resamples)
    return {
        "pair": pair,
        "base_format": base_format,
        "category": category,
        "n": wins.n,
        "n_comparisons": len(rows),
        "win_rate": _rounded(wins.value),
        "win_rate_ci": _ci(wins),
        "p_aligned_mean": _rounded(p_aligned.value),
        "p_aligned_ci": _ci(p_aligned),
        "mean_length_base": _mean([_words(r["base"]) for r in rows]),
        "mean_length_aligned": _mean([_words(r["aligned"]) for r in rows]),
    }


def _weighted_entry(rows, seed, n_resamples) -> dict:
    prompts, categories = [_prompt(r) for r in rows], [r["category"] for r in rows]
    options = {"seed": seed, "n_resamples": n_resamples}
    wins = weighted_mean([preference_score(r["preferred"]) for r in rows], prompts, categories, **options)
    p_aligned = weighted_mean([r["p_aligned_preferred"] for r in rows], prompts, categories, **options)
    return {
        "weighting": WEIGHTING,
        "n": wins.n,
        "win_rate": _rounded(wins.value),
        "win_rate_ci": _ci(wins),
        "p_aligned_mean": _rounded(p_aligned.value),
        "p_aligned_ci": _ci(p_aligned),
        "weights": {c: round(w, 4) for c, w in wins.weights.items()},
        "unweighted_categories": list(wins.unweighted_categories),
    }


def truthfulness_summary(
    comparisons: list[Mapping], likelihoods: list[Mapping], *, seed: int = 0, n_resamples: int = N_RESAMPLES
) -> list[dict]:
    """Per pair × base format × model: MC1 / MC2 from the likelihood rows and the share of
    generated answers `match_truthful` calls correct, each with its CI."""
    options = {"seed": seed, "n_resamples": n_resamples}
    mc_groups = _groups(likelihoods, "pair", "base_format", "model")
    generated: dict[tuple, list[tuple[tuple, float]]] = defaultdict(list)
    model_ids: dict[tuple, str] = {}
    for row in comparisons:
        for role in ROLES:
            side = row[role]
            if side.get("error"):
                continue
            key = (row["pair"], row["base_format"], role)
            verdict = match_truthful(side.get("text") or "", row["correct"], row["incorrect"])
            generated[key].append((_prompt(row), 1.0 if verdict.correct else 0.0))
            model_ids.setdefault(key, str(side.get("model_id") or ""))
    for key, rows in mc_groups.items():
        model_ids.setdefault(key, str(rows[0].get("model_id") or ""))
    out = []
    for key in sorted(
        set(mc_groups) | set(generated), key=lambda k: (k[0], k[1], ROLES.index(k[2]) if k[2] in ROLES else 9)
    ):
        rows = mc_groups.get(key, [])
        prompts = [_prompt(r) for r in rows]
        first = grouped_mean([mc1(r["correct_logliks"], r["incorrect_logliks"]) for r in rows], prompts, **options)
        second = grouped_mean([mc2(r["correct_logliks"], r["incorrect_logliks"]) for r in rows], prompts, **options)
        answers = generated.get(key, [])
        matched = grouped_mean([v for _, v in answers], [p for p, _ in answers], **options)
        out.append(
            {
                "pair": key[0],
                "base_format": key[1],
                "model": key[2],
                "model_id": model_ids.get(key),
                "n": first.n,
                "mc1": _rounded(first.value),
                "mc1_ci": _ci(first),
                "mc2": _rounded(second.value),
                "mc2_ci": _ci(second),
                "n_generative": matched.n,
                "generative_correct": _rounded(matched.value),
                "generative_correct_ci": _ci(matched),
            }
        )
    return out


def toxicity_summary(
    rows: list[Mapping], *, seed: int = 0, n_resamples: int = N_RESAMPLES, flag: Callable[[Mapping], bool] | None = None
) -> list[dict]:
    """Per pair × base format × model × instruction: mean toxicity and the share flagged toxic,
    each with its CI (`ci` is the mean's)."""
    options = {"seed": seed, "n_resamples": n_resamples}
    cells: dict[tuple, list[tuple[tuple, float, float]]] = defaultdict(list)
    model_ids: dict[tuple, str] = {}
    for row in rows:
        for role in ROLES:
            side = row[role]
            if side.get(ScoreKey.TOXICITY) is None:  # the side failed or was not scored
                continue
            key = (row["pair"], row["base_format"], role, row["instruction"])
            is_flagged = flag(side) if flag is not None else bool(side.get(ScoreKey.TOXIC))
            cells[key].append((_prompt(row), float(side[ScoreKey.TOXICITY]), 1.0 if is_flagged else 0.0))
            model_ids.setdefault(key, str(side.get("model_id") or ""))
    instructions = list(TOXICITY_INSTRUCTIONS)

    def order(key):
        return (key[0], key[1], ROLES.index(key[2]), instructions.index(key[3]) if key[3] in instructions else 9)

    out = []
    for key in sorted(cells, key=order):
        values = cells[key]
        prompts = [p for p, _, _ in values]
        mean = grouped_mean([t for _, t, _ in values], prompts, **options)
        flagged = grouped_mean([f for _, _, f in values], prompts, **options)
        out.append(
            {
                "pair": key[0],
                "base_format": key[1],
                "model": key[2],
                "model_id": model_ids.get(key),
                "instruction": key[3],
                "n": mean.n,
                "mean": _rounded(mean.value),
                "ci": _ci(mean),
                "flagged_share": _rounded(flagged.value),
                "flagged_share_ci": _ci(flagged),
            }
        )
    return out
