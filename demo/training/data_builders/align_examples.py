"""Three held-out prompts answered by the base (raw prompt, as the app's base side) and by each
tuned model (Gemma chat format), with the app's default sampling settings and seed; writes
trained/align/examples.json. Run: python -m demo data align-examples [sft] [rlhf]"""

from __future__ import annotations

import json

import torch

from ...config import MergedAdapterSource, load_config
from ...paths import ALIGN_ARTEFACTS_DIR
from ...weights import resolve_checkpoint
from ..align.common import BASE_MODEL_ID, chat_tokenizer, stop_token_ids

PROMPTS = [
    "Give me three tips for sleeping better.",
    "What is the capital of Australia?",
    "Write a two-sentence thank-you note to a colleague who covered my shift.",
]


def answer(model, tokenizer, prompt, chat):
    if chat:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    else:
        ids = tokenizer(prompt, return_tensors="pt")
    torch.manual_seed(42)
    out = model.generate(
        **ids,
        do_sample=True,
        temperature=0.7,
        top_p=0.95,
        repetition_penalty=1.1,
        max_new_tokens=96,
        eos_token_id=stop_token_ids(tokenizer),
    )
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def main(argv: list[str]) -> int:
    """Answer PROMPTS with the base and each named tuned model (`sft`, `rlhf`); keeps the answers
    of models not named."""
    from transformers import AutoModelForCausalLM

    config = load_config()
    base_source = config.models[BASE_MODEL_ID].source
    models = {"base": (resolve_checkpoint(base_source).path, False)}
    for name in argv:
        merged = resolve_checkpoint(
            MergedAdapterSource(type="merged_adapter", base=base_source, adapter=ALIGN_ARTEFACTS_DIR / name)
        )
        models[name] = (merged.path, True)
    target = ALIGN_ARTEFACTS_DIR / "examples.json"
    results = json.loads(target.read_text()) if target.is_file() else {}
    for name, (path, chat) in models.items():
        tokenizer = chat_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
        for prompt in PROMPTS:
            results.setdefault(prompt, {})[name] = answer(model, tokenizer, prompt, chat)
            print(f"--- {name}: {prompt}\n{results[prompt][name]}", flush=True)
    target.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0
