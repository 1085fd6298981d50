"""Back end: onnxruntime-genai, the fast CPU path (int4/int8/fp32 ONNX models).

`build_onnx_model` turns a local safetensors checkpoint (see demo/weights.py) into an ONNX model
with onnxruntime-genai's model builder, once, into the user cache. `OnnxGenaiGenerator` decodes
it token by token. Tokenizing stays outside, in `ModelRunner`: the runtime's own tokenizer does
not add Gemma's `<bos>`, and without it the model emits garbage, so this back end only ever sees
the ids the Hugging Face tokenizer made.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, cast

import numpy as np
import onnxruntime_genai as og

from ...cache import cache_dir, cached_build, run_isolated
from ...settings import SamplingSettings
from .onnx_batch import BatchDecoder, OnToken

log = logging.getLogger(__name__)

OnnxPrecision = Literal["int4", "int4-int8head", "int4-mixed", "int4-fp32act", "int8", "fp32"]
ExecutionProvider = Literal["cpu", "cuda"]
PRECISIONS: tuple[str, ...] = ("int4", "int4-int8head", "int4-mixed", "int4-fp32act", "int8", "fp32")
THREADS_ENV_VAR = "DEMO_THREADS"
_MARKER = "demo-onnx-build.json"

# Room for prompt + answer. The KV cache of full-attention layers is allocated at the request's
# max_length, and Gemma's sliding-window layers refuse a capacity below their window (512), so
# the capacity is a build constant, not the model's 32k context (which would cost memory).
KV_CAPACITY = 2048

# Builder options, chosen by measurement on the two demo models (2-core CPU, 1 thread; KL is the
# mean per-token KL divergence from fp32 transformers, teacher-forced over 2 x 128 greedy tokens):
# - prune_lm_head: the LM head runs on the last prompt position only, not all of them; with
#   Gemma's 262k vocabulary that cut the first-token latency of a 450-token prompt from 2.4 s to
#   0.9 s, with identical output.
# - int4 block_size 32, accuracy_level 4 (int8 activations): Gemma KL 0.07, SmolLM2 KL 0.29,
#   ~52 / ~123 tok/s. block 16 lowers KL (0.03 / 0.24) at ~30 / ~76 tok/s (no fast kernel);
#   block 64 is ~15 % faster at 1.4-2.5x the KL; accuracy_level 1 (fp32 activations) halves the
#   speed for no gain; algo k_quant gains little and takes 6x longer to build (190 s for Gemma).
#   Asymmetric int4 and an int8 LM head fail to load when embeddings are shared (builder 0.18).
# - int8 (same block and accuracy level): Gemma KL 0.0005, SmolLM2 KL 0.004, ~30 / ~91 tok/s.
#   SmolLM2's GGUF weights are already 4-bit, and re-quantizing them to int4 changes its answers
#   (top-1 agreement 80 %), so int8 is the faithful choice for it.
_COMMON_OPTIONS: dict[str, str] = {"prune_lm_head": "true"}
# - int4-int8head: int4 blocks, the LM head int8 (untied from the int4 embedding, which the
#   builder can only store at 4 bits); int4-mixed: also llama.cpp's most sensitive MatMuls
#   (attention v / qkv and MLP down projections of the first and last eighth of the layers and
#   every third between) at int8.
_INT4 = {"accuracy_level": "4", "block_size": "32"}
_PRECISION_OPTIONS: dict[str, dict[str, str]] = {
    "int4": _INT4,
    "int4-int8head": {**_INT4, "matmul_mixed_precision": "last_matmul:int8", "shared_embeddings": "false"},
    "int4-mixed": {
        **_INT4,
        "matmul_mixed_precision": "last_matmul:int8,mixed_layers:int8",
        "shared_embeddings": "false",
    },
    "int4-fp32act": {"accuracy_level": "1", "block_size": "32"},
    "int8": {"accuracy_level": "4", "block_size": "32"},
    "fp32": {},
}


def _build_options(precision: str) -> dict[str, str]:
    return {**_COMMON_OPTIONS, **_PRECISION_OPTIONS[precision]}


def _builder_precision(precision: str) -> str:
    """The builder's own precision argument for one of ours (the mixed builds are int4 ones)."""
    return precision.split("-")[0]


class OnnxBuildError(RuntimeError):
    """The model builder could not convert a checkpoint; carries the builder's last output."""


def onnx_model_dir(checkpoint: Path, precision: str, execution_provider: str) -> Path:
    return cache_dir() / "onnx" / f"{checkpoint.name}-{precision}-{execution_provider}"


def _recipe(precision: str, execution_provider: str, trust_remote_code: bool) -> dict:
    """Everything that shapes a build; a cached build made with another recipe is rebuilt."""
    return {
        "precision": precision,
        "execution_provider": execution_provider,
        "options": _build_options(precision),
        "kv_capacity": KV_CAPACITY,
        "rope_tables": KV_CAPACITY,
        "trust_remote_code": trust_remote_code,
        "onnxruntime_genai": og.__version__,
    }


def build_onnx_model(
    checkpoint: Path,
    precision: OnnxPrecision,
    execution_provider: ExecutionProvider = "cpu",
    *,
    trust_remote_code: bool = False,
) -> Path:
    """The ONNX model folder for `checkpoint`, built on first use and reused afterwards.

    Built into a temporary sibling folder and renamed when complete, so an interrupted build is
    never mistaken for a finished one.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not available for onnxruntime-genai; use one of {PRECISIONS}")
    if execution_provider not in ("cpu", "cuda"):
        raise ValueError(f"execution provider {execution_provider!r} is not supported; use 'cpu' or 'cuda'")
    checkpoint = Path(checkpoint)
    if not (checkpoint / "config.json").is_file():
        raise FileNotFoundError(f"{checkpoint} is not a checkpoint directory (no config.json in it)")

    target = onnx_model_dir(checkpoint, precision, execution_provider)

    def build(staging: Path) -> None:
        started = time.perf_counter()
        # In a throwaway process: the builder imports torch and peaks at GBs (demo/isolated.py).
        run_isolated(
            _run_builder,
            reraise=(OnnxBuildError,),
            checkpoint=str(checkpoint),
            output=str(staging),
            precision=precision,
            execution_provider=execution_provider,
            trust_remote_code=trust_remote_code,
        )
        _cap_kv_capacity(staging / "genai_config.json")
        log.info("built %s in %.1f s", target.name, time.perf_counter() - started)

    recipe = _recipe(precision, execution_provider, trust_remote_code)
    label = f"{checkpoint.name} {precision} ONNX model"
    return cached_build(target, recipe, build, marker=_MARKER, label=label, note={"checkpoint": checkpoint.name})


def _run_builder(
    checkpoint: str, output: str | Path, precision: str, execution_provider: str, trust_remote_code: bool
) -> None:
    # Imported here: it pulls in torch and transformers and appends its own folder to sys.path.
    from onnxruntime_genai.models import builder

    output = Path(output)
    options = {**_build_options(precision), "hf_token": "false"}  # a local folder: never the hub
    if trust_remote_code:
        options["hf_remote"] = "true"
    scratch = output / "builder-cache"
    transcript = io.StringIO()
    # The quantizer logs every MatMul it quantizes, and at int8 an "ERROR" that the tied
    # embedding Gather stays unquantized (expected, harmless): keep both out of the user's log.
    quantizer_logs = [
        logging.getLogger(name)
        for name in ("onnxruntime.quantization", "onnxruntime.quantization.matmul_nbits_quantizer")
    ]
    previous_levels = [log_.level for log_ in quantizer_logs]
    for log_ in quantizer_logs:
        log_.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(transcript), contextlib.redirect_stderr(transcript):
            # (model name, input folder, output folder, precision, provider, cache folder)
            where = (
                None,
                str(checkpoint),
                str(output),
                _builder_precision(precision),
                execution_provider,
                str(scratch),
            )
            prepared = builder.parse_extra_options(*where, [f"{key}={value}" for key, value in options.items()])
            _adapt_config(prepared["hf_details"]["hf_config"])
            _cap_context_length(prepared["hf_details"]["hf_config"])
            builder.create_model(*where, **prepared)
    except Exception as error:
        tail = "\n".join(transcript.getvalue().splitlines()[-20:])
        raise OnnxBuildError(
            f"onnxruntime-genai {og.__version__} could not build a {precision} {execution_provider} "
            f"model from {checkpoint}: {type(error).__name__}: {error}\n"
            f"last builder output:\n{tail}\n"
            "Use the transformers back end for this model (backend: transformers in models.yaml) "
            "or an onnxruntime-genai version that supports its architecture."
        ) from error
    finally:
        for log_, level in zip(quantizer_logs, previous_levels):
            log_.setLevel(level)
        shutil.rmtree(scratch, ignore_errors=True)


def _adapt_config(config) -> None:
    """Give the builder the Gemma 3 config fields it reads (those of transformers 4).

    Transformers 5 keeps one RoPE block per attention type, `rope_parameters = {full_attention:
    {...}, sliding_attention: {...}}`, and turns the old top-level fields into that form when it
    reads config.json, so rewriting the file cannot help: the loaded config object is patched.
    Builder 0.18 wants `rope_theta` (full attention), `rope_local_base_freq` (sliding layers) and
    a flat `rope_parameters` with a `rope_type`. Without them it stops (KeyError: 'rope_type');
    with a flat block alone it would silently fall back to theta 10000 for full attention.
    """
    architectures = getattr(config, "architectures", None) or []
    if not any(name.startswith("Gemma3") for name in architectures):
        return
    rope = getattr(config, "rope_parameters", None)
    if not (isinstance(rope, dict) and "full_attention" in rope and "sliding_attention" in rope):
        return
    full, local = dict(rope["full_attention"]), dict(rope["sliding_attention"])
    if local.get("rope_type", "default") != "default":
        raise OnnxBuildError(
            f"sliding-window RoPE type {local.get('rope_type')!r} is not supported by the ONNX "
            "build; use the transformers back end for this model"
        )
    config.rope_theta = full["rope_theta"]
    config.rope_local_base_freq = local["rope_theta"]
    config.rope_parameters = full


def _cap_context_length(config) -> None:
    """Build for KV_CAPACITY positions, not the model's full context.

    The builder stores RoPE cos/sin tables for every position up to `max_position_embeddings`:
    for Gemma 3 (32k positions, global and local tables) that is 64 MiB of memory for positions
    a 2048-token cache never reaches. Plain RoPE tables are the same for the positions kept;
    scaled RoPE (yarn, longrope, llama3, ...) may depend on the full length, so it is left as is.
    """
    rope = getattr(config, "rope_parameters", None) or {}
    blocks = [rope] if "rope_type" in rope or not rope else list(rope.values())  # flat or per layer type
    if any(not isinstance(b, dict) or b.get("rope_type", "default") != "default" for b in blocks):
        return
    if getattr(config, "max_position_embeddings", 0) > KV_CAPACITY:
        config.max_position_embeddings = KV_CAPACITY


def _cap_kv_capacity(genai_config: Path) -> None:
    config = json.loads(genai_config.read_text())
    search = config["search"]
    search["max_length"] = min(int(search["max_length"]), KV_CAPACITY)
    genai_config.write_text(json.dumps(config, indent=4))


def threads_from_env() -> int:
    raw = os.environ.get(THREADS_ENV_VAR, "1")
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"{THREADS_ENV_VAR}={raw!r}: expected a whole number of CPU threads, 1 or more")
    return threads


class OnnxGenaiGenerator:
    """`TokenGenerator` over an onnxruntime-genai model folder."""

    reuses_prefixes = True  # decode_batch and continuation_logprobs_batch take prefix lengths

    def __init__(self, model_dir: Path, device: ExecutionProvider = "cpu", threads: int | None = None):
        self.model_dir = Path(model_dir)
        self.threads = threads or threads_from_env()
        genai = json.loads((self.model_dir / "genai_config.json").read_text())
        config = og.Config(str(self.model_dir))
        # Intra-op threads per model: the two models decode side by side, so on a 2-core machine
        # one thread each keeps them from fighting over cores.
        session_options = {"intra_op_num_threads": self.threads}
        config.overlay(json.dumps({"model": {"decoder": {"session_options": session_options}}}))
        if device == "cuda":
            config.clear_providers()
            config.append_provider("cuda")
        self.model = og.Model(config)
        self.device = device
        eos = genai["model"]["eos_token_id"]
        self.eos_token_ids: tuple[int, ...] = tuple(eos) if isinstance(eos, list) else (int(eos),)
        self.vocab_size = int(genai["model"]["vocab_size"])
        self.capacity = int(genai["search"]["max_length"])
        window = genai["model"]["decoder"].get("sliding_window") or {}
        self._min_length = int(window.get("window_size", 0))
        self._batch_decoder: BatchDecoder | None = None  # made on the first batch (evaluations)
        self._batch_lock = threading.Lock()

    @classmethod
    def load(cls, checkpoint: Path, precision: str, device: str, trust_remote_code: bool = False, options=None):
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device {device!r} is not supported by onnxruntime-genai; use 'cpu' or 'cuda'")
        if device == "cuda" and not og.is_cuda_available():
            raise RuntimeError(
                "this onnxruntime-genai build has no CUDA support; install onnxruntime-genai-cuda, "
                "or use the transformers back end on GPU"
            )
        model_dir = build_onnx_model(
            Path(checkpoint),
            cast(OnnxPrecision, precision),
            cast(ExecutionProvider, device),
            trust_remote_code=trust_remote_code,
        )
        return cls(model_dir, cast(ExecutionProvider, device))  # device checked above

    def _params(self, prompt_length: int, sampling: SamplingSettings) -> og.GeneratorParams:
        needed = prompt_length + sampling.max_new_tokens
        if needed > self.capacity:
            raise ValueError(
                f"prompt ({prompt_length} tokens) + max_new_tokens ({sampling.max_new_tokens}) "
                f"exceeds the {self.capacity}-token capacity of this ONNX model; shorten the "
                "prompt or lower max_new_tokens"
            )
        options: dict[str, float | int | bool] = {
            # Sliding-window layers need a cache at least one window long, whatever is asked.
            "max_length": min(self.capacity, max(needed, self._min_length)),
            "repetition_penalty": sampling.repetition_penalty,
            "random_seed": sampling.seed,
        }
        if sampling.ignore_eos:
            options["min_length"] = options["max_length"]  # the benchmark decodes a fixed length
        if sampling.greedy:
            options["do_sample"] = False
        else:
            # top_k 0 disables the runtime's default top-k of 50, so sampling matches transformers.
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        params = og.GeneratorParams(self.model)
        params.set_search_options(**options)
        return params

    def generate_ids(
        self,
        prompt_ids: Sequence[int],
        sampling: SamplingSettings,
        *,
        eos_ids: Sequence[int],
        suppress_ids: Sequence[int],
    ) -> Iterator[int]:
        if not prompt_ids:
            raise ValueError("the prompt has no tokens; the model needs at least one to continue")
        params = self._params(len(prompt_ids), sampling)
        stop = set(eos_ids)
        banned = sorted({i for i in suppress_ids if 0 <= i < self.vocab_size})
        suppress = np.array(banned, dtype=np.int64)
        generator = og.Generator(self.model, params)
        try:
            generator.append_tokens(np.asarray(prompt_ids, dtype=np.int32))
            for _ in range(sampling.max_new_tokens):
                if suppress.size:
                    # The runtime has no banned-token option: mask the logits it is about to use.
                    logits = generator.get_logits()
                    logits[..., suppress] = -np.inf
                    generator.set_logits(logits)
                generator.generate_next_token()
                token = int(generator.get_next_tokens()[0])
                yield token
                if token in stop or generator.is_done():
                    return
        finally:
            del generator  # frees its KV cache now, not at the next garbage collection

    def batch_decoder(self) -> BatchDecoder:
        """The continuous-batching decoder over this model's graph (onnx_batch.py), loaded on the
        first batch: the page's one-at-a-time answers never pay for its session."""
        with self._batch_lock:
            if self._batch_decoder is None:
                self._batch_decoder = BatchDecoder(self.model_dir)
            return self._batch_decoder

    def decode_batch(
        self,
        prompts: Sequence[Sequence[int]],
        samplings: Sequence[SamplingSettings],
        *,
        suppress_ids: Sequence[int],
        on_token: OnToken,
        prefixes: Sequence[int] | None = None,
    ) -> None:
        """Several prompts, any lengths, decoded together (continuous batching) on the CPU; one
        after another on a GPU, where onnxruntime-genai's own decoding is used. `prefixes`: per
        prompt, the length of its format's shared prefix, computed once (onnx_batch.py)."""
        if self.device != "cpu":
            for job, (prompt, sampling) in enumerate(zip(prompts, samplings)):
                for token in self.generate_ids(prompt, sampling, eos_ids=(), suppress_ids=suppress_ids):
                    if on_token(job, token):
                        break  # the generator is closed (and its KV cache freed) as it is dropped
            return
        banned = [i for i in suppress_ids if 0 <= i < self.vocab_size]
        self.batch_decoder().decode(prompts, samplings, suppress_ids=banned, on_token=on_token, prefixes=prefixes)

    def continuation_logprobs_batch(
        self, prompt_ids: Sequence[int], continuations: Sequence[Sequence[int]], prefix: int = 0
    ) -> list[list[float]]:
        """`continuation_logprobs` of several continuations of one prompt: the prompt is
        prefilled once and each continuation teacher-forced in a row of one batch (CPU)."""
        if self.device != "cpu":
            return [self.continuation_logprobs(prompt_ids, c) for c in continuations]
        return self.batch_decoder().continuation_logprobs(prompt_ids, continuations, prefix)

    def continuation_logprobs(self, prompt_ids: Sequence[int], continuation_ids: Sequence[int]) -> list[float]:
        """Log-probability of each continuation token given everything before it, one token at
        a time through the runtime's own generator (the reference the batch paths are tested
        against)."""
        logits = self._stepwise_logits(prompt_ids, continuation_ids).astype(np.float64)
        top = logits.max(axis=1, keepdims=True)
        normaliser = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        return [float(logits[i, t] - normaliser[i]) for i, t in enumerate(continuation_ids)]

    def continuation_logits(self, prompt_ids: Sequence[int], continuation_ids: Sequence[int]) -> np.ndarray:
        """The logits [len(continuation), vocab] that predicted each continuation token: on the
        CPU one teacher-forced pass over the all-positions graph (onnx_batch.py); elsewhere one
        token at a time (the runtime exposes only the last position's logits)."""
        if self.device == "cpu":
            return self.batch_decoder().continuation_logits(prompt_ids, continuation_ids)
        return self._stepwise_logits(prompt_ids, continuation_ids)

    def _stepwise_logits(self, prompt_ids: Sequence[int], continuation_ids: Sequence[int]) -> np.ndarray:
        plain = SamplingSettings(max_new_tokens=max(len(continuation_ids), 1), temperature=0.0, repetition_penalty=1.0)
        generator = og.Generator(self.model, self._params(len(prompt_ids), plain))
        try:
            generator.append_tokens(np.asarray(prompt_ids, dtype=np.int32))
            rows = []
            for token in continuation_ids:
                logits = np.asarray(generator.get_logits(), dtype=np.float32)
                rows.append(logits.reshape(-1, logits.shape[-1])[-1])
                generator.append_tokens(np.asarray([token], dtype=np.int32))
            return np.stack(rows)
        finally:
            del generator
