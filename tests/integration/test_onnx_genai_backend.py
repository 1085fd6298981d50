"""Tests for demo/backends/onnx_genai_backend.py on tiny random-weight models built here.

No hub access: the checkpoints (a 2-layer Llama and a 2-layer Gemma 3 with transformers-5
`rope_parameters`) and their word-level tokenizer are written to a temporary folder, then
converted with onnxruntime-genai's builder exactly as the real models are.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime_genai")
pytest.importorskip("onnx_ir")

import numpy as np  # noqa: E402
import onnxruntime_genai as og  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, processors  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

from demo.generation.backends.onnx_genai_backend import (  # noqa: E402
    KV_CAPACITY,
    OnnxGenaiGenerator,
    build_onnx_model,
    onnx_model_dir,
    threads_from_env,
)
from demo.generation.backends.transformers_backend import TransformersGenerator  # noqa: E402
from demo.settings import SamplingSettings  # noqa: E402

WORDS = (
    "the sky is blue because light scatters in air and a cat loves rain on warm days "
    "when clouds move over green hills near old towns with bright red roofs"
).split()
SPECIALS = ["<unk>", "<s>", "</s>"]
GREEDY = SamplingSettings(max_new_tokens=12, temperature=0.0, repetition_penalty=1.0)
SAMPLED = SamplingSettings(max_new_tokens=16, temperature=1.0, top_p=0.95, repetition_penalty=1.1, seed=7)


def _tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: index for index, token in enumerate(SPECIALS + sorted(set(WORDS)))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    # Starts every text with <s>, as Gemma's tokenizer starts it with <bos>.
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def _save(folder: Path, config) -> Path:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    # Larger weights than the default init, so logits are far apart and greedy choices are
    # not decided by float rounding differences between torch and ONNX Runtime.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.3)
    model.save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEMO_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        patch.setenv("DEMO_THREADS", "1")
        yield


@pytest.fixture(scope="module")
def llama(tmp_path_factory, cache) -> Path:
    vocab_size = len(_tokenizer())
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab_size,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    return _save(tmp_path_factory.mktemp("tiny-llama"), config)


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory, cache) -> Path:
    config = Gemma3TextConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=len(_tokenizer()),
        # Beyond KV_CAPACITY, as Gemma 3's 32k: the build keeps RoPE tables for KV_CAPACITY only.
        max_position_embeddings=4 * KV_CAPACITY,
        sliding_window=16,
        layer_types=["sliding_attention", "full_attention"],
        # Far-apart thetas: a build that used one theta for both layer types would not match.
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
        },
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    assert "full_attention" in config.to_dict()["rope_parameters"]  # the transformers-5 form
    return _save(tmp_path_factory.mktemp("tiny-gemma3"), config)


@pytest.fixture(scope="module")
def llama_fp32(llama) -> OnnxGenaiGenerator:
    return OnnxGenaiGenerator.load(llama, "fp32", "cpu")


def _prompt(text: str = "the sky is blue because light") -> list[int]:
    return _tokenizer()(text)["input_ids"]


def _reference(checkpoint: Path, prompt: list[int], sampling=GREEDY) -> list[int]:
    generator = TransformersGenerator.load(checkpoint, "fp32", "cpu")
    return list(generator.generate_ids(prompt, sampling, eos_ids=(), suppress_ids=()))


def _last_logits(generator: OnnxGenaiGenerator, checkpoint: Path, prompt: list[int]):
    """Next-token logits after `prompt` from the ONNX model and from transformers fp32."""
    params = og.GeneratorParams(generator.model)
    params.set_search_options(max_length=generator.capacity)
    onnx = og.Generator(generator.model, params)
    onnx.append_tokens(np.asarray(prompt, dtype=np.int32))
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    with torch.no_grad():
        expected = model(torch.tensor([prompt])).logits[0, -1].numpy()
    return onnx.get_logits().reshape(-1), expected


def _generate(generator, prompt, sampling=GREEDY, eos_ids=(), suppress_ids=()) -> list[int]:
    tokens = generator.generate_ids(prompt, sampling, eos_ids=eos_ids, suppress_ids=suppress_ids)
    return list(tokens)


def test_prompt_keeps_its_bos():
    assert _prompt()[0] == _tokenizer().bos_token_id


def test_greedy_matches_transformers_fp32(llama, llama_fp32):
    prompt = _prompt()
    actual, expected = _last_logits(llama_fp32, llama, prompt)
    np.testing.assert_allclose(actual, expected, atol=1e-3)
    expected = _reference(llama, prompt)
    assert _generate(llama_fp32, prompt)[:8] == expected[:8]


def test_stops_after_max_new_tokens(llama_fp32):
    assert len(_generate(llama_fp32, _prompt())) == GREEDY.max_new_tokens


def test_stops_at_end_of_sequence(llama_fp32):
    first = _generate(llama_fp32, _prompt())[0]
    assert _generate(llama_fp32, _prompt(), eos_ids=(first,)) == [first]


def test_same_seed_gives_same_ids(llama_fp32):
    runs = [_generate(llama_fp32, _prompt(), SAMPLED) for _ in range(2)]
    assert runs[0] == runs[1]
    others = [_generate(llama_fp32, _prompt(), replace(SAMPLED, seed=s)) for s in (1, 2, 3)]
    assert any(other != runs[0] for other in others)


def test_suppressed_ids_are_never_emitted(llama_fp32):
    greedy = _generate(llama_fp32, _prompt())
    banned = {greedy[0], greedy[1]}
    assert not banned & set(_generate(llama_fp32, _prompt(), suppress_ids=sorted(banned)))
    for seed in range(5):
        sampling = replace(SAMPLED, seed=seed, temperature=1.5)
        sampled = _generate(llama_fp32, _prompt(), sampling, suppress_ids=sorted(banned))
        assert not banned & set(sampled)


def test_closing_the_iterator_stops_early(llama_fp32):
    tokens = llama_fp32.generate_ids(_prompt(), GREEDY, eos_ids=(), suppress_ids=())
    first_two = [next(tokens), next(tokens)]
    tokens.close()
    with pytest.raises(StopIteration):
        next(tokens)
    assert _generate(llama_fp32, _prompt())[:2] == first_two


def test_prompt_beyond_capacity_is_refused(llama_fp32):
    too_long = [1] * llama_fp32.capacity
    with pytest.raises(ValueError, match="capacity"):
        _generate(llama_fp32, too_long)


def test_kv_capacity_is_capped_by_the_build(llama_fp32):
    config = json.loads((llama_fp32.model_dir / "genai_config.json").read_text())
    assert config["search"]["max_length"] == min(512, KV_CAPACITY) == llama_fp32.capacity


def test_int4_build_generates(llama):
    generator = OnnxGenaiGenerator.load(llama, "int4", "cpu")
    tokens = _generate(generator, _prompt())
    assert len(tokens) == GREEDY.max_new_tokens
    assert all(0 <= token < len(_tokenizer()) for token in tokens)


def test_build_is_cached(llama, llama_fp32):
    folder = llama_fp32.model_dir
    before = (folder / "model.onnx").stat().st_mtime_ns
    started = time.perf_counter()
    assert build_onnx_model(llama, "fp32", "cpu") == folder
    assert time.perf_counter() - started < 1.0
    assert (folder / "model.onnx").stat().st_mtime_ns == before


def test_an_unfinished_build_is_not_reused(llama, cache):
    # A folder without the completion marker, as an interrupted build might have left.
    target = onnx_model_dir(llama, "int8", "cpu")
    target.mkdir(parents=True)
    (target / "model.onnx").write_text("half written")
    assert build_onnx_model(llama, "int8", "cpu") == target
    generator = OnnxGenaiGenerator(target)
    assert len(_generate(generator, _prompt())) == GREEDY.max_new_tokens
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_gemma3_with_transformers5_rope_parameters(gemma3):
    generator = OnnxGenaiGenerator.load(gemma3, "fp32", "cpu")
    # Longer than the 16-token window, so the sliding layers' cache wraps.
    prompt = _prompt("the sky is blue because light scatters in air and a cat loves rain on warm days")
    sampling = SamplingSettings(max_new_tokens=16, temperature=0.0, repetition_penalty=1.0)
    # Logits, not only greedy ids: a wrong RoPE theta on one layer type moves logits by ~0.2-0.9
    # here, yet can leave the argmax unchanged.
    actual, expected = _last_logits(generator, gemma3, prompt)
    np.testing.assert_allclose(actual, expected, atol=1e-3)
    expected = _reference(gemma3, prompt, sampling)
    assert _generate(generator, prompt, sampling)[:8] == expected[:8]


def test_threads_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEMO_THREADS", "2")
    assert threads_from_env() == 2
    monkeypatch.setenv("DEMO_THREADS", "none")
    with pytest.raises(ValueError, match="DEMO_THREADS"):
        threads_from_env()


def test_bad_precision_is_refused(llama):
    with pytest.raises(ValueError, match="precision"):
        build_onnx_model(llama, "bnb-nf4", "cpu")


def test_continuation_logprobs_match_transformers_fp32(llama, llama_fp32):
    from demo.generation.backends.transformers_backend import TransformersGenerator

    prompt = _prompt()
    answer = _reference(llama, prompt)
    expected = TransformersGenerator.load(llama, "fp32", "cpu").continuation_logprobs(prompt, answer)
    actual = llama_fp32.continuation_logprobs(prompt, answer)
    assert len(actual) == len(answer)
    assert max(abs(a - b) for a, b in zip(actual, expected)) < 1e-3


def test_ignore_eos_decodes_the_full_budget(llama_fp32):
    from dataclasses import replace

    fixed = replace(GREEDY, ignore_eos=True)
    assert len(_generate(llama_fp32, _prompt(), fixed)) == fixed.max_new_tokens


def test_rope_tables_stop_at_the_kv_capacity(gemma3):
    """The build stores cos/sin rows for KV_CAPACITY positions, not the config's 8192 (Gemma 3:
    32k rows, 64 MiB); the logits test above checks the kept rows are still exact."""
    import onnx

    generator = OnnxGenaiGenerator.load(gemma3, "fp32", "cpu")
    graph = onnx.load(generator.model_dir / "model.onnx", load_external_data=False).graph
    rows = {t.name: t.dims[0] for t in graph.initializer if t.name.startswith(("cos_cache", "sin_cache"))}
    assert rows and set(rows.values()) == {KV_CAPACITY}, rows


def test_an_onnx_model_is_served_without_importing_torch(llama, tmp_path):
    """A worker serving an onnxruntime-genai model never imports torch (~160 MiB a process):
    its tokenizer loads without it, and the GGUF-free build runs in a throwaway process."""
    import yaml
    from conftest import run_python
    from tiny_models import tiny_config_dict

    raw = tiny_config_dict(llama, llama)
    raw["models"][raw["pairs"][0]["base"]]["cpu"] = {"backend": "onnxruntime-genai", "precision": "int8"}
    config = tmp_path / "models.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    report = run_python(
        "import json, sys\n"
        "from demo.config import load_config\n"
        "from demo.generation.runner import Finished, GenerationRequest\nfrom demo.settings import SamplingSettings\n"
        "from demo.generation.loading import load_runner\n"
        f"config = load_config({str(config)!r})\n"
        "runner, info = load_runner(config.pair_models()['base'], config.base_prompted, device='cpu')\n"
        "request = GenerationRequest('the sky is', SamplingSettings(max_new_tokens=8, temperature=0.0))\n"
        "finished = [e for e in runner.stream(request) if isinstance(e, Finished)][0]\n"
        "print(json.dumps({'backend': info.backend, 'tokens': finished.new_tokens, 'torch': 'torch' in sys.modules}))\n",
        DEMO_CACHE_DIR=str(tmp_path / "cache"),
    )
    assert report["backend"] == "onnxruntime-genai" and report["tokens"] > 0
    assert report["torch"] is False


# --- fidelity (demo/evaluation/fidelity.py): the measure itself ---------------------------------


def test_token_stats_of_identical_logits_are_perfect_and_of_known_ones_are_exact():
    from demo.evaluation.fidelity import token_stats

    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    same = token_stats(logits, logits, [0, 2])
    assert same.kl.max() < 1e-12 and same.same_top1.all() and not same.rare.any()
    served = np.log(np.array([[0.2, 0.7, 0.1], [0.1, 0.1, 0.8]]))
    stats = token_stats(logits, served, [1, 2])
    expected = 0.7 * np.log(0.7 / 0.2) + 0.2 * np.log(0.2 / 0.7)  # KL(reference || served), row 1
    assert abs(stats.kl[0] - expected) < 1e-9 and stats.kl[1] < 1e-12
    assert stats.same_top1.tolist() == [False, True]
    rare = token_stats(np.log(np.array([[1 - 1e-6, 1e-6, 0.0 + 1e-300]])), served[:1], [1])
    assert rare.rare.tolist() == [True]  # the reference gives the written token < 1e-4


@pytest.mark.parametrize("precision, max_kl, min_top1", [("fp32", 1e-4, 1.0), ("int8", 0.05, 0.9)])
def test_fidelity_of_a_build_against_a_direct_transformers_pass(llama, precision, max_kl, min_top1):
    """The served graph's teacher-forced logits (every position) against transformers fp32 on
    the same checkpoint: the fp32 build is the reference up to float rounding."""
    from demo.evaluation.fidelity import _reference_logits, token_stats
    from demo.generation.backends.onnx_batch import BatchDecoder

    decoder = BatchDecoder(build_onnx_model(llama, precision, "cpu"), threads=1)
    prompt = _prompt()
    answer = _reference(llama, prompt)
    stats = token_stats(_reference_logits(llama)(prompt, answer), decoder.continuation_logits(prompt, answer), answer)
    assert stats.kl.mean() <= max_kl
    assert stats.same_top1.mean() >= min_top1


# --- a worker process serving an ONNX model -------------------------------------------------------


def test_a_worker_call_that_builds_into_the_cache_returns_its_own_result(llama, tmp_path, monkeypatch):
    """The first token-shift view a worker makes builds the all-positions graph, and the build
    reports progress over the worker's pipe. The call must return its TokenShift, not that
    progress line, and the next call its own result, not the one left behind (the page showed
    "ranking the answer failed" under every answer of a fresh Space)."""
    import yaml
    from tiny_models import tiny_config_dict

    from demo.config import load_config
    from demo.generation.workers import ProcessWorker
    from demo.token_shift import TokenShift

    monkeypatch.setenv("DEMO_CACHE_DIR", str(tmp_path / "fresh-cache"))
    raw = tiny_config_dict(llama, llama)
    model_id = raw["pairs"][0]["base"]
    raw["models"][model_id]["cpu"] = {"backend": "onnxruntime-genai", "precision": "int8"}
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    config = load_config(tmp_path / "models.yaml")
    worker = ProcessWorker("base", config.models[model_id], config.base_prompted, None, device="cpu").start()
    try:
        assert worker.wait_ready(240), worker.error
        first = worker.call("token_shift", "the sky is", " blue because light", "raw")
        second = worker.call("token_shift", "the sky is", " green", "raw")
        assert isinstance(first, TokenShift) and first.text == " blue because light"
        assert isinstance(second, TokenShift) and second.text == " green"
        assert "all-positions graph" in (worker.progress or "")  # the build was reported, to the page
    finally:
        worker.close()
