"""Command line: `python -m demo compare|score|evaluate|token-shift|train-toxicity|train-reward|votes|align|bench|fidelity|feedback|docs|prepare|serve`.

The commands call the same functions as the UI (`Comparator`, `AnswerScorer`), load models once
per invocation, and print one JSON object per line with `--json`. Errors are caught here, once,
and printed as a message with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .config import ConfigError, load_config
from .generation.formatting import BASE_MODES
from .provenance import provenance
from .session import ScoreKey
from .settings import SETTINGS, SamplingSettings, settings_from_values
from .token_shift import TokenShift, Unavailable


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="models.yaml to use (default: $DEMO_CONFIG or ./models.yaml)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    for add_command in SUBCOMMANDS:
        add_command(commands)
    return parser


def _add_compare_command(commands) -> None:
    compare = commands.add_parser("compare", help="run prompts through both models and score them")
    compare.add_argument("prompts", nargs="+", metavar="PROMPT")
    add_settings_flags(compare)
    compare.add_argument("--base-format", choices=BASE_MODES, default="raw")
    compare.add_argument("--pair", help="id of a configured pair (default: the first in models.yaml)")
    compare.add_argument("--json", action="store_true", help="one JSON object per prompt, per line")
    compare.add_argument(
        "--token-shift",
        action="store_true",
        help="rank each aligned answer token under the base side (one family only): the JSON's aligned.token_shift",
    )
    compare.add_argument(
        "--report",
        action="store_true",
        help="print each comparison as a Markdown report (prompt, answers, scores, token shift, model versions)",
    )
    _add_config(compare)


def _add_score_command(commands) -> None:
    score = commands.add_parser("score", help="reward and toxicity of answers")
    score.add_argument("--prompt", default="")
    score.add_argument("--answer")
    score.add_argument("--jsonl", type=Path, help='file of {"prompt", "answer"} lines')
    score.add_argument("--json", action="store_true")
    _add_config(score)


def _add_evaluate_command(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="the paper's comparisons on prompt suites: preference, truthfulness, toxicity"
    )
    evaluate.add_argument(
        "--suite",
        action="append",
        metavar="NAME|FILE",
        help="a shipped suite (instructions, truthfulness, toxicity) or a suite file; "
        "repeat for several (default: the three shipped suites)",
    )
    evaluate.add_argument("--pair", help="id of a configured pair (default: the first in models.yaml)")
    evaluate.add_argument(
        "--base-format",
        choices=[*BASE_MODES, "both"],
        default="both",
        help="how the base model is prompted (default: both, each its own comparison)",
    )
    evaluate.add_argument("--samples", type=_positive, default=1, help="answers per prompt and model (default 1)")
    evaluate.add_argument("--seed", type=int, default=0, help="sampling seed of the first sample (default 0)")
    evaluate.add_argument("--max-prompts", type=_positive, help="use only the first N rows of each suite")
    evaluate.add_argument(
        "--out",
        type=Path,
        help="results folder (default: evaluation/runs/<pair>-<hash>/); re-running the same command there resumes",
    )
    evaluate.add_argument("--json", action="store_true", help="print summary.json when done")
    evaluate.add_argument(
        "--rescore",
        action="store_true",
        help="re-score the answers stored in --out with the scorers configured now (a retrained head), "
        "without generating: the answers stay, the scores, the judge's preference and the row keys follow",
    )
    add_settings_flags(evaluate, skip=("seed",))  # --seed above is the sampling seed
    _add_config(evaluate)


def _add_toxicity_command(commands) -> None:
    toxicity = commands.add_parser(
        "train-toxicity", help="train the meaning-aware toxicity head on the written texts and our labelled outputs"
    )
    toxicity.add_argument(
        "--written-only", action="store_true", help="train on the written texts alone, not on our labelled outputs"
    )
    toxicity.add_argument(
        "--out-dir",
        type=Path,
        help="write the head and its card here (default: a new folder under <cache>/trained/, never the shipped head)",
    )
    toxicity.add_argument(
        "--replace-shipped", action="store_true", help="write over the served head and card in trained/toxicity/"
    )
    _add_config(toxicity)


def _add_train_command(commands) -> None:
    train = commands.add_parser(
        "train-reward", help="train the demo reward head on data/preferences, or measure the served one (--evaluate)"
    )
    train.add_argument(
        "--evaluate",
        action="store_true",
        help="train nothing: measure the served head on the independent set, the same-writer held-out split "
        "and unseen.jsonl (markdown tables)",
    )
    train.add_argument("--json", action="store_true", help="with --evaluate: print JSON instead of markdown tables")
    train.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="with --evaluate: also write the JSON, with the command, commit and date, to this file",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--with-votes",
        type=Path,
        metavar="FILE",
        help="also train on blind-vote pairs (from `votes export`), a share of them held out",
    )
    train.add_argument(
        "--out-dir",
        type=Path,
        help="write the head and its card here (default: a new folder under <cache>/trained/, never the shipped head)",
    )
    train.add_argument(
        "--replace-shipped",
        action="store_true",
        help="overwrite the head and card models.yaml points to (the committed artefact) instead",
    )
    _add_config(train)


def _add_votes_command(commands) -> None:
    votes = commands.add_parser("votes", help="the blind votes: export them for training, or print the leaderboard")
    votes_commands = votes.add_subparsers(dest="votes_command", required=True)
    export = votes_commands.add_parser("export", help="write the votes in TRL's formats")
    export.add_argument("--format", choices=["trl"], default="trl")
    export.add_argument(
        "--out",
        type=Path,
        default=Path("arena-votes.jsonl"),
        help="preference pairs go here; ties and both-bad to <stem>.unpaired.jsonl beside it",
    )
    export.add_argument("--database", type=Path, help="the vote database (default: models.yaml's arena.database)")
    _add_config(export)
    stats = votes_commands.add_parser("stats", help="print the leaderboard")
    stats.add_argument("--database", type=Path, help="the vote database (default: models.yaml's arena.database)")
    stats.add_argument("--json", action="store_true")
    _add_config(stats)


def _add_shift_command(commands) -> None:
    shift = commands.add_parser(
        "token-shift",
        help="rank the stored aligned answers of evaluation runs under the model before each step (token shift)",
    )
    shift.add_argument(
        "--run",
        type=Path,
        action="append",
        dest="runs",
        metavar="DIR",
        help="an evaluation run folder (repeatable; default: results/evaluation/align/sft-vs-base, rlhf-vs-sft and the default run)",
    )
    shift.add_argument("--out-dir", type=Path, help="where to write (default: results/token-shift/)")
    shift.add_argument("--fresh", action="store_true", help="start over instead of resuming answers.jsonl")
    shift.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_config(shift)


def _add_bench_command(commands) -> None:
    bench = commands.add_parser("bench", help="measure load, latency, throughput and memory")
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--skip-baseline", action="store_true", help="skip the naive fp32 baseline")
    bench.add_argument(
        "--start",
        action="store_true",
        help="instead: time `python app.py` from an empty cache (cold), then again on the filled cache "
        "(warm), to the page, the default pair answering and every pair answering",
    )
    bench.add_argument("--processes", type=_positive, default=1, help="--start: app processes started at once")
    _add_config(bench)


def _add_align_command(commands) -> None:
    align = commands.add_parser(
        "align", help="SFT, reward model and RL on the base model (needs requirements-train.txt)"
    )
    align.add_argument(
        "step",
        choices=("sft", "reward", "rl", "all", "reward-policy"),
        help="reward-policy: step 2 on labellers' rankings of the SFT policy's own samples (data/feedback/policy/)",
    )
    align.add_argument("--resume", action="store_true", help="continue from the step's last checkpoint")
    align.add_argument(
        "--stop-after",
        type=int,
        metavar="N",
        help="sft: stop after optimiser step N as an interruption would (checkpoint kept for --resume)",
    )
    align.add_argument(
        "--out-dir",
        type=Path,
        help="write each step's artefacts to OUT_DIR/<step> (default: <cache>/trained/align/, never the shipped ones)",
    )
    align.add_argument(
        "--replace-shipped",
        action="store_true",
        help="write over the served adapters and heads in trained/align/ instead",
    )
    _add_config(align)


def _add_fidelity_command(commands) -> None:
    fidelity = commands.add_parser(
        "fidelity", help="per-token KL and top-1 agreement of each served build against its fp32 reference"
    )
    fidelity.add_argument("--json", action="store_true", help="print one JSON object last")
    fidelity.add_argument("--models", nargs="+", metavar="ID", help="model ids (default: every served model)")
    fidelity.add_argument("--prompts", type=_positive, default=24, help="prompts, spread over the categories")
    fidelity.add_argument("--max-new-tokens", type=_positive, default=96, help="sampled answer length")
    fidelity.add_argument(
        "--precision",
        choices=("int4", "int4-int8head", "int4-mixed", "int4-fp32act", "int8", "fp32"),
        help="measure this build instead",
    )
    _add_config(fidelity)


def _add_feedback_command(commands) -> None:
    feedback = commands.add_parser(
        "feedback", help="labels on our models' outputs: build tasks, ingest labels, calibrate and report"
    )
    feedback_commands = feedback.add_subparsers(dest="feedback_command", required=True)
    tasks = feedback_commands.add_parser("tasks", help="items from an evaluation run, and blind batches")
    tasks.add_argument("--run", type=Path, help="an evaluation run folder (default: results/evaluation/default-run)")
    tasks.add_argument("--batches", type=Path, help="write one blind batch per --labeller here")
    tasks.add_argument(
        "--labeller",
        action="append",
        default=[],
        metavar="NAME:POOL[:SHARE|:K/N]",
        help="e.g. T1:train, H3:test:0.2 (a random 20 %%), P2:train:2/4 (the 2nd of 4 disjoint parts)",
    )
    tasks.add_argument(
        "--set",
        choices=("outputs", "policy"),
        default="outputs",
        help="outputs: items from --run (data/feedback/); policy: batches of the existing policy samples "
        "(data/feedback/policy/, made by `feedback samples`)",
    )
    samples = feedback_commands.add_parser(
        "samples", help="K answers per prompt from our policy (resumable), as ranking items of the policy set"
    )
    samples.add_argument("--model", default="gemma-3-270m-sft", help="the policy sampled (default: our SFT model)")
    samples.add_argument("--prompts", type=Path, help="a prompt file (default: data/rl/prompts.jsonl)")
    samples.add_argument("--limit", type=_positive, help="only the first N prompts")
    samples.add_argument("--k", type=_positive, default=4, help="answers per prompt (default 4)")
    samples.add_argument("--max-new-tokens", type=_positive, default=64, help="default 64, as the RL step samples")
    samples.add_argument("--seed", type=int, default=0, help="sample k of each prompt uses seed SEED + k")
    samples.add_argument("--checkpoint", type=Path, help="the resumable samples file (default: in the cache)")
    _add_config(samples)
    ingest = feedback_commands.add_parser("ingest", help="check one labeller's file and add it to the labels")
    ingest.add_argument("file", type=Path)
    ingest.add_argument(
        "--set", choices=("outputs", "policy"), default="outputs", help="the labelled set (default outputs)"
    )
    ingest.add_argument("--labeller", required=True)
    ingest.add_argument("--pool", choices=["train", "test"], required=True)
    ingest.add_argument(
        "--kind", default=None, help="the labeller's kind (default: AI feedback, a language-model helper)"
    )
    feedback_report = feedback_commands.add_parser(
        "report", help="agreement, the toxicity flag calibrated on the labels, the judge against the labellers"
    )
    feedback_report.add_argument("--run", type=Path)
    feedback_report.add_argument(
        "--set",
        choices=("outputs", "policy"),
        default="outputs",
        help="policy: what the policy label set holds and how its labellers agree (results/feedback/policy-report.json)",
    )
    feedback_report.add_argument("--check", action="store_true", help="fail if the committed report would change")


def _add_docs_command(commands) -> None:
    docs = commands.add_parser(
        "docs", help="render the figure tables of README.md and docs/ from the committed results/"
    )
    docs.add_argument("--check", action="store_true", help="fail where a document differs from its results")


def _add_prepare_command(commands) -> None:
    prepare = commands.add_parser(
        "prepare", help="build every model and scorer into the cache ahead of time (a Space's or image's build step)"
    )
    _add_config(prepare)


def _add_data_command(commands) -> None:
    from .training.data_builders import BUILDERS

    data = commands.add_parser(
        "data",
        help="the builders of data/ and of the studies behind its cards",
        description="\n".join(f"{name}: {builder.help}" for name, builder in BUILDERS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data.add_argument("builder", choices=list(BUILDERS))
    data.add_argument("arguments", nargs=argparse.REMAINDER, help="passed to the builder")


def _add_serve_command(commands) -> None:
    serve = commands.add_parser("serve", help="serve the web UI (same as python app.py)")
    _add_config(serve)


# The subcommands in `--help` order; each adds its parser (arguments and help) to `commands`.
SUBCOMMANDS = (
    _add_compare_command,
    _add_score_command,
    _add_evaluate_command,
    _add_toxicity_command,
    _add_train_command,
    _add_votes_command,
    _add_shift_command,
    _add_bench_command,
    _add_align_command,
    _add_fidelity_command,
    _add_feedback_command,
    _add_docs_command,
    _add_prepare_command,
    _add_data_command,
    _add_serve_command,
)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add_settings_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per setting of demo/settings.py; unset flags take models.yaml's default."""
    for setting in SETTINGS:
        if setting.name in skip:
            continue
        parser.add_argument(setting.flag(), type=setting.kind, help=setting.help)


def settings_from_args(args, config) -> SamplingSettings:
    values = {setting.name: getattr(args, setting.name) for setting in SETTINGS if hasattr(args, setting.name)}
    return settings_from_values(values, config.generation, config.limits)


def run_compare(args) -> int:
    from .compare import start_comparator
    from .sharing import markdown_report

    if args.json and args.report:
        raise SystemExit("compare: choose --json or --report, not both")

    config = load_config(args.config)
    settings = settings_from_args(args, config)
    pair = config.pair(args.pair)  # an unknown pair is an error before any model loads
    comparator = start_comparator(config, model_ids=(pair.base, pair.aligned))
    try:
        comparator.wait_ready()
        if comparator.scoring_error:
            print(f"warning: scores unavailable: {comparator.scoring_error}", file=sys.stderr)
        elif comparator.scorer is not None and comparator.scorer.reward_error:
            print(f"warning: reward unavailable: {comparator.scorer.reward_error}", file=sys.stderr)
        for prompt in args.prompts:
            result = comparator.run(prompt, settings, args.base_format, pair=args.pair, token_shift=args.token_shift)
            if args.json:
                print(json.dumps(result.to_json(), ensure_ascii=False), flush=True)
            elif args.report:
                report = markdown_report(result, config, settings, args.base_format, comparator.calibration())
                print(report, flush=True)
            else:
                print(_human(result), flush=True)
    finally:
        comparator.close()
    return 0


def _human(result) -> str:
    lines = [f"prompt: {result.prompt}"]
    if result.error:
        lines.append(f"error: {result.error}")
    for role in ("base", "aligned"):
        side = result.side(role)
        lines.append(f"--- {role}: {side.model}")
        lines.append(side.error or side.text)
        lines.append(
            f"[{side.new_tokens} tokens, {side.seconds:.2f} s, reward {side.reward}, "
            f"toxicity {side.toxicity}, toxic {side.toxic}]"
        )
        if isinstance(side.token_shift, TokenShift):
            lines.append(f"[token shift: {side.token_shift.summary()}; shifted: {side.token_shift.shifted_texts()}]")
        elif isinstance(side.token_shift, Unavailable):
            lines.append(f"[token shift not shown: {side.token_shift.reason}]")
    lines.append(f"preferred: {result.preferred} (P(aligned) = {result.p_aligned_preferred})")
    return "\n".join(lines)


def run_score(args) -> int:
    from .scoring.scorer import AnswerScorer

    if (args.answer is None) == (args.jsonl is None):
        raise SystemExit("score: give either --answer (with optional --prompt) or --jsonl FILE")
    if args.jsonl is not None:
        pairs = []
        for number, line in enumerate(args.jsonl.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                pairs.append((str(item.get("prompt", "")), str(item["answer"])))
            except (json.JSONDecodeError, KeyError, AttributeError) as error:
                raise SystemExit(f'{args.jsonl}:{number}: expected {{"prompt", "answer"}}: {error}') from None
    else:
        pairs = [(args.prompt, args.answer)]
    scorer = AnswerScorer.from_config(load_config(args.config))
    if scorer.reward_error:
        print(f"warning: reward unavailable: {scorer.reward_error}", file=sys.stderr)
    for scores in scorer.score(pairs):
        record = {key: value for key, value in scores.as_fields().items() if key != ScoreKey.REWARD_ERROR}
        print(json.dumps(record) if args.json or args.jsonl else _human_score(record), flush=True)
    return 0


def _human_score(record: dict) -> str:
    labels = ", ".join(
        f"{k} {v:.3f}" for k, v in sorted(record[ScoreKey.TOXICITY_LABELS].items(), key=lambda kv: -kv[1])
    )
    lines = [f"reward {record['reward']}", f"toxicity {record['toxicity']:.3f} (toxic: {record['toxic']})"]
    if ScoreKey.TOXIC_REASON in record:
        meaning = record[ScoreKey.TOXICITY_MEANING]
        lines.append(
            f"meaning-aware toxicity {'n/a' if meaning is None else f'{meaning:.3f}'}: {record['toxic_reason']}"
        )
    return "\n".join([*lines, labels])


def run_evaluate(args) -> int:
    from .compare import start_comparator
    from .evaluation.runner import EvaluationOptions, default_out_dir, plan_rows, run_evaluation
    from .evaluation.suites import KINDS

    config = load_config(args.config)
    pair = config.pair(args.pair)  # an unknown pair is an error before any model loads
    options = EvaluationOptions(
        suites=tuple(args.suite or ("instructions", "truthfulness", "toxicity")),
        pair=args.pair,
        base_formats=BASE_MODES if args.base_format == "both" else (args.base_format,),
        samples=args.samples,
        seed=args.seed,
        max_prompts=args.max_prompts,
        sampling=settings_from_args(args, config),
        # One length for every kind when given; models.yaml's per-kind lengths otherwise.
        answer_tokens=None if args.max_new_tokens is None else tuple((k, args.max_new_tokens) for k in KINDS),
    )
    plan_rows(options)  # a bad suite file is one clear error, before any model loads
    out_dir = args.out or default_out_dir(config, options)
    if args.rescore:
        return _rescore(config, options, out_dir, args.json)
    comparator = start_comparator(config, model_ids=(pair.base, pair.aligned))
    bar = None
    try:
        from tqdm import tqdm

        ready = comparator.wait_ready()
        failed = [model_id for model_id, ok in ready.items() if not ok]
        if failed:
            raise RuntimeError(f"models failed to load: {', '.join(failed)}")
        if comparator.scoring_error:
            print(f"warning: scores unavailable: {comparator.scoring_error}", file=sys.stderr)

        def progress(done: int, total: int, eta: float | None) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, unit="item", desc="evaluate", file=sys.stderr, dynamic_ncols=True)
            bar.update(done - bar.n)

        result = run_evaluation(config, comparator, options, out_dir, progress=progress)
    finally:
        if bar is not None:
            bar.close()
        comparator.close()
    if args.json:
        print(result.summary_path.read_text(encoding="utf-8"), end="")
    else:
        print(f"{result.generated} items run, {result.reused} reused from {out_dir}, in {result.seconds:.0f} s")
        print(f"report: {result.report_path}")
    return 0


def _rescore(config, options, out_dir: Path, as_json: bool) -> int:
    from tqdm import tqdm

    from .evaluation.rescore import rescore_run
    from .scoring.scorer import AnswerScorer

    if not (Path(out_dir) / "results.jsonl").is_file():
        raise SystemExit(f"error: nothing to re-score: {out_dir} holds no results.jsonl")
    with tqdm(unit="answer", desc="re-score", file=sys.stderr, dynamic_ncols=True) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = rescore_run(config, options, out_dir, AnswerScorer.from_config(config), progress=progress)
    if as_json:
        print(result.summary_path.read_text(encoding="utf-8"), end="")
    else:
        print(f"{result.rescored} rows re-scored, {result.current} already current, in {out_dir}")
        print(f"report: {result.report_path}")
    return 0


def run_train_toxicity(args) -> int:
    from .training.toxicity_head import train_command

    train_command(
        args.config, written_only=args.written_only, out_dir=args.out_dir, replace_shipped=args.replace_shipped
    )
    return 0


def run_train_reward(args) -> int:
    if args.evaluate:
        from .training.reward import evaluate_command

        argv = ["--evaluate"] + (["--json"] if args.json else []) + (["--out", str(args.out)] if args.out else [])
        argv += ["--config", str(args.config)] if args.config else []
        command = "python -m demo train-reward " + " ".join(argv)
        return evaluate_command(args.config, as_json=args.json, out=args.out, command=command)
    if args.json or args.out:
        raise SystemExit("error: --json and --out go with --evaluate (training always prints its JSON report)")
    from .training.reward import train_reward_head

    votes = None
    if args.with_votes is not None:
        from .arena.export import VoteTraining

        votes = VoteTraining.from_file(args.with_votes)
    out_dir = args.out_dir
    if out_dir is None and not args.replace_shipped:
        from .training.outputs import new_output_dir

        out_dir = new_output_dir("reward")
    parts = ["python -m demo train-reward", f"--seed {args.seed}" if args.seed else ""]
    parts += [
        f"--with-votes {args.with_votes}" if args.with_votes else "",
        f"--out-dir {args.out_dir}" if args.out_dir else "",
    ]
    parts += ["--replace-shipped" if args.replace_shipped else "", f"--config {args.config}" if args.config else ""]
    report = train_reward_head(
        load_config(args.config),
        seed=args.seed,
        out_dir=out_dir,
        votes=votes,
        command=" ".join(part for part in parts if part),
    )
    print(f"wrote {out_dir or 'the shipped head (models.yaml scoring.reward)'}", file=sys.stderr)
    print(json.dumps(report.to_json() if hasattr(report, "to_json") else report.__dict__, indent=2, default=str))
    if report.votes:
        from .arena.export import accuracy_lines

        print(accuracy_lines(report.votes), file=sys.stderr)
    return 0


def _vote_store(args):
    from .arena.store import VoteStore, default_database

    path = args.database or default_database(load_config(args.config))
    if not Path(path).is_file():
        raise OSError(f"{path}: no vote database (vote in the Blind vote tab first, or pass --database)")
    return VoteStore(path)


def run_votes(args) -> int:
    store = _vote_store(args)
    votes = store.votes()
    if args.votes_command == "export":
        from .arena.export import export_trl

        done = export_trl(votes, args.out)
        print(
            f"{done.pairs} preference pairs → {done.pairs_path}\n"
            f"{done.unpaired} unpaired answers (ties and both-bad) → {done.unpaired_path}"
        )
        return 0
    from dataclasses import asdict

    from .arena.ratings import leaderboard, leaderboard_text
    from .arena.systems import systems_from_config

    config = load_config(args.config)
    systems = {s.id: s for s in systems_from_config(config)}

    def is_aligned(system_id: str) -> bool:
        return systems[system_id].is_aligned if system_id in systems else system_id.endswith(":chat")

    board = leaderboard(votes, is_aligned, rounds=config.arena.bootstrap_rounds)
    if args.json:
        data = asdict(board)
        data["win_rate"] = {f"{r} vs {c}": v for (r, c), v in board.win_rate.items()}
        data["counts"] = {f"{r} vs {c}": v for (r, c), v in board.counts.items()}
        print(json.dumps(data, default=str))
    else:
        print(leaderboard_text(board, {k: s.label for k, s in systems.items()}))
    return 0


def run_token_shift(args) -> int:
    from .evaluation.token_shift import DEFAULT_RUNS, OUT_DIR, report_markdown, run_token_shift

    config = load_config(args.config)

    def progress(done: int, total: int) -> None:
        if done == total or done % 25 == 0:
            print(f"token shift: {done}/{total} answers ranked", file=sys.stderr, flush=True)

    summary = run_token_shift(
        config, args.runs or DEFAULT_RUNS, args.out_dir or OUT_DIR, resume=not args.fresh, progress=progress
    )
    print(json.dumps(summary, indent=2, ensure_ascii=False) if args.json else report_markdown(summary))
    return 0


def run_bench(args) -> int:
    from .bench import run_benchmark

    if args.start:
        from .startup_bench import run_start_bench

        result = provenance(sys.argv) | run_start_bench(load_config(args.config), args.processes)
        print(json.dumps(result, indent=None if args.json else 2))
        return 0
    return run_benchmark(load_config(args.config), as_json=args.json, baseline=not args.skip_baseline)


def run_fidelity(args) -> int:
    from .evaluation.fidelity import run_fidelity as measure

    result = provenance(sys.argv) | measure(
        load_config(args.config),
        args.models,
        prompts=args.prompts,
        max_new_tokens=args.max_new_tokens,
        precision=args.precision,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


def run_docs(args) -> int:
    from .docs import run_docs as render

    differing = render(args.check)
    if args.check and differing:
        print(f"error: {', '.join(differing)} differ from results/: run `python -m demo docs`", file=sys.stderr)
        return 1
    print(("stale: " if args.check else "rewrote: ") + ", ".join(differing) if differing else "up to date")
    return 0


def run_feedback(args) -> int:
    from .feedback import commands as feedback
    from .paths import DEFAULT_RUN_DIR

    run = args.run if getattr(args, "run", None) else DEFAULT_RUN_DIR
    if args.feedback_command == "samples":
        return run_policy_samples(args)
    if args.feedback_command == "tasks":
        if args.set == "policy":
            items = feedback.read_items(feedback.POLICY_ITEMS)
            print("\n".join(feedback.write_batches(items, args.batches, args.labeller)) if args.batches else "")
            return 0
        print(feedback.make_tasks(run, feedback.ITEMS, args.batches, args.labeller))
        return 0
    if args.feedback_command == "ingest":
        kind = args.kind or feedback.AI_FEEDBACK
        items_path, labels_path = feedback.LABEL_SETS[args.set]
        print(feedback.ingest_file(args.file, args.labeller, args.pool, items_path, labels_path, kind))
        return 0
    if args.set == "policy":
        ok, text = feedback.write_policy_report(args.check)
    else:
        ok, text = feedback.report(run, feedback.ITEMS, feedback.LABELS, feedback.REPORT, args.check)
    print(text, end="" if text.endswith("\n") else "\n", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def run_policy_samples(args) -> int:
    """`feedback samples`: K answers per prompt from the policy through the served runtime."""
    from .cache import cache_dir
    from .compare import start_comparator
    from .feedback import commands as feedback
    from .feedback.tasks import write_items
    from .paths import DATA_DIR
    from .training.align.samples import SampleSpec, items_from_samples, read_prompts, sample_policy

    config = load_config(args.config)
    if args.model not in config.models:
        raise SystemExit(f"--model {args.model!r} is not in models.yaml ({', '.join(config.models)})")
    spec = SampleSpec(args.model, k=args.k, max_new_tokens=args.max_new_tokens, seed=args.seed)
    prompts = read_prompts(args.prompts or DATA_DIR / "rl" / "prompts.jsonl", args.limit)
    checkpoint = args.checkpoint or cache_dir() / "feedback" / f"samples-{args.model}-k{args.k}-s{args.seed}.jsonl"
    comparator = start_comparator(config, model_ids=(args.model,), with_scorer=False)
    try:
        if not comparator.wait_ready().get(args.model, False):
            raise SystemExit(f"{args.model} failed to load; see the log above")
        worker = comparator.workers[args.model]

        def progress(done: int, total: int) -> None:
            print(f"{done}/{total} samples -> {checkpoint}", file=sys.stderr, flush=True)

        samples = sample_policy(config, worker, spec, prompts, checkpoint, progress=progress)
    finally:
        comparator.close()
    wanted = {row["prompt"] for row in prompts}
    items = items_from_samples([row for row in samples if row["prompt"] in wanted])
    write_items(items, feedback.POLICY_ITEMS)
    splits = {split: sum(item.split == split for item in items) for split in ("train", "validation", "test")}
    print(f"{len(items)} ranking items {splits} -> {feedback.POLICY_ITEMS}")
    return 0


def run_prepare(args) -> int:
    from .prepare import prepare

    return prepare(load_config(args.config))


def run_data(args) -> int:
    from .training.data_builders import run_builder

    return run_builder(args.builder, args.arguments)


def run_serve(args) -> int:
    from .ui.app import serve

    serve(args.config)
    return 0


def run_align(args) -> int:
    from .training.align.pipeline import main as align_main

    return align_main(
        args.step,
        args.resume,
        args.config,
        stop_after=args.stop_after,
        out_dir=args.out_dir,
        replace_shipped=args.replace_shipped,
    )


COMMANDS = {
    "align": run_align,
    "compare": run_compare,
    "token-shift": run_token_shift,
    "score": run_score,
    "evaluate": run_evaluate,
    "train-reward": run_train_reward,
    "train-toxicity": run_train_toxicity,
    "votes": run_votes,
    "bench": run_bench,
    "docs": run_docs,
    "feedback": run_feedback,
    "fidelity": run_fidelity,
    "prepare": run_prepare,
    "data": run_data,
    "serve": run_serve,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    from .generation.loading import quiet_transformers

    quiet_transformers()  # per-load progress bars would bury the JSON lines
    try:
        return COMMANDS[args.command](args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
