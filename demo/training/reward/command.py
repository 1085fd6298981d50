"""Measuring the served head from the command line: `python -m demo train-reward --evaluate
[--json] [--out FILE]`, also reachable as `python -m demo.training.reward --evaluate`."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .evaluation import evaluate_served_head, evaluation_table


def evaluate_command(config_path: Path | str | None, *, as_json: bool, out: Path | None, command: str) -> int:
    """The served head's accuracy tables (independent set, same-writer held-out split, unseen):
    markdown tables, or JSON with `as_json`; with `out`, also the JSON with `command`, the commit,
    the machine and the date."""
    from ...config import load_config

    evaluations = evaluate_served_head(load_config(config_path) if config_path else load_config())
    tables = {name: evaluation.to_json() for name, evaluation in evaluations.items()}
    if out:
        from ...provenance import provenance

        record = provenance([]) | {"command": command} | tables
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if as_json:
        print(json.dumps(tables, indent=2))
    else:
        for name, evaluation in evaluations.items():
            print(f"## {name} ({evaluation.overall.pairs} pairs)\n\n{evaluation_table(evaluation)}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m demo.training.reward --evaluate`: the served head's accuracy tables (the same as
    `python -m demo train-reward --evaluate`)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m demo.training.reward", description=main.__doc__)
    parser.add_argument("--evaluate", action="store_true", help="measure the served head (default action)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown tables")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--out", type=Path, help="also write the JSON, with the command, commit and date, to this file")
    args = parser.parse_args(argv)
    command = "python -m demo.training.reward " + " ".join(argv if argv is not None else sys.argv[1:])
    return evaluate_command(args.config, as_json=args.json, out=args.out, command=command)
