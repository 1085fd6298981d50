"""Step 1, supervised fine-tuning: LoRA on the base model, trained on the written demonstrations
in Gemma's chat format, loss on the answer tokens only (TRL's prompt/completion format), eval
loss on a seeded 5 % held-out split."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ...paths import DATA_DIR
from .common import chat_tokenizer, read_jsonl, seeded_split, set_stop_tokens

if TYPE_CHECKING:
    from peft import LoraConfig, PeftModel
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

DEMONSTRATIONS = sorted((DATA_DIR / "demonstrations").glob("part_*.jsonl"))
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class SFTSettings:
    """Hyper-parameters of step 1 (sized by measurement on a 2-core CPU; see the model card)."""

    seed: int = 0
    held_out_fraction: float = 0.05
    max_length: int = 256
    batch_size: int = 8
    grad_accumulation: int = 1
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs (budget cuts, tests)
    warmup_ratio: float = 0.05
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = LORA_TARGETS
    eval_examples: int = 0  # > 0: eval loss on only the first N held-out examples (CPU budget)
    eval_steps: int = 20
    save_steps: int = 20
    logging_steps: int = 5
    # TRL turns it on by default; on CPU memory is plentiful and recomputation costs ~30 % time.
    gradient_checkpointing: bool = False
    # "group_by_length" batches demonstrations of similar length (less padding: ~40 % of the
    # tokens of a random batch of 8 are padding here); "random" is the Trainer's default.
    sampling_strategy: str = "random"
    extra: dict = field(default_factory=dict)


def demonstration_rows(files: Sequence[Path | str] = DEMONSTRATIONS) -> list[dict]:
    rows = [row for path in files for row in read_jsonl(Path(path))]
    return [
        {
            "prompt": [{"role": "user", "content": row["prompt"]}],
            "completion": [{"role": "assistant", "content": row["answer"]}],
            "category": row.get("category", ""),
        }
        for row in rows
    ]


def lora_config(settings: SFTSettings) -> LoraConfig:
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.lora_targets),
        task_type="CAUSAL_LM",
    )


def train_sft(
    base: Path,
    output: Path,
    checkpoints: Path,
    settings: SFTSettings = SFTSettings(),
    *,
    resume: bool = False,
    rows: list[dict] | None = None,
    stop_after: int | None = None,
) -> dict:
    """Train the SFT LoRA on `base` into `output` (adapter + tokenizer + metrics.json).

    `stop_after` ends training after that many optimiser steps as an interruption would
    (tests use it to check that `resume` continues from the last checkpoint).
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(settings.seed)
    rows = rows if rows is not None else demonstration_rows()
    train_rows, eval_rows = seeded_split(rows, settings.held_out_fraction, settings.seed)
    if settings.eval_examples > 0:
        eval_rows = eval_rows[: settings.eval_examples]
    tokenizer = chat_tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    set_stop_tokens(model, tokenizer)

    args = SFTConfig(
        output_dir=str(checkpoints),
        seed=settings.seed,
        data_seed=settings.seed,
        max_length=settings.max_length,
        completion_only_loss=True,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accumulation,
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        lr_scheduler_type="cosine",
        warmup_steps=settings.warmup_ratio,
        logging_steps=settings.logging_steps,
        eval_strategy="steps",
        eval_steps=settings.eval_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=2,
        gradient_checkpointing=settings.gradient_checkpointing,
        train_sampling_strategy=settings.sampling_strategy,
        report_to="none",
        dataloader_num_workers=0,
        bf16=False,
        fp16=False,
        use_cpu=not torch.cuda.is_available(),
    )
    callbacks = [_stop_after(stop_after)] if stop_after else []
    trainer = SFTTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        peft_config=lora_config(settings),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows),
        callbacks=callbacks,
    )
    eval_before = trainer.evaluate()["eval_loss"] if not resume else None
    started = time.perf_counter()
    cpu_started = time.process_time()
    trainer.train(resume_from_checkpoint=_last_checkpoint(checkpoints) if resume else None)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    if stop_after and trainer.state.global_step >= stop_after and trainer.state.global_step < trainer.state.max_steps:
        return {"stopped_at": trainer.state.global_step}
    eval_after = trainer.evaluate()["eval_loss"]

    output.mkdir(parents=True, exist_ok=True)
    # Given peft_config, SFTTrainer trains a PeftModel; its .model is typed as any module.
    cast("PeftModel", trainer.model).save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    set_stop_tokens(model, tokenizer)  # the merged, served model stops at <end_of_turn>
    model.generation_config.save_pretrained(str(output))
    report = {
        "step": "sft",
        "settings": asdict(settings),
        "train_examples": len(train_rows),
        "held_out_examples": len(eval_rows),
        "optimizer_steps": trainer.state.global_step,
        "eval_loss_before": eval_before,
        "eval_loss_after": eval_after,
        "wall_seconds": round(seconds, 1),
        "process_cpu_seconds": round(cpu_seconds, 1),
        "log_history": trainer.state.log_history,
        "device": str(trainer.args.device),
        "versions": _versions(),
    }
    (output / "metrics.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def _stop_after(steps: int) -> TrainerCallback:
    """A TrainerCallback that stops training after `steps` steps (after saving a checkpoint)."""
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        def on_step_end(
            self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
        ) -> TrainerControl:
            if state.global_step >= steps:
                control.should_save = True
                control.should_training_stop = True
            return control

    return StopAfter()


def _last_checkpoint(folder: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
    }
