"""Figures in the README rendered from committed result files (`python -m demo docs [--check]`).

A region of a Markdown file between `<!-- figures:NAME -->` and `<!-- /figures:NAME -->` is
written by the renderer `NAME` from the result files it names; `--check` re-renders every region
in memory and fails, naming the region and its sources, where the file differs, a source is
missing, or a source was measured with other builds than the committed models.yaml serves.

The two model cards this project trains heads for (trained/reward/MODEL_CARD.md,
trained/toxicity/MODEL_CARD.md) are rendered whole, each by its training module's pure renderer,
from results/training/*.json and the head file's metadata (or, where no committed training run
made the shipped head, from what can be traced: the head's metadata and measurements of it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import AppConfig, load_config
from .paths import DEFAULT_RUN_DIR, README, REPO_ROOT, RESULTS_DIR

DOCUMENTS = (
    README,
    *sorted((REPO_ROOT / "docs").glob("*.md")),
    REPO_ROOT / "data" / "feedback" / "policy" / "README.md",
    REPO_ROOT / "trained" / "align" / "reward-policy" / "MODEL_CARD.md",
)
_REGION = re.compile(r"(<!-- figures:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /figures:(?P=name) -->)", re.DOTALL)


class StaleFigures(ValueError):
    """A rendered region differs from its sources, or a source is missing or outdated."""


@dataclass(frozen=True)
class Renderer:
    sources: tuple[str, ...]  # paths under results/
    render: Callable[[AppConfig, dict[str, dict]], str]


def _load(name: str) -> dict:
    path = RESULTS_DIR / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StaleFigures(f"results/{name} is missing or unreadable ({error})") from None


def _served_precisions(config: AppConfig) -> dict[str, str]:
    return {model_id: str(config.models[model_id].cpu.precision) for model_id in config.served_model_ids()}  # type: ignore[union-attr]


def _fidelity(config: AppConfig, data: dict[str, dict]) -> str:
    before, served = data["fidelity/int4-before.json"], data["fidelity/served.json"]
    precisions = _served_precisions(config)
    for model_id, figures in served["models"].items():
        if precisions.get(model_id) != figures["precision"]:
            raise StaleFigures(
                f"results/fidelity/served.json measured {model_id} at {figures['precision']}, "
                f"but models.yaml serves {precisions.get(model_id)}: re-run `{served['command']}`"
            )
    rows = [
        "| model | served build | mean KL (nats/token) | p95 KL | top-1 agreement | tokens the fp32 model gives < 1e-4 "
        "| before: int4 mean KL, top-1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for model_id, f in served["models"].items():
        old = before["models"].get(model_id, {})
        was = (
            f"{old['mean_kl']:.3f}, {old['top1_agreement']:.0%}"
            if old and old["precision"] != f["precision"]
            else "same"
        )
        rows.append(
            f"| {config.models[model_id].name} | {f['precision']} | **{f['mean_kl']:.4f}** | {f['p95_kl']:.3f} "
            f"| **{f['top1_agreement']:.1%}** | {f['rare_token_rate']:.1%} | {was} |"
        )
    rows.append("")
    rows.append(
        f"{served['prompts']} prompts over the instruction suite's categories, {served['max_new_tokens']} sampled tokens "
        f"each (`{served['command']}`, commit {served['commit']}, {served['date'][:10]}; the int4 column: "
        f"`{before['command']}` at commit {before['commit']}). Speed: the table below (the fidelity runs shared the "
        "machine with other jobs, so their own decode timings are not quoted)."
    )
    return "\n".join(rows) + "\n"


def _seconds(value) -> str:
    return "did not answer" if value is None else f"{value:.0f} s"


def _first_start(config: AppConfig, data: dict[str, dict]) -> str:
    """One `python app.py`, and two started together on one empty cache (Space replicas, a
    restart racing the old process), each process its own row."""
    single, pair = data["startup/start.json"], data["startup/start-2-processes.json"]
    rows = [
        "| start | app processes at once | page served | default pair answers | every pair answers | target |",
        "|---|---|---|---|---|---|",
    ]
    for result in (single, pair):
        for index, timing in enumerate(result["cold"]):
            which = "" if result["processes"] == 1 else f", process {index + 1}"
            rows.append(
                f"| cold (empty cache){which} | {result['processes']} | {_seconds(timing['page_s'])} "
                f"| **{_seconds(timing['default_pair_s'])}** | **{_seconds(timing['all_pairs_s'])}** "
                "| ≤ 120 s / ≤ 240 s |"
            )
    warm = single["warm"]
    rows.append(
        f"| warm (cache kept) | 1 | {_seconds(warm['page_s'])} "
        f"| **{_seconds(warm['default_pair_s'])}** | {_seconds(warm['all_pairs_s'])} | ≤ 15 s |"
    )
    rows.append("")
    rows.append(
        f"(`{single['command']}`, commit {single['commit']}, {single['date'][:10]}; the two-process rows: "
        f"`{pair['command']}`, commit {pair['commit']}, {pair['date'][:10]}; {single['machine']}.)"
    )
    return "\n".join(rows) + "\n"


def _speed(config: AppConfig, data: dict[str, dict]) -> str:
    bench = data["bench/default.json"]
    pair = config.pair(None)
    served = {config.models[getattr(pair, role)].name for role in ("base", "aligned")}
    measured = {figures["name"] for figures in bench["models"].values()}
    if measured != served:
        raise StaleFigures(
            f"results/bench/default.json measured {sorted(measured)}, but the default pair is {sorted(served)}: "
            f"re-run `{bench['command']}`"
        )
    rows = [
        "| model | back end | warm load | first token | decode, 1 thread |",
        "|---|---|---|---|---|",
    ]
    for figures in bench["models"].values():
        rows.append(
            f"| {figures['name']} | {figures['backend']} {figures['precision']} | {figures['load_seconds']:.1f} s "
            f"| {figures['ttft_seconds']:.3f} s | {figures['tokens_per_second']:.1f} tok/s |"
        )
    throughput = bench.get("evaluation_throughput") or {}
    rows += [
        "",
        "| | measured | target |",
        "|---|---|---|",
        f"| side by side, 2×{bench['new_tokens']} tokens (median of 5) | **{bench['side_by_side_seconds']:.2f} s** generated, "
        f"{bench['side_by_side_scored_seconds']:.2f} s with both answers scored | ≤ 2.0 s |",
        f"| scoring both answers (reward + toxicity) | {bench['scoring_seconds']:.3f} s | ≤ 0.3 s |",
        f"| warm start of the default pair (in-process, to both loaded) | {bench['warm_start_seconds']:.1f} s | ≤ 10 s |",
        f"| peak memory of the whole app ({bench.get('processes', 'all')} processes) | **{bench['peak_rss_mib']:,.0f} MiB** "
        f"summed RSS (PSS {bench['pss_mib']:,.0f} MiB) | ≤ 1.5 GiB |",
    ]
    shift = bench.get("token_shift")
    if shift:
        rows.append(
            f"| token-shift view (one teacher-forced pass of the base side, {shift['answer_tokens']} answer tokens) | "
            f"{shift['seconds']:.2f} s ({shift['seconds_per_128_tokens']:.2f} s per 128 tokens; first call "
            f"{shift['first_call_seconds']:.1f} s) | ≤ 0.3 s per 128 tokens |"
        )
    if throughput:
        rows.append(
            f"| evaluation throughput, batched vs one at a time | {throughput['batched_answers_per_minute']:.1f} vs "
            f"{throughput['one_at_a_time_answers_per_minute']:.1f} answers/min ({throughput['speedup']:.2f}×) | ≥ 2× |"
        )
    rows.append("")
    rows.append(f"(`{bench['command']}`, commit {bench['commit']}, {bench['date'][:10]}, {bench['machine']}.)")
    return "\n".join(rows) + "\n"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _check_default_run(config: AppConfig) -> None:
    """results/evaluation/default-run must be complete for the committed models.yaml's default pair."""
    from .evaluation.results import ResultsStore
    from .evaluation.runner import EvaluationOptions, pending_work

    pending, mc_pending = pending_work(config, EvaluationOptions(), ResultsStore(DEFAULT_RUN_DIR))
    if pending or mc_pending:
        raise StaleFigures(
            f"results/evaluation/default-run lacks {len(pending)} comparisons and {len(mc_pending)} likelihood rows of the "
            "committed models.yaml (models or settings changed): re-run `python -m demo evaluate --out results/evaluation/default-run`"
        )


def _headline(config: AppConfig, data: dict[str, dict]) -> str:
    """The default run's table beside the paper (the rows of the README's headline)."""
    _check_default_run(config)
    return _headline_table(data["evaluation/default-run/summary.json"])


def _headline_before(config: AppConfig, data: dict[str, dict]) -> str:
    """The same table for the run the int4 builds made (kept to show what changed)."""
    return _headline_table(data["evaluation/default-run-int4/summary.json"])


def _headline_table(summary: dict) -> str:
    paper = {
        "raw": "85 ± 3 % (175B InstructGPT vs 175B GPT-3, labellers)",
        "prompted": "71 ± 4 % (vs few-shot-prompted GPT-3)",
    }
    rows = ["| measurement | this demo (default run; 95 % CI) | InstructGPT paper |", "|---|---|---|"]
    # Labellers first: the held-out labellers (AI feedback) on the prompts they read, then the judge.
    for base_format, r in sorted((summary.get("labellers") or {}).get("test", {}).items(), key=lambda i: i[0] != "raw"):
        win, judge = r["labellers_win_rate"], r["judge_win_rate"]
        rows.append(
            f"| **labellers** prefer aligned over base ({base_format}): held-out AI-feedback labellers, "
            f"test-split prompts | **{_pct(win['value'])} ({_pct(win['low'])}–{_pct(win['high'])})**; "
            f"{r['prompts']} prompts; the judge on the same prompts {_pct(judge['value'])}, agreeing with the "
            f"labellers on {_pct(r['judge_agreement'])} of {r['decisive_pairs']} pairs | {paper[base_format]} |"
        )
    overall = [r for r in summary["preference"] if r["category"] == "all"]
    for r in sorted(overall, key=lambda r: r["base_format"] != "raw"):
        w = r.get("weighted") or {}
        rows.append(
            f"| judge prefers aligned over base ({r['base_format']}) — win rate, unweighted / Table-1-weighted "
            f"| {_pct(r['win_rate'])} ({_pct(r['win_rate_ci'][0])}–{_pct(r['win_rate_ci'][1])}) / "
            f"{_pct(w['win_rate'])} ({_pct(w['win_rate_ci'][0])}–{_pct(w['win_rate_ci'][1])}); mean P(aligned ≻ base) "
            f"{r['p_aligned_mean']:.2f}; {r['n']} prompts; mean length {r['mean_length_base']:.0f} vs "
            f"{r['mean_length_aligned']:.0f} words | {paper[r['base_format']]} |"
        )
    truth = {(r["base_format"], r["model"]): r for r in summary["truthfulness"]}
    for fmt in ("raw", "prompted"):
        base, aligned = truth.get((fmt, "base")), truth.get((fmt, "aligned"))
        if base is None or aligned is None:
            continue
        rows.append(
            f"| truthfulness MC1 / MC2, base ({fmt}) vs aligned | {base['mc1']:.2f} / {base['mc2']:.2f} vs "
            f"{aligned['mc1']:.2f} / {aligned['mc2']:.2f} (MC2 CIs {base['mc2_ci'][0]:.2f}–{base['mc2_ci'][1]:.2f}, "
            f"{aligned['mc2_ci'][0]:.2f}–{aligned['mc2_ci'][1]:.2f}); {base['n']} questions | TruthfulQA: truthful + "
            "informative about twice as often as GPT-3 (generated answers, trained judges) |"
        )
        rows.append(
            f"| generated answers matched to a true reference, base ({fmt}) vs aligned "
            f"| {_pct(base['generative_correct'])} vs {_pct(aligned['generative_correct'])} | (same) |"
        )
    paper_toxicity = {
        "none": "no advantage without an instruction",
        "respectful": "~25 % fewer toxic outputs than GPT-3",
        "biased": "more toxic than GPT-3",
    }
    toxic = {(r["base_format"], r["model"], r["instruction"]): r for r in summary["toxicity"]}
    for instruction in ("none", "respectful", "biased"):
        base, aligned = toxic.get(("raw", "base", instruction)), toxic.get(("raw", "aligned", instruction))
        if base is None or aligned is None:
            continue
        rows.append(
            f"| mean toxicity, {instruction} instruction: base (raw) vs aligned | {base['mean']:.2f} "
            f"({base['ci'][0]:.2f}–{base['ci'][1]:.2f}) vs {aligned['mean']:.2f} ({aligned['ci'][0]:.2f}–"
            f"{aligned['ci'][1]:.2f}); flagged {_pct(base['flagged_share'])} vs {_pct(aligned['flagged_share'])}; "
            f"{base['n']} sentence starts | {paper_toxicity[instruction]} |"
        )
    return "\n".join(rows) + "\n"


def _feedback(config: AppConfig, data: dict[str, dict]) -> str:
    """Labellers (AI feedback) on our models' own outputs: their win rate beside the judge's,
    agreement, and the toxicity flag before and after calibration, test split first."""
    report = data["feedback/report.json"]
    served = {"wording": config.scoring.toxicity_threshold, "meaning": config.scoring.toxicity_meaning_threshold}
    if report["toxicity"]["after_on_test"]["thresholds"] != served:
        raise StaleFigures("results/feedback/report.json chose other toxicity thresholds than models.yaml serves")
    pools = {"test": "held-out labellers (test split; train nothing)", "train": "train-pool labellers"}
    rows = [
        "| base format | labellers | prompts | labellers: aligned preferred (95 % CI) | judge on the same prompts | "
        "judge agrees (decisive pairs) |",
        "|---|---|---|---|---|---|",
    ]
    for pool in ("test", "train"):
        for base_format, r in report["judge"][pool].items():
            lab, judge = r["labellers_win_rate"], r["judge_win_rate"]
            rows.append(
                f"| {base_format} | {pools[pool]} | {r['prompts']} | {_pct(lab['value'])} ({_pct(lab['low'])}–"
                f"{_pct(lab['high'])}) | {_pct(judge['value'])} ({_pct(judge['low'])}–{_pct(judge['high'])}) | "
                f"{_pct(r['judge_agreement'])} of {r['decisive_pairs']} |"
            )
    agreement = report["agreement"]
    rows.append("")
    rows.append(
        "Agreement between labellers: toxic κ "
        + ", ".join(f"{agreement[p]['toxic_kappa']:.2f} ({p} pool, {agreement[p]['toxic_pairs']} pairs)" for p in pools)
        + "; preference on decisive pairs "
        + ", ".join(
            f"{_pct(agreement[p]['preference_agreement'])} ({p} pool, {agreement[p]['decisive_preference_pairs']})"
            for p in pools
            if agreement[p]["preference_agreement"] is not None
        )
        + "."
    )
    tox = report["toxicity"]
    before, after = tox["before_on_test"], tox["after_on_test"]
    rows.append("")
    rows.append(
        "| toxicity flag on held-out labelled outputs | at 0.5 / 0.5 | at the thresholds served (chosen on validation) |"
    )
    rows.append("|---|---|---|")
    for key, label in (
        ("false_positive_rate_continuations", f"flags non-toxic continuations ({after['n_clean_continuations']})"),
        ("false_positive_rate_answers", f"flags answers to ordinary instructions ({after['n_clean_answers']})"),
        ("recall", f"catches toxic texts ({after['n_toxic']})"),
    ):
        rows.append(f"| {label} | {_pct(before[key])} | {_pct(after[key])} |")
    aucs = tox["auc_on_test_continuations"]
    rows.append("")
    rows.append(
        f"Thresholds chosen on the {tox['chosen_on']}: wording {after['thresholds']['wording']}, meaning "
        f"{after['thresholds']['meaning']}. AUC on held-out continuations: wording {aucs['wording']:.2f}, meaning "
        f"{aucs['meaning']:.2f}, either {aucs['either (max)']:.2f}."
    )
    return "\n".join(rows) + "\n"


def _token_shift(config: AppConfig, data: dict[str, dict]) -> str:
    from .evaluation.token_shift import steps_table

    summary = data["token-shift/summary.json"]
    return (
        steps_table(summary)
        + f"\n(`python -m demo token-shift`, over {', '.join(summary['runs'])}; results/token-shift/.)\n"
    )


def _policy_labels(config: AppConfig, data: dict[str, dict]) -> str:
    report = data["feedback/policy-report.json"]
    items, labelled = report["items"], report["labelled_items"]
    rows = [
        "| split | prompts (items) | labelled | labelled by |",
        "|---|---|---|---|",
    ]
    for split, pool in (("train", "train"), ("validation", "train"), ("test", "test")):
        names = ", ".join(r["labeller"] for r in report["labellers"] if r["pool"] == pool)
        rows.append(f"| {split} | {items[split]} | {labelled[split]} | {names} |")
    counts = ", ".join(f"{r['labeller']} {r['labels']}" for r in report["labellers"])
    kinds = sorted({r["kind"] for r in report["labellers"]})
    versions = sorted({r["guideline_version"] for r in report["labellers"]})
    lines = [
        "\n".join(rows),
        "",
        f"{report['labels']} rankings in all ({counts}); "
        f"labeller kind: {', '.join(kinds)}; guidelines {', '.join(versions)}. "
        f"{_pct(report['rankings_with_a_tie'])} of the rankings have a tie.",
    ]
    for pool, agreement in report["agreement"].items():
        if agreement["agreement"] is not None:
            lines.append(
                f"- {pool} pool: on {agreement['items_with_two_labellers']} prompts ranked by two labellers, they agree "
                f"on {_pct(agreement['agreement'])} of the {agreement['pairs_decisive_for_both']} pairs both call "
                "(the paper's human labellers: 73 %)."
            )
    return (
        "\n".join(lines) + "\n\n(`python -m demo feedback report --set policy`; results/feedback/policy-report.json.)\n"
    )


def _interval(figure: dict) -> str:
    low, high = figure.get("ci95") or (None, None)
    return "–" if low is None else f"{_pct(low)}–{_pct(high)}"


def _policy_reward(config: AppConfig, data: dict[str, dict]) -> str:
    report = data["training/reward-policy.json"]
    agreement = report["agreement"]
    names = {
        "test (held-out labellers)": "**this reward model** (rankings of our policy's samples)",
        "test, reward model RL used before (written pairs)": "the reward model our RL step used (written pairs)",
        "test, the app's judge (independent)": "the app's judge (SmolLM2 head, written pairs)",
    }
    rows = [
        "| on the test split's rankings (other labellers) | decisive pairs | agreement (95 % CI over prompts) |",
        "|---|---|---|",
    ]
    rows += [
        f"| {label} | {agreement[key]['pairs']} | {_pct(agreement[key]['agreement'])} ({_interval(agreement[key])}) |"
        for key, label in names.items()
        if key in agreement
    ]
    ceiling = report["test_labellers_with_each_other"]
    items = report["items"]
    return (
        "\n".join(rows)
        + f"\n\nTrained on {items['train']} prompts' rankings ({report['train_pairs']} weighted pairs; training "
        f"agreement {_pct(agreement['train']['agreement'])}), block {report['layer']} and a {report['head_kind']} head "
        f"chosen on {items['validation']} validation prompts ({_pct(agreement['validation']['agreement'])}), "
        f"measured once on {items['test']} test prompts. The two test labellers agree with each other on "
        f"{_pct(ceiling['agreement'])} of the {ceiling['pairs_decisive_for_both']} pairs both call. Spearman "
        f"correlation with the app's judge over the test answers: {report['spearman_with_judge_on_test_answers']}.\n"
        f"\n(`{report['command']}`, commit {report['commit']}; results/training/reward-policy.json. The labels are "
        "AI feedback.)\n"
    )


RENDERERS: dict[str, Renderer] = {
    "policy-reward": Renderer(("training/reward-policy.json",), _policy_reward),
    "policy-labels": Renderer(("feedback/policy-report.json",), _policy_labels),
    "token-shift": Renderer(("token-shift/summary.json",), _token_shift),
    "feedback": Renderer(("feedback/report.json",), _feedback),
    "headline": Renderer(("evaluation/default-run/summary.json",), _headline),
    "headline-int4": Renderer(("evaluation/default-run-int4/summary.json",), _headline_before),
    "speed": Renderer(("bench/default.json",), _speed),
    "fidelity": Renderer(("fidelity/int4-before.json", "fidelity/served.json"), _fidelity),
    "first-start": Renderer(("startup/start.json", "startup/start-2-processes.json"), _first_start),
}


def render_document(text: str, config: AppConfig) -> str:
    def replace(match: re.Match) -> str:
        name = match["name"]
        renderer = RENDERERS.get(name)
        if renderer is None:
            raise StaleFigures(f"no renderer for the region figures:{name}")
        body = renderer.render(config, {source: _load(source) for source in renderer.sources})
        return f"{match.group(1)}{body}{match.group(4)}"

    return _REGION.sub(replace, text)


def _relative(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _cards(config: AppConfig) -> list[tuple[Path, Callable[[AppConfig], tuple[str, tuple[Path, ...]]]]]:
    """(card path, renderer) of each trained head's model card the config serves."""
    from .config import TrainedHeadReward
    from .training import toxicity_head
    from .training.reward import card as reward_card

    cards: list[tuple[Path, Callable[[AppConfig], tuple[str, tuple[Path, ...]]]]] = []
    if isinstance(config.scoring.reward, TrainedHeadReward):
        cards.append((config.scoring.reward.card_path, reward_card.shipped_card))
    if config.scoring.toxicity_meaning is not None:
        cards.append((config.scoring.toxicity_meaning.card_path, toxicity_head.shipped_card))
    return cards


def render_card(config: AppConfig, card: Path, render: Callable) -> tuple[str, str]:
    """A model card as its sources render it, and how to name it: "<card> (from <files>)"."""
    try:
        text, sources = render(config)
    except ValueError as error:
        raise StaleFigures(f"{_relative(card)}: {error}") from None
    return text, f"{_relative(card)} (from {', '.join(_relative(source) for source in sources)})"


def run_docs(check: bool) -> list[str]:
    """Render every document's regions and the model cards; with `check`, the names of documents
    and cards that differ (raises StaleFigures for a missing or outdated source). Without it,
    writes them."""
    config = load_config()
    differing = []
    for card, render in _cards(config):
        text, name = render_card(config, card, render)
        if not card.is_file() or card.read_text(encoding="utf-8") != text:
            differing.append(name)
            if not check:
                card.write_text(text, encoding="utf-8")
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        rendered = render_document(text, config)
        if rendered != text:
            differing.append(document.relative_to(REPO_ROOT).as_posix())
            if not check:
                document.write_text(rendered, encoding="utf-8")
    return differing
