"""What the RL reward model (step 2) likes that it should not: the answers sampled in the RL
rounds (the round-N/samples.jsonl files in the cache, each with its training-RM reward), scored
again by the app's independent judge; prints rank correlations of both with surface features and
the answers the two disagree on most. Writes trained/align/rlhf/samples_scored.jsonl (and reuses its
judge scores while the samples are the same). Run: python -m demo data reward-faults [--rescore]"""

import json
import re
import statistics

from ...config import load_config
from ...paths import ALIGN_ARTEFACTS_DIR
from ...scoring.scorer import AnswerScorer
from ..align.common import checkpoints_dir

OUT = ALIGN_ARTEFACTS_DIR / "rlhf" / "samples_scored.jsonl"
FEATURES = {
    "characters": lambda a: len(a),
    "line breaks": lambda a: a.count("\n"),
    "list items": lambda a: len(re.findall(r"^\s*([-*•]|\d+[.)])\s", a, re.M)),
    "HTML or markdown markup": lambda a: len(re.findall(r"<[a-z/]|\*\*|\[", a)),
    "exclamation marks": lambda a: a.count("!"),
}


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    for rank, i in enumerate(order):
        out[i] = float(rank)
    return out


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.mean(ra), statistics.mean(rb)
    num = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    den = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return num / den if den else 0.0


def main(argv: list[str]) -> int:
    rows = []
    for path in sorted(checkpoints_dir("rl").glob("round-*/samples.jsonl")):
        for line in path.read_text().splitlines():
            rows.append({**json.loads(line), "round": int(path.parent.name.split("-")[1])})
    if not rows:
        raise SystemExit("no RL samples in the cache: run `python -m demo align rl` first")
    stored = [json.loads(line) for line in OUT.read_text().splitlines()] if OUT.is_file() else []
    if "--rescore" in argv or [(r["prompt"], r["answer"], r["reward"]) for r in stored] != [
        (r["prompt"], r["answer"], r["reward"]) for r in rows
    ]:
        scores = AnswerScorer.from_config(load_config()).score([(r["prompt"], r["answer"]) for r in rows])
        for row, score in zip(rows, scores):
            row["judge"] = score.reward
        OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:  # the same samples were judged before (--rescore judges them again)
        rows = stored
    rows = [r for r in rows if r["judge"] is not None]
    rm, judge = [r["reward"] for r in rows], [r["judge"] for r in rows]
    print(f"{len(rows)} sampled answers; Spearman(training RM, judge) = {spearman(rm, judge):+.3f}")
    for name, feature in FEATURES.items():
        values = [feature(r["answer"]) for r in rows]
        print(f"  {name:24s} with training RM {spearman(values, rm):+.3f}   with judge {spearman(values, judge):+.3f}")
    z = {
        id(r): (r["reward"] - statistics.mean(rm)) / statistics.pstdev(rm)
        - (r["judge"] - statistics.mean(judge)) / statistics.pstdev(judge)
        for r in rows
    }
    print("Liked by the training RM, not by the judge:")
    for r in sorted(rows, key=lambda r: -z[id(r)])[:6]:
        print(f"  RM {r['reward']:+.2f} judge {r['judge']:+.2f} | {r['prompt'][:60]} | {r['answer'][:140]!r}")
    return 0
