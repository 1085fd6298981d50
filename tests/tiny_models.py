"""Tiny random-weight checkpoints for tests: built locally in about a second, no hub access.

- `make_llama_chat_checkpoint(dir)`: a 2-layer Llama with a byte-level BPE tokenizer, ChatML
  special tokens (`<|im_start|>`, `<|im_end|>` = eos) and a SmolLM2-style chat template; plays
  the *aligned* model (prompt_format: chat).
- `make_gemma_base_checkpoint(dir)`: a 2-layer Gemma 3 text model (sliding + full attention)
  with a SentencePiece-style BPE tokenizer (byte fallback, `▁` for spaces) whose post-processor
  prepends `<bos>`, image placeholder special tokens and no chat template; plays the *base* model.
- `write_tiny_config(...)`: a models.yaml with the structure of the repo's, pointing at both;
  with `stages=True` also a third model (the chat checkpoint again, as the "SFT" stage) and a
  `stages:` section naming the three.

The weights are random (seeded), so the "answers" are gibberish; tests check mechanics
(determinism, limits, streaming, formatting), never quality.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent

# A few hundred distinct English words; enough for BPE to learn whole-word merges.
CORPUS = """
The quick brown fox jumps over the lazy dog. A helpful assistant answers questions politely.
Explain the moon landing to a six year old in a few sentences. Write a short poem about the sea.
What is the capital of France? The capital of France is Paris. Name three primary colours.
Red, blue and yellow are primary colours. Thank you so much for watering my plants!
Instruction: summarize the following text. Answer: the text is about gardens and flowers.
Hello, how are you doing today? I am fine, thanks for asking. Can you help me decide?
Learning Spanish or French is useful; both languages are spoken in many countries.
The garden behind the library has lovely flowers in spring and summer and autumn.
Scientists study stars, planets, oceans, rivers, mountains, forests, animals and people.
Please write a polite email to my neighbour about the noise at night. Dear neighbour,
Once upon a time there was a little village near a big mountain with a quiet lake.
Numbers: one two three four five six seven eight nine ten 1 2 3 4 5 6 7 8 9 0 100 2024.
Why is the sky blue? Because sunlight is scattered by the air, blue light more than red.
List some ideas for a birthday party: games, music, cake, friends, family, balloons.
Translate this sentence into German. Classify the sentiment of this review as positive.
Extract the names of all people mentioned: Alice met Bob and Carol at the station.
Is it true that humans only use ten percent of their brains? No, that is a myth.
Tell me a joke about computers. Why did the computer go to the doctor? It had a virus.
""".strip()

LLAMA_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# SmolLM2-135M-Instruct's chat template (default system turn, ChatML turns).
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Gemma's first ids are pad 0, eos 1, bos 2, unk 3, mask 4 (Gemma3TextConfig's defaults).
GEMMA_SPECIALS = [
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<mask>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
]


def _corpus_lines() -> list[str]:
    return [line for line in CORPUS.splitlines() if line.strip()]


def build_bytelevel_tokenizer(special_tokens=LLAMA_SPECIALS, vocab_size: int = 480):
    """GPT-2/SmolLM2-style byte-level BPE: any text round-trips exactly; an emoji spans several
    tokens, so a prefix of its ids decodes to U+FFFD."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus_lines(), trainer)
    return tokenizer


def build_gemma_style_tokenizer(vocab_size: int = 420):
    """SentencePiece-style BPE with byte fallback; `<bos>` prepended by the post-processor."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors, trainers

    trained = Tokenizer(models.BPE())
    trained.normalizer = normalizers.Replace(" ", "▁")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False)
    trained.train_from_iterator(_corpus_lines(), trainer)
    model = json.loads(trained.to_str())["model"]

    vocab: dict[str, int] = {}
    for token in GEMMA_SPECIALS + [f"<0x{b:02X}>" for b in range(256)]:
        vocab[token] = len(vocab)
    for token, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]

    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in GEMMA_SPECIALS])
    bos_id = vocab["<bos>"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos_id)]
    )
    return tokenizer


def make_llama_chat_tokenizer():
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=build_bytelevel_tokenizer(),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = SMOLLM2_CHAT_TEMPLATE
    return wrapped


def make_gemma_tokenizer():
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=build_gemma_style_tokenizer(),
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        extra_special_tokens=[
            "<start_of_turn>",
            "<end_of_turn>",
            "<start_of_image>",
            "<end_of_image>",
            "<image_soft_token>",
        ],
        clean_up_tokenization_spaces=False,
    )


def make_llama_chat_checkpoint(directory: str | Path, seed: int = 0) -> Path:
    """A tiny Llama chat checkpoint (safetensors + tokenizer with a chat template)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = Path(directory)
    tokenizer = make_llama_chat_tokenizer()
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def make_gemma_base_checkpoint(directory: str | Path, seed: int = 1) -> Path:
    """A tiny Gemma 3 text checkpoint (sliding + full attention layers), no chat template."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    directory = Path(directory)
    tokenizer = make_gemma_tokenizer()
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=16,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


TINY_SFT_ID = "tiny-sft"
TINY_SAME_FAMILY_PAIR = "tiny-sft-vs-aligned"


def tiny_config_dict(
    llama_dir: str | Path,
    gemma_dir: str | Path,
    *,
    reward_head: str | Path | None = None,
    max_new_tokens: int = 24,
    stages: bool = False,
) -> dict:
    """The repo's models.yaml cut down to one pair, the one whose aligned side is the judge's
    backbone (Gemma base vs SmolLM2 Instruct), with both models swapped for the tiny local
    checkpoints; no other model or pair (so no test starts a real model), no stages unless asked."""
    raw = yaml.safe_load((REPO_ROOT / "models.yaml").read_text(encoding="utf-8"))
    raw = copy.deepcopy(raw)
    runtime = {"backend": "transformers", "precision": "fp32"}
    backbone = raw["scoring"]["reward"]["backbone"]
    pair = next(p for p in raw["pairs"] if p["aligned"] == backbone)
    raw["pairs"] = [pair]
    raw["models"] = {key: raw["models"][key] for key in (pair["base"], pair["aligned"])}
    raw.pop("stages", None)
    base = raw["models"][pair["base"]]
    base.update(
        name="Tiny Gemma (test, base)",
        source={"type": "local", "path": str(gemma_dir)},
        cpu=dict(runtime),
        gpu=dict(runtime),
        weights_format="safetensors fp32 (random test weights)",
    )
    aligned = raw["models"][pair["aligned"]]
    aligned.update(
        name="Tiny Llama (test, aligned)",
        source={"type": "local", "path": str(llama_dir)},
        cpu=dict(runtime),
        gpu=dict(runtime),
        weights_format="safetensors fp32 (random test weights)",
    )
    raw["generation"]["max_new_tokens"] = max_new_tokens
    reward = raw["scoring"]["reward"]
    # A head that does not exist: the scorer must say so rather than invent rewards.
    missing = Path(reward_head) if reward_head else Path(llama_dir).parent / "missing_reward_head.safetensors"
    reward["head_path"] = str(missing)
    reward["card_path"] = str(missing.with_suffix(".md"))
    if stages:
        raw["models"][TINY_SFT_ID] = dict(
            copy.deepcopy(aligned), name="Tiny Llama (test, SFT)", stage="sft", training="test weights"
        )
        # A pair of one family (the same tokenizer on both sides): the token-shift view applies.
        raw["pairs"].append(
            {
                "id": TINY_SAME_FAMILY_PAIR,
                "label": "Tiny SFT vs tiny aligned (one family)",
                "base": TINY_SFT_ID,
                "aligned": pair["aligned"],
            }
        )
        raw["stages"] = {
            "label": "Tiny: pretrained → SFT → preference-tuned",
            "note": "Random test weights: the answers are gibberish.",
            "models": [pair["base"], TINY_SFT_ID, pair["aligned"]],
        }
    return raw


def write_tiny_config(path: str | Path, llama_dir: str | Path, gemma_dir: str | Path, **overrides) -> Path:
    path = Path(path)
    path.write_text(
        yaml.safe_dump(tiny_config_dict(llama_dir, gemma_dir, **overrides), sort_keys=False), encoding="utf-8"
    )
    return path


def _llama_cpp_permute(weights, n_head: int):
    """llama.cpp's convert script reorders Q/K rows for its rotary layout; transformers undoes it."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_llama_gguf(checkpoint: str | Path, path: str | Path) -> Path:
    """Write the tiny Llama checkpoint as an F32 GGUF file the way llama.cpp's converter would
    (byte-level "gpt2" vocabulary, merges, control tokens, chat template, permuted Q/K)."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file
    from transformers import AutoConfig, AutoTokenizer

    checkpoint, path = Path(checkpoint), Path(path)
    config = AutoConfig.from_pretrained(str(checkpoint))
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    tensors = load_file(str(checkpoint / "model.safetensors"))
    spec = json.loads((checkpoint / "tokenizer.json").read_text(encoding="utf-8"))

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama-test")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(
        float(config.rope_parameters["rope_theta"]) if getattr(config, "rope_parameters", None) else 10000.0
    )
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    vocab = tokenizer.get_vocab()
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    specials = set(tokenizer.all_special_tokens)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens])
    merges = spec["model"]["merges"]
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(tokenizer.chat_template)

    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
    }
    per_layer = {
        "input_layernorm.weight": "attn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    for layer in range(config.num_hidden_layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{layer}.{hf}"] = f"blk.{layer}.{gg}"
    for hf_name, gguf_name in names.items():
        data = np.ascontiguousarray(tensors[hf_name].astype(np.float32))
        if gguf_name.endswith("attn_q.weight"):
            data = _llama_cpp_permute(data, config.num_attention_heads)
        elif gguf_name.endswith("attn_k.weight"):
            data = _llama_cpp_permute(data, config.num_key_value_heads)
        writer.add_tensor(gguf_name, np.ascontiguousarray(data))
    if "lm_head.weight" in tensors:
        writer.add_tensor("output.weight", np.ascontiguousarray(tensors["lm_head.weight"].astype(np.float32)))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
