"""The order of the three steps, where each reads and writes, and the settings the committed
run used (sized by measurement on the shared 2-core CPU; see trained/align/*/MODEL_CARD.md).

Artefacts (adapters, heads, metrics) go to <cache>/trained/align/<step>/ (or `--out-dir`); only
`--replace-shipped` writes over the committed ones in trained/align/<step>/. Trainer checkpoints go
to $DEMO_CACHE_DIR/align/<step>/ and make `--resume` continue a stopped step.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...cache import cache_dir
from ...config import AppConfig, MergedAdapterSource, WeightsSource, load_config
from ...paths import ALIGN_ARTEFACTS_DIR, RESULTS_DIR
from ...provenance import provenance
from ...weights import resolve_checkpoint
from .common import BASE_MODEL_ID, checkpoints_dir
from .reward_model import HEAD_FILE, RewardSettings, SFTRewardModel, train_reward_model
from .rl import Judge, RLSettings, train_rl
from .sft import SFTSettings, train_sft

STEPS = ("sft", "reward", "rl")
# Step 2 again, on labellers' rankings of the SFT policy's own samples (data/feedback/policy/);
# not part of `all` until an RL run trains against it.
POLICY_REWARD_STEP = "reward-policy"
POLICY_REWARD_RESULTS = RESULTS_DIR / "training" / "reward-policy.json"


@dataclass(frozen=True)
class AlignFolders:
    """Where each step writes (`root/sft`, `root/reward`, `root/rlhf`). A step reads an earlier
    step's artefact from this root when that step ran into it, else the shipped one in trained/."""

    root: Path

    @property
    def sft(self) -> Path:
        return self.root / "sft"

    @property
    def reward(self) -> Path:
        return self.root / "reward"

    @property
    def rlhf(self) -> Path:
        return self.root / "rlhf"

    @property
    def reward_policy(self) -> Path:
        return self.root / POLICY_REWARD_STEP

    def sft_input(self) -> Path:
        return self.sft if (self.sft / "adapter_model.safetensors").is_file() else SHIPPED.sft

    def reward_input(self) -> Path:
        return self.reward if (self.reward / HEAD_FILE).is_file() else SHIPPED.reward


SHIPPED = AlignFolders(ALIGN_ARTEFACTS_DIR)


def output_folders(out_dir: Path | None, replace_shipped: bool) -> AlignFolders:
    """`out_dir`; the shipped folders (trained/align/) only when `replace_shipped`; else one folder
    of the cache (`<cache>/trained/align/`), the same each time so `--resume` finds it."""
    if replace_shipped:
        return SHIPPED
    return AlignFolders(Path(out_dir) if out_dir else cache_dir() / "trained" / "align")


# The committed run, sized for the 2-core CPU (each step's budget is 60 minutes; see the cards).
# SFT: 60 optimiser steps of 8 demonstrations (480 of 988, about half an epoch), batches grouped
# by length (less padding), eval loss on 26 held-out demonstrations before and after.
SFT_RUN = SFTSettings(
    max_steps=60,
    batch_size=8,
    max_length=208,
    learning_rate=3e-4,
    eval_examples=26,
    eval_steps=1000,
    save_steps=5,
    logging_steps=1,
    warmup_ratio=0.05,
    sampling_strategy="group_by_length",
)
# Reward model: frozen SFT features (forward passes only); a seeded subset of the training pairs,
# all 260 independent pairs (the figure that generalises), blocks 6, 12 and 18 as candidates.
REWARD_RUN = RewardSettings(
    candidate_layers=(6, 12, 18), max_tokens=256, limit_train=320, limit_test=80, limit_independent=0
)
# RL: two rounds of 32 prompts x 4 samples (sample -> rank by the step-2 reward -> DPO on best vs
# worst), then the final policy measured on a third chunk of 32 prompts.
RL_RUN = RLSettings(rounds=2, prompts_per_round=32, samples_per_prompt=4, learning_rate=1e-4)


def base_source(config: AppConfig) -> WeightsSource:
    return config.models[BASE_MODEL_ID].source


def sft_checkpoint(config: AppConfig, adapter: Path = SHIPPED.sft) -> Path:
    """The base with the SFT adapter merged: the reward model's backbone and RL's reference."""
    source = MergedAdapterSource(type="merged_adapter", base=base_source(config), adapter=adapter)
    return resolve_checkpoint(source).path


def run(
    step: str,
    *,
    resume: bool = False,
    config_path: str | Path | None = None,
    stop_after: int | None = None,
    folders: AlignFolders | None = None,
) -> dict:
    """Run one step ("sft" | "reward" | "rl") or "all" of them in order into `folders` (default:
    the cache's, never the shipped ones); returns their reports. `stop_after` (SFT only) ends SFT
    after that optimiser step as an interruption would."""
    folders = folders or output_folders(None, replace_shipped=False)
    if step not in (*STEPS, POLICY_REWARD_STEP, "all"):
        raise ValueError(f"align step must be one of {(*STEPS, POLICY_REWARD_STEP, 'all')}, got {step!r}")
    config = load_config(config_path)
    base = resolve_checkpoint(base_source(config)).path
    reports = {}
    for name in STEPS if step == "all" else (step,):
        if name == "sft":
            reports[name] = train_sft(
                base, folders.sft, checkpoints_dir("sft"), SFT_RUN, resume=resume, stop_after=stop_after
            )
            if "stopped_at" in reports[name]:
                break
        elif name == POLICY_REWARD_STEP:
            reports[name] = _train_policy_reward(config, folders)
        elif name == "reward":
            reports[name] = train_reward_model(
                sft_checkpoint(config, folders.sft_input()),
                folders.reward,
                checkpoints_dir("reward"),
                REWARD_RUN,
                resume=resume,
            )
        else:
            merged = sft_checkpoint(config, folders.sft_input())
            reward = SFTRewardModel.load(merged, folders.reward_input() / HEAD_FILE, max_tokens=REWARD_RUN.max_tokens)
            reports[name] = train_rl(
                base,
                folders.sft_input(),
                merged,
                folders.rlhf,
                checkpoints_dir("rl"),
                reward.score,
                _judge(config),
                RL_RUN,
                resume=resume,
            )
            save_reward_vs_kl(reports[name]["rounds"], folders.rlhf / "reward_vs_kl.png")
    return reports


def _train_policy_reward(config: AppConfig, folders: AlignFolders) -> dict:
    from ...feedback.commands import POLICY_ITEMS, POLICY_LABELS
    from ...feedback.labels import read_labels
    from ...feedback.tasks import read_items
    from .policy_reward import train_policy_reward_model

    labels = read_labels(POLICY_LABELS)
    report = train_policy_reward_model(
        sft_checkpoint(config, folders.sft_input()),
        read_items(POLICY_ITEMS),
        [label for label in labels if label.pool == "train"],
        [label for label in labels if label.pool == "test"],
        folders.reward_policy,
        previous_head=folders.reward_input() / HEAD_FILE,
        judge=_judge(config),
        feature_cache=checkpoints_dir(POLICY_REWARD_STEP),
    )
    if folders == SHIPPED:  # the card's figures: a committed result with who made it
        POLICY_REWARD_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        POLICY_REWARD_RESULTS.write_text(json.dumps(provenance(sys.argv) | report, indent=1) + "\n")
    return report


def save_reward_vs_kl(rounds: Sequence[dict], path: Path) -> Path | None:
    """The RL card's figure (training RM and judge against KL), as a PNG beside the adapter."""
    from ...evaluation.plots import save_png
    from .plots import reward_vs_kl_chart

    chart = reward_vs_kl_chart(rounds)
    return save_png(chart, path) if chart is not None else None


def _judge(config: AppConfig) -> Judge:
    """The app's own, independent reward model, on the same answers (None where unavailable)."""
    from ...scoring.scorer import AnswerScorer

    scorer = AnswerScorer.from_config(config)

    def judge(pairs: Sequence[tuple[str, str]]) -> list[float | None]:
        return [scores.reward for scores in scorer.score(list(pairs))]

    return judge


def main(
    step: str,
    resume: bool,
    config_path: str | None = None,
    *,
    stop_after: int | None = None,
    out_dir: Path | None = None,
    replace_shipped: bool = False,
) -> int:
    folders = output_folders(out_dir, replace_shipped)
    reports = run(step, resume=resume, config_path=config_path, stop_after=stop_after, folders=folders)
    print(f"wrote {folders.root}", file=sys.stderr)
    summary = {name: {k: v for k, v in report.items() if k != "log_history"} for name, report in reports.items()}
    print(json.dumps(summary, indent=2, default=str))
    return 0
