"""Validate data/rl/prompts.jsonl (`python -m demo data rl-prompts-check`): counts, duplicates, and disjointness from
evaluation / example / demonstration / preference prompts.

Near-identical = same text after lowercasing and stripping punctuation, or
token Jaccard >= 0.6. Exit code 1 if anything fails.
"""

import glob
import json
import os
import re

import yaml

from ...paths import REPO_ROOT

ROOT = str(REPO_ROOT)
RL = os.path.join(ROOT, "data", "rl", "prompts.jsonl")
THRESH = 0.6


def norm(s):
    s = s.lower()
    s = re.sub(r"[^\w\s]", " ", s)
    return " ".join(s.split())


def toks(s):
    return set(norm(s).split())


def jacc(a, b):
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def load_jsonl(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # file may still be growing
            if isinstance(obj, dict) and isinstance(obj.get("prompt"), str):
                out.append(obj["prompt"])
    return out


def load_refs():
    refs = {}
    pats = [
        "evaluation/*.jsonl",
        "data/demonstrations/*.jsonl",
        "data/preferences/*.jsonl",
        "data/preferences/written/*.jsonl",
        "data/preferences/independent/*.jsonl",
    ]
    for pat in pats:
        for p in sorted(glob.glob(os.path.join(ROOT, pat))):
            refs[os.path.relpath(p, ROOT)] = load_jsonl(p)
    for p in sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml"))):
        with open(p, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        ps = data.get("prompts", []) if isinstance(data, dict) else []
        out = []
        for x in ps:
            if isinstance(x, str):
                out.append(x)
            elif isinstance(x, dict) and isinstance(x.get("prompt"), str):
                out.append(x["prompt"])
        refs[os.path.relpath(p, ROOT)] = out
    return refs


def main(argv: list[str]) -> int:
    ok = True
    rows = [json.loads(line) for line in open(RL, encoding="utf-8") if line.strip()]
    for r in rows:
        assert set(r) == {"prompt", "category"} and all(isinstance(v, str) for v in r.values()), r
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["category"]] = counts.get(r["category"], 0) + 1
    print("rows:", len(rows), counts)
    lens = [len(r["prompt"].split()) for r in rows]
    print(f"words per prompt: min {min(lens)} max {max(lens)} mean {sum(lens) / len(lens):.1f}")

    prompts = [r["prompt"] for r in rows]
    T = [toks(p) for p in prompts]
    N = [norm(p) for p in prompts]
    internal = []
    for i in range(len(prompts)):
        for j in range(i + 1, len(prompts)):
            if N[i] == N[j] or jacc(T[i], T[j]) >= THRESH:
                internal.append((round(jacc(T[i], T[j]), 2), prompts[i], prompts[j]))
    print("internal duplicates / near-duplicates:", len(internal))
    for x in internal:
        print("  ", x)
        ok = False

    refs = load_refs()
    allref = []
    for path, ps in refs.items():
        print(f"  ref {path:<55s} {len(ps)} prompts")
        allref += [(path, p) for p in ps]
    print("reference prompts total:", len(allref))
    RN = [norm(p) for _, p in allref]
    RT = [toks(p) for _, p in allref]
    clashes = []
    maxj = 0.0
    for i, p in enumerate(prompts):
        for k, (path, q) in enumerate(allref):
            j = jacc(T[i], RT[k])
            maxj = max(maxj, j)
            if N[i] == RN[k] or j >= THRESH:
                clashes.append((round(j, 2), p, path, q))
    print(f"max Jaccard vs references: {maxj:.3f}")
    print("clashes with references:", len(clashes))
    for c in clashes:
        print("  ", c)
        ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1
