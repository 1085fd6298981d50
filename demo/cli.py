"""Command line: `python -m demo compare|score|train-reward|align|bench|serve`.

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
from .settings import SETTINGS, SamplingSettings, settings_from_values


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="models.yaml to use (default: $DEMO_CONFIG or ./models.yaml)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    compare = commands.add_parser("compare", help="run prompts through both models and score them")
    compare.add_argument("prompts", nargs="+", metavar="PROMPT")
    add_settings_flags(compare)
    compare.add_argument("--base-format", choices=BASE_MODES, default="raw")
    compare.add_argument("--pair", help="id of a configured pair (default: the first in models.yaml)")
    compare.add_argument("--json", action="store_true", help="one JSON object per prompt, per line")
    _add_config(compare)

    score = commands.add_parser("score", help="reward and toxicity of answers")
    score.add_argument("--prompt", default="")
    score.add_argument("--answer")
    score.add_argument("--jsonl", type=Path, help='file of {"prompt", "answer"} lines')
    score.add_argument("--json", action="store_true")
    _add_config(score)

    train = commands.add_parser("train-reward", help="train the demo reward head on data/preferences")
    train.add_argument("--seed", type=int, default=0)
    _add_config(train)

    bench = commands.add_parser("bench", help="measure load, latency, throughput and memory")
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--skip-baseline", action="store_true", help="skip the naive fp32 baseline")
    _add_config(bench)

    align = commands.add_parser("align", help="SFT, reward model and RL on the base model (needs requirements-train.txt)")
    align.add_argument("step", choices=("sft", "reward", "rl", "all"))
    align.add_argument("--resume", action="store_true", help="continue from the step's last checkpoint")
    _add_config(align)

    serve = commands.add_parser("serve", help="serve the web UI (same as python app.py)")
    _add_config(serve)
    return parser


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting of demo/settings.py; unset flags take models.yaml's default."""
    for setting in SETTINGS:
        parser.add_argument(setting.flag(), type=setting.kind, help=setting.help)


def settings_from_args(args, config) -> SamplingSettings:
    values = {setting.name: getattr(args, setting.name) for setting in SETTINGS}
    return settings_from_values(values, config.generation, config.limits)


def run_compare(args) -> int:
    from .compare import start_comparator

    config = load_config(args.config)
    settings = settings_from_args(args, config)
    config.pair(args.pair)  # an unknown pair is an error before any model loads
    comparator = start_comparator(config)
    try:
        comparator.wait_ready()
        if comparator.scoring_error:
            print(f"warning: scores unavailable: {comparator.scoring_error}", file=sys.stderr)
        elif comparator.scorer is not None and comparator.scorer.reward_error:
            print(f"warning: reward unavailable: {comparator.scorer.reward_error}", file=sys.stderr)
        for prompt in args.prompts:
            result = comparator.run(prompt, settings, args.base_format, pair=args.pair)
            if args.json:
                print(json.dumps(result.to_json(), ensure_ascii=False), flush=True)
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
                raise SystemExit(f"{args.jsonl}:{number}: expected {{\"prompt\", \"answer\"}}: {error}") from None
    else:
        pairs = [(args.prompt, args.answer)]
    scorer = AnswerScorer.from_config(load_config(args.config))
    if scorer.reward_error:
        print(f"warning: reward unavailable: {scorer.reward_error}", file=sys.stderr)
    for scores in scorer.score(pairs):
        record = {
            "reward": scores.reward,
            "toxicity": scores.toxicity,
            "toxic": scores.toxic,
            "toxicity_labels": scores.toxicity_labels,
        }
        print(json.dumps(record) if args.json or args.jsonl else _human_score(record), flush=True)
    return 0


def _human_score(record: dict) -> str:
    labels = ", ".join(f"{k} {v:.3f}" for k, v in sorted(record["toxicity_labels"].items(), key=lambda kv: -kv[1]))
    return f"reward {record['reward']}\ntoxicity {record['toxicity']:.3f} (toxic: {record['toxic']})\n{labels}"


def run_train_reward(args) -> int:
    from .training.reward import train_reward_head

    report = train_reward_head(load_config(args.config), seed=args.seed)
    print(json.dumps(report.to_json() if hasattr(report, "to_json") else report.__dict__, indent=2, default=str))
    return 0


def run_bench(args) -> int:
    from .bench import run_benchmark

    return run_benchmark(load_config(args.config), as_json=args.json, baseline=not args.skip_baseline)


def run_serve(args) -> int:
    from .ui.app import serve

    serve(args.config)
    return 0


def run_align(args) -> int:
    from .training.align.pipeline import main as align_main

    return align_main(args.step, args.resume, args.config)


COMMANDS = {
    "align": run_align,
    "compare": run_compare,
    "score": run_score,
    "train-reward": run_train_reward,
    "bench": run_bench,
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
