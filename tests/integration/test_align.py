"""The align pipeline (demo/training/align) on a tiny random Gemma-3-shaped model: each step runs
in seconds, its loss falls, its adapter saves, merges (and matches PEFT's own merge), builds to
ONNX and generates; an interrupted run resumes to the same final state."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")

import torch  # noqa: E402

from demo.training.align.common import GEMMA_CHAT_TEMPLATE, chat_tokenizer  # noqa: E402
from demo.training.align.sft import SFTSettings, train_sft  # noqa: E402

WORDS = "the cat sat on a mat and the dog ran to the red door while birds sang".split()


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt = " ".join(rng.choice(WORDS) for _ in range(5))
        # A learnable answer: always the same short phrase, so the loss must fall quickly.
        rows.append(
            {
                "prompt": [{"role": "user", "content": prompt}],
                "completion": [{"role": "assistant", "content": "the cat sat on the mat"}],
            }
        )
    return rows


TINY_SFT = SFTSettings(
    max_steps=12,
    batch_size=4,
    max_length=64,
    learning_rate=1e-2,
    eval_steps=6,
    save_steps=4,
    logging_steps=1,
    lora_r=16,
    lora_alpha=32,
    lora_dropout=0.0,
)


def _losses(report: dict) -> list[float]:
    return [h["loss"] for h in report["log_history"] if "loss" in h]


@pytest.fixture(scope="module")
def sft_run(tiny_gemma_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("align-sft")
    report = train_sft(tiny_gemma_dir, root / "adapter", root / "checkpoints", TINY_SFT, rows=_rows(48))
    return root, report


def test_chat_template_renders_gemma_turns(tiny_gemma_dir):
    tokenizer = chat_tokenizer(tiny_gemma_dir)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], tokenize=False
    )
    assert text == "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\nhello<end_of_turn>\n"


def test_sft_loss_falls_and_adapter_saves(sft_run):
    root, report = sft_run
    losses = _losses(report)
    assert losses[-1] < losses[0] - 0.3  # a random tiny model learns slowly; 6.5 -> ~6.05
    assert report["eval_loss_after"] < report["eval_loss_before"]
    adapter = root / "adapter"
    assert (adapter / "adapter_model.safetensors").stat().st_size < 10 * 2**20
    saved = chat_tokenizer(adapter)  # the tuned tokenizer carries the chat template
    assert (
        json.loads((adapter / "tokenizer_config.json").read_text()).get("chat_template")
        or (adapter / "chat_template.jinja").is_file()
    )
    assert saved.chat_template == GEMMA_CHAT_TEMPLATE


def test_sft_is_reproducible(tiny_gemma_dir, tmp_path, sft_run):
    _, first = sft_run
    again = train_sft(tiny_gemma_dir, tmp_path / "adapter", tmp_path / "checkpoints", TINY_SFT, rows=_rows(48))
    assert _losses(again) == pytest.approx(_losses(first), rel=1e-5)


def test_sft_resumes_after_an_interruption(tiny_gemma_dir, tmp_path, sft_run):
    _, uninterrupted = sft_run
    stopped = train_sft(
        tiny_gemma_dir, tmp_path / "adapter", tmp_path / "checkpoints", TINY_SFT, rows=_rows(48), stop_after=8
    )
    assert stopped == {"stopped_at": 8}
    resumed = train_sft(
        tiny_gemma_dir, tmp_path / "adapter", tmp_path / "checkpoints", TINY_SFT, rows=_rows(48), resume=True
    )
    assert resumed["optimizer_steps"] == TINY_SFT.max_steps
    assert _losses(resumed)[-1] == pytest.approx(_losses(uninterrupted)[-1], rel=1e-4)


def test_merge_matches_peft(tiny_gemma_dir, sft_run, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from demo.weights import merge_adapter

    root, _ = sft_run
    merged_dir = merge_adapter(tiny_gemma_dir, root / "adapter", tmp_path / "merged")
    ours = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_gemma_dir), dtype=torch.float32)
    theirs = PeftModel.from_pretrained(base, str(root / "adapter")).merge_and_unload().eval()
    ids = torch.tensor([[2, 5, 20, 30, 40, 6]])
    with torch.no_grad():
        assert torch.allclose(ours(ids).logits, theirs(ids).logits, atol=1e-5)
    assert chat_tokenizer(merged_dir).chat_template == GEMMA_CHAT_TEMPLATE
    end_of_turn = chat_tokenizer(merged_dir).convert_tokens_to_ids("<end_of_turn>")
    assert end_of_turn in json.loads((merged_dir / "generation_config.json").read_text())["eos_token_id"]


def test_merged_adapter_source_builds_to_onnx_and_generates(tiny_gemma_dir, sft_run):
    """models.yaml's `merged_adapter` source: merged once into the cache, then the same int4
    onnxruntime-genai path as the base model; the chat format reaches the tuned model."""
    from demo.config import LocalSource, MergedAdapterSource
    from demo.generation.backends.onnx_genai_backend import build_onnx_model
    from demo.weights import resolve_checkpoint

    root, _ = sft_run
    source = MergedAdapterSource(
        type="merged_adapter", base=LocalSource(type="local", path=tiny_gemma_dir), adapter=root / "adapter"
    )
    checkpoint = resolve_checkpoint(source)
    assert resolve_checkpoint(source).path == checkpoint.path  # cached, not merged twice
    onnx_dir = build_onnx_model(checkpoint.path, "int4")
    import onnxruntime_genai as og

    model = og.Model(str(onnx_dir))
    tokenizer = chat_tokenizer(checkpoint.path)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "the dog ran"}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 8, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    new = []
    while not generator.is_done():
        generator.generate_next_token()
        new.append(int(generator.get_next_tokens()[0]))
    assert new  # it generates; with a tiny random model the words themselves mean nothing


def test_config_accepts_merged_adapter_source(tmp_path):
    from demo.config import AppConfig, MergedAdapterSource, _fix_source

    source = AppConfig.model_fields["models"]  # the union parses through ModelSpec
    assert source is not None
    parsed = MergedAdapterSource.model_validate(
        {
            "type": "merged_adapter",
            "adapter": "trained/align/rlhf",
            "base": {"type": "assembled_package", "package": "p", "install": "pip install p"},
        }
    )
    fixed = _fix_source(parsed, lambda p: tmp_path / p)
    assert fixed.adapter == tmp_path / "trained/align/rlhf"


def _written_dir(root: Path) -> Path:
    """A tiny comparisons folder in the project's format: the chosen answer names a cat."""
    rng = random.Random(1)
    folder = root / "written"
    folder.mkdir(parents=True)
    lines = []
    for i in range(60):
        prompt = " ".join(rng.choice(WORDS) for _ in range(4)) + f" {i}"
        lines.append(
            json.dumps(
                {
                    "prompt": prompt,
                    "chosen": "the cat sat on the mat",
                    "rejected": "a dog ran to a door",
                    "category": "open_qa",
                    "aspect": "helpful",
                    "flaw": "off_topic",
                }
            )
        )
    (folder / "part_a.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def reward_run(sft_run, tiny_gemma_dir, tmp_path_factory):
    from demo.training.align.reward_model import RewardSettings, train_reward_model
    from demo.weights import merge_adapter

    root, _ = sft_run
    merged = merge_adapter(tiny_gemma_dir, root / "adapter", root / "merged")
    work = tmp_path_factory.mktemp("align-rm")
    settings = RewardSettings(candidate_layers=(1, 2), folds=3, epochs=60)
    report = train_reward_model(
        merged, work / "rm", work / "cache", settings, written_dir=_written_dir(work / "data"), independent=None
    )
    return merged, work, report


def test_reward_model_learns_the_comparisons(reward_run):
    merged, work, report = reward_run
    assert report["accuracy"]["test"] >= 0.9
    assert report["head_loss_first_last"][1] < report["head_loss_first_last"][0]
    from demo.training.align.reward_model import HEAD_FILE, SFTRewardModel

    scorer = SFTRewardModel.load(merged, work / "rm" / HEAD_FILE)
    good, bad = scorer.score([("x", "the cat sat on the mat"), ("x", "a dog ran to a door")])
    assert good > bad


def test_rl_rounds_log_reward_and_kl_and_resume(reward_run, sft_run, tiny_gemma_dir, tmp_path):
    from demo.training.align.reward_model import HEAD_FILE, SFTRewardModel
    from demo.training.align.rl import RLSettings, train_rl

    merged, work, _ = reward_run
    root, _ = sft_run
    scorer = SFTRewardModel.load(merged, work / "rm" / HEAD_FILE)
    settings = RLSettings(
        rounds=2,
        prompts_per_round=4,
        samples_per_prompt=3,
        max_new_tokens=8,
        batch_size=2,
        learning_rate=1e-3,
        sample_batch_size=12,
        max_length=64,
    )
    prompts = [f"the dog ran {i}" for i in range(8)]
    report = train_rl(
        tiny_gemma_dir,
        root / "adapter",
        merged,
        tmp_path / "rlhf",
        tmp_path / "ck",
        scorer.score,
        scorer.score,
        settings,
        prompts=prompts,
    )
    rounds = report["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert all({"reward_train_rm", "reward_judge", "kl_to_sft"} <= set(r) for r in rounds)
    assert abs(rounds[0]["kl_to_sft"]) < 1e-3  # round 0 samples the SFT policy itself
    assert (tmp_path / "rlhf" / "adapter_model.safetensors").is_file()
    again = train_rl(
        tiny_gemma_dir,
        root / "adapter",
        merged,
        tmp_path / "rlhf2",
        tmp_path / "ck",
        scorer.score,
        scorer.score,
        settings,
        prompts=prompts,
        resume=True,
    )
    assert again["rounds"] == rounds  # finished rounds (the last measurement too) are read back, not redone
    # The kept policy is the round the training RM scored highest (the judge plays no part).
    from demo.training.align.rl import select_round

    assert report["selected_round"] == again["selected_round"] == select_round(rounds)
    # The card's figure: both scorers against KL, as change from round 0, rendered to PNG.
    from demo.training.align.pipeline import save_reward_vs_kl
    from demo.training.align.plots import reward_vs_kl_rows

    rows = reward_vs_kl_rows(rounds)
    assert len(rows) == 2 * len(rounds)
    assert [r["change"] for r in rows if r["round"] == 0] == [0.0, 0.0]
    last = [r for r in rows if r["round"] == 2]
    assert last[0]["change"] == pytest.approx(rounds[2]["reward_train_rm"] - rounds[0]["reward_train_rm"])
    png = save_reward_vs_kl(rounds, tmp_path / "reward_vs_kl.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reward_vs_kl_rows_skip_a_missing_judge():
    from demo.training.align.plots import reward_vs_kl_chart, reward_vs_kl_rows

    rounds = [
        {"round": 1, "kl_to_sft": 0.5, "reward_train_rm": 1.5, "reward_judge": None},
        {"round": 0, "kl_to_sft": 0.0, "reward_train_rm": 1.0, "reward_judge": None},
    ]
    rows = reward_vs_kl_rows(rounds)
    assert [(r["round"], r["change"]) for r in rows] == [(0, 0.0), (1, 0.5)]
    assert {r["scorer"] for r in rows} == {"training RM (optimised against)"}
    assert reward_vs_kl_chart([]) is None


def test_select_round_keeps_the_best_training_rm_round_earliest_on_ties():
    from demo.training.align.rl import select_round

    def row(i, rm, judge):
        return {"round": i, "reward_train_rm": rm, "reward_judge": judge, "kl_to_sft": float(i)}

    assert select_round([row(0, -1.4, -2.3), row(1, -1.0, -9.0), row(2, -1.4, 5.0)]) == 1  # not the judge's pick
    assert select_round([row(0, 0.5, 0), row(1, 0.5, 0)]) == 0


def test_policy_reward_model_learns_the_rankings_and_reuses_its_features(reward_run, tmp_path, monkeypatch):
    from demo.feedback.labels import Label
    from demo.feedback.tasks import Answer, Item
    from demo.training.align.policy_reward import PolicyRewardSettings, train_policy_reward_model
    from demo.training.align.reward_model import HEAD_FILE, SFTRewardModel

    merged, work, _ = reward_run
    rng = random.Random(3)
    items, labels = [], []
    for n in range(36):
        split = "train" if n < 24 else "validation" if n < 30 else "test"
        bad = [" ".join(rng.choice(WORDS) for _ in range(6)) for _ in range(2)]
        answers = (
            Answer("1", "s0", bad[0], ()),
            Answer("2", "s1", "the cat sat on the mat", ()),
            Answer("3", "s2", bad[1], ()),
        )
        items.append(Item(f"i{n}", "ranking", split, f"prompt {n}", "chat", None, answers))
        pool = "test" if split == "test" else "train"
        labels.append(Label(f"i{n}", "L", "ai", "v1", pool, ranking=(("2",), ("1", "3")), answers={}))  # type: ignore[arg-type]
    train_labels = [label for label in labels if label.pool == "train"]
    test_labels = [label for label in labels if label.pool == "test"]
    settings = PolicyRewardSettings(candidate_layers=(1, 2), epochs=60)
    report = train_policy_reward_model(
        merged,
        items,
        train_labels,
        test_labels,
        tmp_path / "rm",
        settings,
        previous_head=work / "rm" / HEAD_FILE,
        feature_cache=tmp_path / "cache",
    )
    assert report["items"] == {"train": 24, "validation": 6, "test": 6}
    assert report["agreement"]["test (held-out labellers)"] == {"pairs": 12, "agreement": 1.0, "ci95": [1.0, 1.0]}
    assert "test, reward model RL used before (written pairs)" in report["agreement"]
    assert (tmp_path / "rm" / HEAD_FILE).is_file() and (tmp_path / "rm" / "metrics.json").is_file()
    # Trained again on the same texts: every feature comes from the cache.
    monkeypatch.setattr(SFTRewardModel, "features", lambda *a, **k: pytest.fail("features read again"))
    again = train_policy_reward_model(
        merged, items, train_labels, test_labels, tmp_path / "rm2", settings, feature_cache=tmp_path / "cache"
    )
    assert again["agreement"] == {k: v for k, v in report["agreement"].items() if "before" not in k}
