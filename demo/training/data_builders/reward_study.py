"""The feature study behind the reward head (MODEL_CARD.md, "Candidates"): reproducible, not served.

    SHARD=0/2 python -m demo data reward-study extract smollm2 &  # served int8 graph, blocks 6-20,
    SHARD=1/2 python -m demo data reward-study extract smollm2    # two poolings; resumable
    python -m demo data reward-study extract gemma     # the base Gemma 3 270M (int4 generating graph)
    python -m demo data reward-study cv                # choices by grouped CV on the training pairs only
    python -m demo data reward-study final             # the candidates on the independent set, once
    python -m demo data reward-study committed         # the committed head on the independent set
    python -m demo data reward-study retrain           # the CV choice, trained as train-reward would
    python -m demo data reward-study card              # the Candidates section of trained/reward/MODEL_CARD.md

Features go to $STUDY_DIR (default /tmp/reward-study), one .npz per backbone: every block's
residual stream pooled two ways for every distinct (prompt, answer) of the written parts, their
markdown-stripped variants, unseen.jsonl and the independent set. Every choice (block, pooling,
data mix, length control) is made by 5-fold cross-validation grouped by prompt on the train split
of the 1,080 written pairs; the independent set is only read by `final`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ...paths import REWARD_ARTEFACTS_DIR
from ...preferences import (
    load_independent,
    load_pairs,
    load_unseen,
    plain_variant,
    split_position,
    written_parts,
)

STUDY_DIR = Path(os.environ.get("STUDY_DIR", "/tmp/reward-study"))
POOLINGS = ("answer_mean", "last_token")


def all_texts() -> list[tuple[str, str]]:
    """Every distinct (prompt, answer), in the order they are worth having on a busy machine:
    the independent set, then the training pairs in a fixed shuffled order (so a partial
    extraction is a random sample of whole pairs), their plain variants, the same-writer test
    split, unseen.jsonl."""
    import random

    from demo.preferences import split_written

    split = split_written()
    train = list(split.train)
    random.Random(0).shuffle(train)
    pairs = load_independent() + train
    pairs += [v for v in map(plain_variant, train) if v is not None]
    pairs += list(split.test) + load_unseen()
    seen, texts = set(), []
    for p in pairs:
        for t in ((p.prompt, p.chosen), (p.prompt, p.rejected)):
            if t not in seen:
                seen.add(t)
                texts.append(t)
    return texts


SMOL_LAYERS = tuple(range(6, 21, 2))


def _all_residuals_model(model_dir: Path, target: Path) -> Path:
    """A copy of the served block-20 int8 graph that also outputs the residual stream after
    every block (the skip sums its SkipSimplifiedLayerNormalization nodes already compute)."""
    import onnx

    target.mkdir(parents=True, exist_ok=True)
    for name in (
        "genai_config.json",
        "model.onnx.data",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    ):
        if not (target / name).exists():
            shutil.copy(model_dir / name, target / name)
    model = onnx.load(str(model_dir / "model.onnx"), load_external_data=False)
    hidden = json.loads((model_dir / "genai_config.json").read_text())["model"]["decoder"]["hidden_size"]
    for layer in SMOL_LAYERS[:-1]:
        name = f"/model/layers.{layer}/input_layernorm/output_3"
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch_size", "sequence_length", hidden])
        )
    onnx.save(model, str(target / "model.onnx"))
    return target


GEMMA_LAYERS = (6, 9, 12, 15, 18)


def _gemma_conversation(tokenizer, prompt: str, answer: str, max_tokens: int = 512):
    """The base model has no chat template: the app's few-shot format without the examples."""
    from demo.scoring.reward_inputs import Conversation

    head = tokenizer(f"Instruction: {prompt}\nAnswer:", add_special_tokens=True)["input_ids"]
    body = tokenizer(" " + answer, add_special_tokens=False)["input_ids"]
    body = body[-(max_tokens - len(head)) :] if len(head) + len(body) > max_tokens else body
    return Conversation(ids=[*head, *body], answer_start=len(head), answer_end=len(head) + len(body))


def extract_gemma() -> None:
    """The base Gemma 3 270M at five blocks, from the app's int4 generating graph with residual
    outputs added (its LM head still runs: a study tool, not a serving path). Untested so far."""
    import onnx
    import onnxruntime as ort

    from demo.generation.loading import load_tokenizer

    cache = Path(os.environ.get("DEMO_CACHE_DIR", "/root/.cache/base-vs-aligned"))
    source = next((cache / "onnx").glob("gemma-3-270m*-int4-cpu"))
    target = STUDY_DIR / "gemma-residuals"
    target.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(source / "model.onnx"), load_external_data=False)
    # The residual after block k is the skip sum of block k's input norm; after the last block,
    # of the final norm (its 4th output, which the builder leaves unnamed).
    final = next(
        n for n in model.graph.node if n.op_type == "SkipSimplifiedLayerNormalization" and "final_norm" in n.name
    )
    if len(final.output) < 4 or not final.output[3]:
        outs = list(final.output) + [""] * (4 - len(final.output))
        outs[3] = "final_residual"
        del final.output[:]
        final.output.extend(outs)
    names = [f"/model/layers.{k}/input_layernorm/output_3" for k in GEMMA_LAYERS[:-1]] + [final.output[3]]
    if not (target / "model.onnx").exists():
        shutil.copy(source / "model.onnx.data", target / "model.onnx.data")
        for n in names:
            model.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
        onnx.save(model, str(target / "model.onnx"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    session = ort.InferenceSession(str(target / "model.onnx"), options, providers=["CPUExecutionProvider"])
    decoder = json.loads((source / "genai_config.json").read_text())["model"]["decoder"]
    empty = {
        i.name: np.zeros((1, decoder["num_key_value_heads"], 0, decoder["head_size"]), np.float32)
        for i in session.get_inputs()
        if i.name.startswith("past_key_values.")
    }
    tokenizer = load_tokenizer(next((cache / "checkpoints").glob("gemma-3-270m*")))
    texts = all_texts()
    out = {k: np.zeros((len(GEMMA_LAYERS), len(texts), decoder["hidden_size"]), np.float32) for k in POOLINGS}
    started = time.perf_counter()
    for i, (prompt, answer) in enumerate(texts):
        c = _gemma_conversation(tokenizer, prompt, answer)
        feed = {
            "input_ids": np.asarray([c.ids], np.int64),
            "attention_mask": np.ones((1, len(c.ids)), np.int64),
            **empty,
        }
        for j, state in enumerate(session.run(names, feed)):
            out["answer_mean"][j, i] = state[0][c.answer_span].mean(axis=0)
            out["last_token"][j, i] = state[0][len(c.ids) - 1]
        if i % 250 == 0:
            print(f"gemma: {i}/{len(texts)} texts, {time.perf_counter() - started:.0f} s", flush=True)
    np.savez(STUDY_DIR / "gemma.0.npz", layers=np.asarray(GEMMA_LAYERS), done=np.ones(len(texts), bool), **out)
    (STUDY_DIR / "gemma.json").write_text(json.dumps({"texts": texts, "seconds": time.perf_counter() - started}))
    print(f"gemma: {len(texts)} texts in {time.perf_counter() - started:.0f} s")


def extract(name: str) -> None:
    """Served-precision (onnxruntime int8) features of every text at every studied block."""
    from demo.config import load_config
    from demo.generation.loading import load_tokenizer
    from demo.scoring.reward_backbone import OnnxBackbone, build_residual_model, resolve_backbone

    config = load_config()
    spec = config.scoring.reward
    checkpoint, identity = resolve_backbone(config, spec)
    served = build_residual_model(checkpoint, 20, "int8")
    model_dir = _all_residuals_model(served, STUDY_DIR / "smollm2-all-residuals")
    backbone = OnnxBackbone(
        model_dir, load_tokenizer(checkpoint), layer=20, precision="int8", max_tokens=512, identity=identity, threads=1
    )
    outputs = [f"/model/layers.{layer}/input_layernorm/output_3" for layer in SMOL_LAYERS[:-1]] + ["residual"]
    texts = all_texts()
    shard, shards = (int(x) for x in os.environ.get("SHARD", "0/1").split("/"))
    mine = list(range(shard, len(texts), shards))
    out = {k: np.zeros((len(SMOL_LAYERS), len(texts), backbone.hidden_size), np.float32) for k in POOLINGS}
    done = np.zeros(len(texts), bool)
    previous = STUDY_DIR / f"{name}.{shard}.npz"
    texts_file = STUDY_DIR / f"{name}.json"
    if (
        previous.exists()
        and texts_file.exists()
        and json.loads(texts_file.read_text())["texts"] == [list(t) for t in texts]
    ):
        # Resume: a killed run keeps what it had saved (every 40 texts).
        with np.load(previous) as saved:
            done = saved["done"].copy()
            out = {k: saved[k].copy() for k in POOLINGS}
        mine = [i for i in mine if not done[i]]
    started = time.perf_counter()
    STUDY_DIR.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        np.savez(STUDY_DIR / f"{name}.{shard}.npz", layers=np.asarray(SMOL_LAYERS), done=done, **out)
        (STUDY_DIR / f"{name}.json").write_text(json.dumps({"texts": texts}))

    for n, i in enumerate(mine):
        prompt, answer = texts[i]
        c = backbone.conversation(prompt, answer)
        feed = {
            "input_ids": np.asarray([c.ids], dtype=np.int64),
            "attention_mask": np.ones((1, len(c.ids)), dtype=np.int64),
            **backbone._empty_past,
        }
        states = backbone.session.run(outputs, feed)
        for j, state in enumerate(states):
            out["answer_mean"][j, i] = state[0][c.answer_span].mean(axis=0)
            out["last_token"][j, i] = state[0][len(c.ids) - 1]
        done[i] = True
        if n % 40 == 39:
            save()
            print(f"{name} shard {shard}: {n + 1}/{len(mine)} texts, {time.perf_counter() - started:.0f} s", flush=True)
    save()
    print(f"{name} shard {shard}: {len(mine)} texts in {time.perf_counter() - started:.0f} s")


# --- cross-validation on the training pairs -------------------------------------------------------


class Features:
    """Pooled features of every studied text, looked up by (prompt, answer)."""

    def __init__(self, name: str):
        shards = [np.load(f) for f in sorted(STUDY_DIR.glob(f"{name}.*.npz"))]
        self.layers = [int(x) for x in shards[0]["layers"]]
        done = np.zeros_like(shards[0]["done"])
        self.arrays = {k: np.zeros_like(shards[0][k]) for k in POOLINGS}
        for shard in shards:
            for k in POOLINGS:
                self.arrays[k][:, shard["done"]] = shard[k][:, shard["done"]]
            done |= shard["done"]
        texts = json.loads((STUDY_DIR / f"{name}.json").read_text())["texts"]
        self.row = {(p, a): i for i, (p, a) in enumerate(texts) if done[i]}

    def has(self, pair) -> bool:
        return (pair.prompt, pair.chosen) in self.row and (pair.prompt, pair.rejected) in self.row

    def get(self, texts, layer: int, pooling: str) -> np.ndarray:
        rows = [self.row[t] for t in texts]
        j = self.layers.index(layer)
        if pooling == "mean+last":
            return np.concatenate([self.arrays["answer_mean"][j, rows], self.arrays["last_token"][j, rows]], axis=1)
        return self.arrays[pooling][j, rows]


def pair_arrays(features: list[Features], pairs, layer_pooling):
    """[pairs, dim] chosen and rejected features; several (backbone, layer, pooling) concatenated."""
    chosen = np.concatenate(
        [
            f.get([(p.prompt, p.chosen) for p in pairs], L, pool)
            for f, (L, pool) in zip(features, layer_pooling, strict=True)
        ],
        axis=1,
    )
    rejected = np.concatenate(
        [
            f.get([(p.prompt, p.rejected) for p in pairs], L, pool)
            for f, (L, pool) in zip(features, layer_pooling, strict=True)
        ],
        axis=1,
    )
    return torch.from_numpy(chosen), torch.from_numpy(rejected)


def _lengths(pairs):
    return torch.tensor([len(p.chosen) for p in pairs]), torch.tensor([len(p.rejected) for p in pairs])


def _accuracy(head, chosen, rejected) -> list[bool]:
    with torch.no_grad():
        return [bool(x) for x in (head(chosen) > head(rejected))]


FOLDS = 5


def cross_validate(candidate: dict, written_by_part: dict, features: dict) -> dict:
    """5-fold CV grouped by prompt (fold = the prompt's sha256 position) on the 1,080 written
    pairs' train split. Always measured on every held-out-fold pair of parts a–d, whatever the candidate trains on;
    also on the held-out pairs whose chosen answer is the shorter one, and on the plain
    (markdown-stripped) variants of held-out pairs that had markdown: the two shortcut checks."""
    from demo.training.reward import HeadConfig, fit_head

    everything = [p for part in "abcd" for p in written_by_part[part]]
    parts = candidate["parts"]
    fold_of = {id(p): int(split_position(p.prompt) * FOLDS) for p in everything}
    feats = [features[name] for name, _, _ in candidate["features"]]
    lp = [(layer, pooling) for _, layer, pooling in candidate["features"]]
    config = HeadConfig(**candidate.get("head", {}))
    right_all, right_short, right_plain = [], [], []
    for fold in range(FOLDS):
        train = [p for part in parts for p in written_by_part[part] if fold_of[id(p)] != fold]
        if candidate.get("plain"):
            train += [v for v in map(plain_variant, train) if v is not None and all(f.has(v) for f in feats)]
        test = [p for p in everything if fold_of[id(p)] == fold]
        chosen, rejected = pair_arrays(feats, train, lp)
        head = fit_head(chosen, rejected, config, seed=0, lengths=_lengths(train)).head
        right = _accuracy(head, *pair_arrays(feats, test, lp))
        right_all += right
        right_short += [r for r, p in zip(right, test, strict=True) if len(p.chosen) < len(p.rejected)]
        plain = [v for v in map(plain_variant, test) if v is not None and all(f.has(v) for f in feats)]
        if plain:
            right_plain += _accuracy(head, *pair_arrays(feats, plain, lp))
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    result = {"cv": mean(right_all), "cv_chosen_shorter": mean(right_short), "cv_plain": mean(right_plain)}
    parts_of_score = [v for v in result.values() if not np.isnan(v)]
    result["cv_score"] = sum(parts_of_score) / len(parts_of_score)
    result["pairs"] = len(right_all)
    return result


def _load_written_by_part() -> dict:
    """The train split's pairs by part: the same-writer test split stays out of every choice."""
    from demo.preferences import split_written

    train = set(split_written().train)
    return {path.stem[-1]: [p for p in load_pairs(path) if p in train] for path in written_parts()}


def candidates(backbones: list[str]) -> list[dict]:
    """Every candidate of the study, named."""
    out = []
    base = {"parts": "abcd", "plain": True}
    out.append(
        {
            "name": "today's head (block 20, answer mean, MLP 64), 660 pairs",
            "parts": "abc",
            "features": [("smollm2", 20, "answer_mean")],
        }
    )
    out.append({"name": "today's head, 1,080 pairs", "parts": "abcd", "features": [("smollm2", 20, "answer_mean")]})
    out.append({**base, "name": "1,080 pairs + plain variants", "features": [("smollm2", 20, "answer_mean")]})
    for layer in SMOL_LAYERS:
        for pooling in ("answer_mean", "last_token", "mean+last"):
            if (layer, pooling) != (20, "answer_mean"):
                out.append(
                    {**base, "name": f"SmolLM2 block {layer}, {pooling}", "features": [("smollm2", layer, pooling)]}
                )
    out.append(
        {
            **base,
            "name": "SmolLM2 block 20, answer mean, length control",
            "features": [("smollm2", 20, "answer_mean")],
            "head": {"length_control": True},
        }
    )
    out.append(
        {
            **base,
            "name": "SmolLM2 block 20, answer mean, linear",
            "features": [("smollm2", 20, "answer_mean")],
            "head": {"kind": "linear"},
        }
    )
    out.append(
        {
            **base,
            "name": "SmolLM2 block 20, answer mean, ensemble of 5",
            "features": [("smollm2", 20, "answer_mean")],
            "head": {"ensemble": 5},
        }
    )
    if "gemma" in backbones:
        for layer in GEMMA_LAYERS:
            out.append(
                {
                    **base,
                    "name": f"Gemma 3 270M base block {layer}, answer mean",
                    "features": [("gemma", layer, "answer_mean")],
                }
            )
    return out


def run_cv(extra: list[dict] | None = None) -> None:
    if os.environ.get("QUICK"):
        extra = [
            c
            for c in candidates(["smollm2"])
            if any(x in c["name"] for x in ("today", "block 14", "block 18", "block 20", "plain"))
        ]
    backbones = [n for n in ("smollm2", "gemma") if any(STUDY_DIR.glob(f"{n}.*.npz"))]
    features = {n: Features(n) for n in backbones}
    # Only pairs whose two answers every backbone has read (a partial extraction is a random sample).
    written = {
        k: [p for p in v if all(f.has(p) for f in features.values())] for k, v in _load_written_by_part().items()
    }
    print("pairs with features:", {k: len(v) for k, v in written.items()}, flush=True)
    results_file = STUDY_DIR / "cv.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    torch.set_num_threads(1)
    for candidate in extra or candidates(backbones):
        if candidate["name"] in results:
            continue
        t0 = time.perf_counter()
        results[candidate["name"]] = {**cross_validate(candidate, written, features), "candidate": candidate}
        r = results[candidate["name"]]
        print(
            f"{r['cv_score']:.3f}  cv {r['cv']:.3f}  shorter {r['cv_chosen_shorter']:.3f}  plain {r['cv_plain']:.3f}"
            f"  {candidate['name']}  ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        results_file.write_text(json.dumps(results, indent=1))


def evaluate_committed_head() -> dict:
    """The committed head (trained/reward/reward_head.safetensors, numpy, as served) on the
    independent set, from the study's block-20 answer-mean features (the served int8 graph)."""
    from demo.scoring.reward_head import load_head_weights
    from demo.training.reward import evaluate_rewards, evaluation_table

    head, metadata = load_head_weights(REWARD_ARTEFACTS_DIR / "reward_head.safetensors")
    features = Features("smollm2")
    layer, pooling = int(metadata["layer"]), metadata["feature"]
    result = {}
    for name, pairs in (("independent", load_independent()),):
        kept = [p for p in pairs if features.has(p)]
        chosen, rejected = pair_arrays([features], kept, [(layer, pooling)])
        evaluation = evaluate_rewards(name, kept, head(chosen.numpy()), head(rejected.numpy()))
        print(f"## {name}: {len(kept)} of {len(pairs)} pairs\n\n{evaluation_table(evaluation)}\n")
        result[name] = evaluation
    return result


def final() -> None:
    """Each CV-studied candidate retrained on the whole train split, measured once on the
    independent set; writes trained/reward/candidates.json for the model card."""
    from demo.training.reward import HeadConfig, evaluate_rewards, fit_head

    results = json.loads((STUDY_DIR / "cv.json").read_text())
    backbones = {name for r in results.values() for name, _, _ in r["candidate"]["features"]}
    features = {n: Features(n) for n in backbones}
    # As in `cv`: only pairs every backbone has read (a partial extraction is a random sample).
    written = {
        k: [p for p in v if all(f.has(p) for f in features.values())] for k, v in _load_written_by_part().items()
    }
    independent = load_independent()
    chosen_name = os.environ.get("CHOSEN") or max(results, key=lambda k: results[k]["cv_score"])
    rows = []
    for name, r in results.items():
        c = r["candidate"]
        feats = [features[b] for b, _, _ in c["features"]]
        lp = [(layer, pooling) for _, layer, pooling in c["features"]]
        train = [p for part in c["parts"] for p in written[part]]
        if c.get("plain"):
            train += [v for v in map(plain_variant, train) if v is not None and all(f.has(v) for f in feats)]
        head = fit_head(
            *pair_arrays(feats, train, lp), HeadConfig(**c.get("head", {})), seed=0, lengths=_lengths(train)
        ).head
        with torch.no_grad():
            ch, rj = pair_arrays(feats, independent, lp)
            ev = evaluate_rewards("independent", independent, head(ch).tolist(), head(rj).tolist())
        rows.append(
            {
                "name": name,
                "chosen": name == chosen_name,
                **{k: r[k] for k in ("cv_score", "cv", "cv_chosen_shorter", "cv_plain")},
                "independent": ev.overall.accuracy,
                **{a: g.accuracy for a, g in ev.by_aspect.items()},
                "longer_wins": ev.overall.longer_wins,
                "train_pairs": len(train),
            }
        )
        print(f"{r['cv_score']:.3f}  independent {ev.overall.accuracy:.3f}  {name}", flush=True)
    (REWARD_ARTEFACTS_DIR / "candidates.json").write_text(json.dumps({"candidates": rows}, indent=1) + "\n")


class StudyFeatures:
    """The served backbone with its block-20 answer-mean features answered from the study's
    extraction (the same int8 graph, one forward pass per text); texts the study did not read
    go to the backbone itself. Lets `ship` train without a second ~40-minute pass."""

    def __init__(self, backbone, features: Features, layer: int = 20, pooling: str = "answer_mean"):
        self.backbone, self.study, self.layer_pooling = backbone, features, (layer, pooling)
        self.layer, self.max_tokens = backbone.layer, backbone.max_tokens
        self.identity, self.dtype = backbone.identity, backbone.dtype
        self.from_study = 0

    def features(self, texts, kind):
        assert (self.layer, kind) == self.layer_pooling, "the study holds block 20, answer mean"
        known = [t for t in texts if t in self.study.row]
        self.from_study += len(known)
        out = np.zeros((len(texts), self.backbone.hidden_size), np.float32)
        rows = {t: i for i, t in enumerate(texts)}
        if known:
            out[[rows[t] for t in known]] = self.study.get(known, *self.layer_pooling)
        missing = [t for t in texts if t not in self.study.row]
        if missing:
            out[[rows[t] for t in missing]] = self.backbone.features(missing, kind)
        return out


RETRAINED = STUDY_DIR / "retrained"


def retrain() -> None:
    """The CV choice (block 20, answer mean, 1,080 pairs + plain variants) trained exactly as
    `python -m demo train-reward` trains (features from the study), into $STUDY_DIR/retrained/:
    a candidate to test against the sanity pairs, never written over the shipped head."""
    import logging

    from demo.config import load_config
    from demo.scoring.reward_backbone import OnnxBackbone
    from demo.training.reward import HeadConfig, train_reward_head

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = load_config()
    spec = config.scoring.reward
    head_config = HeadConfig(plain_variants=True)
    backbone = StudyFeatures(OnnxBackbone.from_config(config, spec, layer=head_config.layer), Features("smollm2"))
    report = train_reward_head(config, head_config=head_config, backbone=backbone, out_dir=RETRAINED)
    print(f"features from the study: {backbone.from_study}; independent {report.independent_accuracy:.4f}")
    (RETRAINED / "report.json").write_text(json.dumps({"independent_accuracy": report.independent_accuracy}))


def card() -> None:
    """Replace the model card's Candidates section with the study's table and outcome."""
    path = REWARD_ARTEFACTS_DIR / "MODEL_CARD.md"
    text = path.read_text(encoding="utf-8")
    start = text.index("## Candidates")
    end = text.index("\n## ", start + 1) + 1
    retrained = json.loads((RETRAINED / "report.json").read_text())["independent_accuracy"]
    path.write_text(text[:start] + candidates_section(retrained).lstrip("\n") + "\n" + text[end:], encoding="utf-8")


def candidates_section(retrained_independent: float) -> str:
    """The model card's "Candidates" section, from trained/reward/candidates.json (`final`)."""
    rows = json.loads((REWARD_ARTEFACTS_DIR / "candidates.json").read_text())["candidates"]
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    lines = [
        "| candidate | CV score | CV | CV, chosen shorter | CV, plain | independent | helpful | honest | harmless |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: -r["cv_score"]):
        name = f"{r['name']} (CV choice)" if r["chosen"] else r["name"]
        name = f"**{name} (shipped)**" if r["name"].startswith("today's head (block 20") else name
        lines.append(
            f"| {name} | {r['cv_score']:.3f} | {pct(r['cv'])} | {pct(r['cv_chosen_shorter'])} | {pct(r['cv_plain'])} "
            f"| {pct(r['independent'])} | {pct(r['helpful'])} | {pct(r['honest'])} | {pct(r['harmless'])} |"
        )
    best = max(rows, key=lambda r: r["cv_score"])
    chosen = next(r for r in rows if r["chosen"])
    shipped = next(r for r in rows if r["name"].startswith("today's head (block 20"))
    texts = len(json.loads((STUDY_DIR / "smollm2.json").read_text())["texts"])
    return f"""
## Candidates, and what was chosen

`python -m demo data reward-study` (steps in `--help` and the module's docstring) read every distinct (prompt, answer) of the
study — {texts} texts: the written parts, their markdown-stripped variants, the same-writer test
split, unseen.jsonl and the independent set — through the served int8 graph once, keeping the
residual stream after blocks 6–20 pooled two ways. Every candidate was scored by 5-fold
cross-validation grouped by prompt on the **train split only** (917 pairs): the CV score is the
mean of CV accuracy on all held-out-fold pairs, on those whose chosen answer is the shorter one,
and on markdown-stripped variants (part D's markdown shortcut). The independent set was read once
per candidate, after the CV scores were fixed, and chose nothing.

**The rule.** The best CV score was {best["cv_score"]:.3f} ({best["name"]}); with ~900 pairs one standard
error is about 0.01, so every candidate within 0.01 of it is as good as the data can tell. Among
those, the cheapest to serve reads block 20 averaged over the answer (the feature the toxicity
head already reads: one backbone pass for both heads, the same 37k-parameter MLP), and of those
the single MLP with the highest CV score is **{chosen["name"]}**.

**The gate it failed.** Retrained as `train-reward` trains (`data reward-study retrain`), it measured
{pct(retrained_independent)} on the independent set (the study's own fit: {pct(chosen["independent"])}; same data and seed,
another order of pairs under dropout — about a point of the spread below is training noise),
against {pct(shipped["independent"])} for the shipped head: no measurable gain. And it failed
`tests/integration/test_reward.py::test_real_head_prefers_the_obvious_answer`: it scores "What is the
capital of Germany? What is the capital of Spain? …" (the base model's way of continuing a
prompt) above "The capital of France is Paris." Re-scoring the default evaluation's answers of
the time with it lowered the aligned model's win rates over both base formats sharply (that
re-score was not kept, so its figures are not quoted). Written pairs, whoever writes them, hold
few answers that look like a base model's continuations; the page's main job is exactly that
comparison. **So the shipped head stays** (the row marked "shipped"), and the next candidates
should be scored on base-model continuations too (the blind votes will supply labelled ones).
`python -m demo train-reward` trains on today's 917-pair split, so it does not reproduce the
shipped head (trained on the 660 pairs of parts a–c before part D existed); the row "today's head
…, 660 pairs" is that recipe on today's split of parts a–c, and measures what the shipped head does.

| candidate | CV score | CV | CV, chosen shorter | CV, plain | independent | helpful | honest | harmless |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(lines[2:])}

Not tried: the base Gemma 3 270M's hidden states (`data reward-study extract gemma` exists, untested: a
Gemma pass over the study's texts did not fit this round's CPU budget) and concatenations of two
backbones. Sentence encoders that ship in packages (all-MiniLM-L6-v2, all-mpnet-base-v2) were
measured outside this project and did worse than SmolLM2's states.
"""


def main(argv: list[str]) -> int:
    """`extract smollm2|gemma`, `cv`, `final`, `committed`, `retrain` or `card` (module doc)."""
    if not argv:
        raise SystemExit("reward-study: name a step: extract smollm2|gemma, cv, final, committed, retrain, card")
    command = argv[0]
    if command == "extract":
        extract_gemma() if argv[1:] == ["gemma"] else extract(argv[1])
    else:
        steps: dict[str, Callable[[], object]] = {
            "cv": run_cv,
            "final": final,
            "committed": evaluate_committed_head,
            "retrain": retrain,
            "card": card,
        }
        steps[command]()
    return 0
