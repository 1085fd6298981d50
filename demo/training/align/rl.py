"""Step 3, RL against the step-2 reward model with a KL penalty to the SFT model: iterative
reward-ranked DPO (TRL's DPOTrainer; its beta is the KL penalty, the merged SFT model the frozen
reference). Each round samples k answers per prompt from the current policy, ranks them with the
reward model, and trains on best-vs-worst pairs. Why this method: on this 2-core CPU, online
RLOO/GRPO/PPO would need generation inside every optimiser step, which is the slowest part here;
batched sampling once per round, then offline DPO steps, costs the least generation per update.

Logged per round, on the answers sampled from that round's policy: mean training-RM reward, mean
judge reward (the app's independent reward model), and the KL to the SFT model estimated as the
mean of Σ_t [log π(y_t) − log π_SFT(y_t)] over one sample per prompt. The samples are drawn as the
page draws answers (temperature 0.7, top-p 0.95, repetition penalty 1.1: at temperature 1 with the
full 262k vocabulary this model's answers are word salad, and ranking word salad teaches nothing),
so the figure is the log-ratio on the answers users would see, a proxy of KL(π‖π_SFT), not the
exact divergence of the untempered distributions.

The policy kept is the round's policy that scored highest on the training reward model, each
measured on a fresh chunk of prompts it was not trained on (round i samples the policy after
round i-1's DPO; round 0 is the SFT model): early stopping on the optimised reward, so the judge
stays out of every choice.

Measured on the 2-core CPU (fp32 torch, SFT model): sampling 64 answers × 64 tokens in one batch
took 120 s (16 × 96 in a batch of 16: 73 s; decoding reads the 262k-row output matrix each step,
so wider batches are nearly free), one teacher-forced log-prob pass about 1.2 s an answer.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

import torch
from tqdm.auto import tqdm

from ...paths import DATA_DIR
from .common import chat_tokenizer, read_jsonl, set_stop_tokens, stop_token_ids

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

RL_PROMPTS = DATA_DIR / "rl" / "prompts.jsonl"
Scorer = Callable[[Sequence[tuple[str, str]]], list[float]]
# The independent judge may fail to score an answer: None there, left out of its mean.
Judge = Callable[[Sequence[tuple[str, str]]], Sequence[float | None]]


class Sample(TypedDict):
    """One sampled answer: `ids` are its tokens up to and including the first stop token,
    `answer` their text without the stop tokens, `prompt_ids` the chat-formatted prompt's tokens."""

    prompt: str
    answer: str
    ids: list[int]
    prompt_ids: list[int]


@dataclass(frozen=True)
class RLSettings:
    seed: int = 0
    rounds: int = 2
    prompts_per_round: int = 32
    samples_per_prompt: int = 4
    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    beta: float = 0.1  # DPO's KL penalty to the reference (SFT) model
    learning_rate: float = 5e-5
    batch_size: int = 4
    epochs: float = 1.0
    max_length: int = 256
    sample_batch_size: int = 64
    kl_samples_per_prompt: int = 1  # the KL estimate's answers per prompt (each costs two passes)


def rl_prompts(path: Path = RL_PROMPTS) -> list[str]:
    return [row["prompt"] for row in read_jsonl(path)]


@torch.inference_mode()
def sample_answers(
    model: PeftModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], settings: RLSettings, seed: int
) -> list[Sample]:
    """k samples per prompt: {"prompt", "answer", "ids", "prompt_ids"}, seeded."""
    torch.manual_seed(seed)
    tokenizer.padding_side = "left"
    stops = stop_token_ids(tokenizer)
    out: list[Sample] = []
    jobs = [p for p in prompts for _ in range(settings.samples_per_prompt)]
    device = next(model.parameters()).device
    starts = range(0, len(jobs), settings.sample_batch_size)
    for start in tqdm(starts, desc="sampling", unit="batch", disable=len(starts) < 2):
        batch = jobs[start : start + settings.sample_batch_size]
        texts = [
            tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in batch
        ]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        generated = model.generate(
            **enc,
            do_sample=True,
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=0,
            repetition_penalty=settings.repetition_penalty,
            max_new_tokens=settings.max_new_tokens,
            eos_token_id=stops,
            pad_token_id=tokenizer.pad_token_id,
        )
        width = enc["input_ids"].shape[1]
        for row, prompt in enumerate(batch):
            ids = generated[row, width:].tolist()
            cut = next((i + 1 for i, t in enumerate(ids) if t in stops), len(ids))
            ids = ids[:cut]
            prompt_ids = enc["input_ids"][row][enc["attention_mask"][row].bool()].tolist()
            # One sequence of ids decodes to one str (the stub's list[str] is for a batch).
            answer = cast(str, tokenizer.decode([t for t in ids if t not in stops], skip_special_tokens=True)).strip()
            out.append({"prompt": prompt, "answer": answer, "ids": ids, "prompt_ids": prompt_ids})
    return out


@torch.inference_mode()
def sequence_logprobs(model: torch.nn.Module, samples: Sequence[Sample]) -> list[float]:
    """Σ_t log p(y_t | prompt, y_<t) of each sampled answer under `model`."""
    device = next(model.parameters()).device
    values = []
    for sample in samples:
        if not sample["ids"]:
            values.append(0.0)
            continue
        n = len(sample["ids"])
        ids = torch.tensor([sample["prompt_ids"] + sample["ids"]], device=device)
        # Only the answer's positions go through the 262k-wide output layer.
        logits = model(input_ids=ids, logits_to_keep=n + 1).logits[0, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, ids[0, -n:, None]).sum()
        values.append(float(logp))
    return values


def ranked_pairs(samples: Sequence[Sample], rewards: Sequence[float], min_gap: float = 1e-3) -> list[dict]:
    """Per prompt, the best vs the worst sampled answer by reward (ties and empty answers skipped)."""
    by_prompt: dict[str, list[tuple[float, str]]] = {}
    for sample, reward in zip(samples, rewards):
        if sample["answer"]:
            by_prompt.setdefault(sample["prompt"], []).append((reward, sample["answer"]))
    pairs = []
    for prompt, scored in by_prompt.items():
        best, worst = max(scored), min(scored)
        if best[0] - worst[0] > min_gap and best[1] != worst[1]:
            pairs.append(
                {
                    "prompt": [{"role": "user", "content": prompt}],
                    "chosen": [{"role": "assistant", "content": best[1]}],
                    "rejected": [{"role": "assistant", "content": worst[1]}],
                }
            )
    return pairs


def measure(
    policy: PeftModel,
    reference: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    settings: RLSettings,
    seed: int,
    reward: Scorer,
    judge: Judge | None,
) -> tuple[dict[str, Any], list[Sample], list[float]]:
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal clock
        seconds[phase] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()
        print(f"  rl: {phase} {seconds[phase]:.0f} s", flush=True)

    samples = sample_answers(policy, tokenizer, prompts, settings, seed)
    lap("sampling")
    texts = [(s["prompt"], s["answer"]) for s in samples]
    rewards = reward(texts)
    lap("training RM")
    judged = judge(texts) if judge else []
    judged_ok = [j for j in judged if j is not None]
    lap("judge")
    k = settings.samples_per_prompt
    for_kl = [s for i, s in enumerate(samples) if i % k < settings.kl_samples_per_prompt]
    kl = [p - r for p, r in zip(sequence_logprobs(policy, for_kl), sequence_logprobs(reference, for_kl))]
    lap("KL")
    row = {
        "seconds": seconds,
        "samples": len(samples),
        "kl_samples": len(for_kl),
        "reward_train_rm": sum(rewards) / len(rewards),
        "reward_judge": sum(judged_ok) / len(judged_ok) if judged_ok else None,
        "kl_to_sft": sum(kl) / len(kl),
        "mean_answer_tokens": sum(len(s["ids"]) for s in samples) / len(samples),
    }
    return row, samples, rewards


def train_rl(
    base: Path,
    sft_adapter: Path,
    sft_merged: Path,
    output: Path,
    checkpoints: Path,
    reward: Scorer,
    judge: Judge | None = None,
    settings: RLSettings = RLSettings(),
    *,
    resume: bool = False,
    prompts: Sequence[str] | None = None,
) -> dict:
    """Rounds of sample → rank → DPO, starting from the SFT adapter; each finished round is saved
    under `checkpoints/round-N` (adapter + metrics), so `resume` continues after the last one."""
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    started, cpu_started = time.perf_counter(), time.process_time()
    prompts = list(prompts if prompts is not None else rl_prompts())
    random.Random(settings.seed).shuffle(prompts)
    tokenizer = chat_tokenizer(sft_adapter)
    reference = AutoModelForCausalLM.from_pretrained(str(sft_merged), dtype=torch.float32).eval()
    rounds: list[dict] = []
    adapter = sft_adapter
    first = 0
    if resume:
        done = sorted(
            (p for p in checkpoints.glob("round-*") if (p / "round.json").is_file()),
            key=lambda p: int(p.name.split("-")[1]),
        )
        for folder in done:
            rounds.append(json.loads((folder / "round.json").read_text()))
        trained = [folder for folder in done if (folder / "adapter").is_dir()]
        if trained:
            adapter = trained[-1] / "adapter"
        first = len(done)

    for index in range(first, settings.rounds + 1):
        done_here = index - first
        spent = time.perf_counter() - started
        eta = f", ETA {spent / done_here * (settings.rounds + 1 - index) / 60:.0f} min" if done_here else ""
        print(f"rl: round {index}/{settings.rounds} (elapsed {spent / 60:.0f} min{eta})", flush=True)
        base_model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
        set_stop_tokens(base_model, tokenizer)
        policy = PeftModel.from_pretrained(base_model, str(adapter), is_trainable=True)
        chunk = prompts[(index * settings.prompts_per_round) % len(prompts) :][: settings.prompts_per_round]
        policy.eval()
        row, samples, rewards = measure(
            policy, reference, tokenizer, chunk, settings, settings.seed + index, reward, judge
        )
        row["round"] = index
        if index == settings.rounds:  # the last measurement is of the final policy; no more training
            (checkpoints / f"round-{index}").mkdir(parents=True, exist_ok=True)
            (checkpoints / f"round-{index}" / "round.json").write_text(json.dumps(row, indent=2))
            rounds.append(row)
            break
        pairs = ranked_pairs(samples, rewards)
        folder = checkpoints / f"round-{index}"
        args = DPOConfig(
            output_dir=str(folder / "trainer"),
            beta=settings.beta,
            learning_rate=settings.learning_rate,
            per_device_train_batch_size=settings.batch_size,
            num_train_epochs=settings.epochs,
            max_length=settings.max_length,
            seed=settings.seed + index,
            logging_steps=1,
            save_strategy="steps",
            save_steps=4,
            save_total_limit=1,
            report_to="none",
            gradient_checkpointing=False,
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
        )
        trainer = DPOTrainer(
            model=policy,
            ref_model=reference,
            args=args,
            processing_class=tokenizer,
            train_dataset=Dataset.from_list(pairs),
        )
        dpo_started = time.perf_counter()
        trainer.train(resume_from_checkpoint=_last_checkpoint(folder / "trainer") if resume else None)
        row["seconds"]["dpo"] = round(time.perf_counter() - dpo_started, 1)
        row["pairs"] = len(pairs)
        row["dpo_loss"] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        # DPOTrainer trains the PeftModel it was given; its .model is typed as any module.
        cast("PeftModel", trainer.model).save_pretrained(str(folder / "adapter"))
        (folder / "samples.jsonl").write_text(
            "\n".join(
                json.dumps({"prompt": s["prompt"], "answer": s["answer"], "reward": r}, ensure_ascii=False)
                for s, r in zip(samples, rewards)
            )
            + "\n"
        )
        (folder / "round.json").write_text(json.dumps(row, indent=2))
        rounds.append(row)
        adapter = folder / "adapter"

    # The policy kept: the one that scored highest on the training reward model, each measured on
    # prompts it was not trained on (round i measures the policy after round i-1's DPO). The judge
    # plays no part, so it stays an independent measurement.
    selected = select_round(rounds)
    adapter = sft_adapter if selected == 0 else checkpoints / f"round-{selected - 1}" / "adapter"
    output.mkdir(parents=True, exist_ok=True)
    earlier = []
    if resume and (output / "metrics.json").is_file():
        previous = json.loads((output / "metrics.json").read_text())
        earlier = previous.get("invocations", [{k: previous[k] for k in ("wall_seconds", "process_cpu_seconds")}])
    final = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32), str(adapter)
    )
    final.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    served = cast("PreTrainedModel", final.base_model.model)  # the causal LM inside the LoRA wrapper
    set_stop_tokens(served, tokenizer)
    served.generation_config.save_pretrained(str(output))
    report = {
        "step": "rl",
        "method": "iterative reward-ranked DPO",
        "settings": asdict(settings),
        "rounds": rounds,
        "selected_round": selected,
        "selection": "the round whose policy scored highest on the training RM, on prompts it was not trained on",
        "wall_seconds": round(time.perf_counter() - started, 1),
        "process_cpu_seconds": round(time.process_time() - cpu_started, 1),
    }
    report["invocations"] = [
        *earlier,
        {"wall_seconds": report["wall_seconds"], "process_cpu_seconds": report["process_cpu_seconds"]},
    ]
    (output / "metrics.json").write_text(json.dumps(report, indent=2))
    return report


def select_round(rounds: Sequence[dict]) -> int:
    """The round (0 = the SFT policy) with the highest mean training-RM reward; ties: the earliest
    (the policy closest to SFT)."""
    best = max(rounds, key=lambda r: (r["reward_train_rm"], -r["round"]))
    return int(best["round"])


def _last_checkpoint(folder: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder)) if folder.is_dir() else None
