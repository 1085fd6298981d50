"""bitsandbytes 4-bit/8-bit through the transformers back end: on CPU here, on CUDA when present.

The CUDA tests skip cleanly without a GPU (CI never has one); the CPU tests run the same
`TransformersGenerator` path with a tiny model, so the bnb code path is exercised everywhere.
"""

from __future__ import annotations

import pytest
import torch

from demo.generation.backends.transformers_backend import TransformersGenerator, quantization_config
from demo.settings import SamplingSettings

GREEDY = SamplingSettings(max_new_tokens=8, temperature=0.0, repetition_penalty=1.0)
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_quantization_config_maps_precisions():
    assert quantization_config("fp32") is None
    nf4 = quantization_config("bnb-nf4")
    assert nf4.load_in_4bit and nf4.bnb_4bit_quant_type == "nf4"
    assert quantization_config("bnb-int8").load_in_8bit


@pytest.mark.parametrize("precision, layer", [("bnb-nf4", "Linear4bit"), ("bnb-int8", "Linear8bitLt")])
def test_bnb_on_cpu_quantizes_linear_layers_and_generates(tmp_path, precision, layer):
    # bnb's CPU 4-bit kernels need widths that are multiples of their block size (≥ 64).
    checkpoint = _llama(tmp_path, hidden=128, intermediate=256, layers=2)
    generator = TransformersGenerator.load(checkpoint, precision, "cpu")
    kinds = {type(module).__name__ for module in generator.model.modules()}
    assert layer in kinds
    ids = list(generator.generate_ids([1, 5, 9, 13], GREEDY, eos_ids=(), suppress_ids=()))
    assert len(ids) == GREEDY.max_new_tokens
    assert ids == list(generator.generate_ids([1, 5, 9, 13], GREEDY, eos_ids=(), suppress_ids=()))


def _llama(tmp_path, hidden: int, intermediate: int, layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=8,
        vocab_size=1024,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    return tmp_path


def _wide_llama(tmp_path):
    """Random weights, wide enough that linear layers dominate memory (as in a real LM)."""
    return _llama(tmp_path, hidden=1024, intermediate=4096, layers=4)


@requires_cuda
@pytest.mark.gpu
def test_bnb_4bit_on_cuda_uses_under_a_third_of_fp16_memory(tmp_path):
    checkpoint = _wide_llama(tmp_path)
    fp16 = TransformersGenerator.load(checkpoint, "fp16", "cuda").model.get_memory_footprint()
    nf4_generator = TransformersGenerator.load(checkpoint, "bnb-nf4", "cuda")
    nf4 = nf4_generator.model.get_memory_footprint()
    assert nf4 <= 0.3 * fp16, (nf4, fp16)
    ids = list(nf4_generator.generate_ids([1, 2, 3], GREEDY, eos_ids=(), suppress_ids=()))
    assert len(ids) == GREEDY.max_new_tokens


@requires_cuda
@pytest.mark.gpu
def test_bnb_8bit_on_cuda_generates(tmp_path):
    generator = TransformersGenerator.load(_wide_llama(tmp_path), "bnb-int8", "cuda")
    assert generator.device.type == "cuda"
    assert len(list(generator.generate_ids([1, 2, 3], GREEDY, eos_ids=(), suppress_ids=()))) == 8
