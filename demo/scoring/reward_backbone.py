"""The reward head's frozen backbone, run by onnxruntime: hidden states without torch.

The head reads one hidden state of the backbone language model per answer (the residual stream
after block `layer`, or the final normed state). `build_residual_model` makes, once, into the
user cache, an ONNX model of the blocks that state needs and nothing above them (no LM head):
the checkpoint is cut to `layer` blocks, built by onnxruntime-genai's model builder (the same
builder and int8 recipe as the generating models), and the residual sum its final
SkipSimplifiedLayerNormalization already computes is exposed as an extra graph output, "residual".
At fp32 those features equal transformers' `output_hidden_states[layer]` to ~1e-6 (tests).

`OnnxBackbone.features` runs one forward pass per conversation through `onnxruntime` on the CPU.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from ..cache import cache_dir, cached_build, run_isolated
from ..config import AppConfig, MeaningToxicity, TrainedHeadReward
from ..generation.formatting import special_token_strings
from .reward_inputs import (
    FEATURE_KINDS,
    ChatLayout,
    Conversation,
    FeatureKind,
    Pair,
    encode_conversation,
    pool_feature,
)

log = logging.getLogger(__name__)

BackbonePrecision = Literal["int8", "fp32"]
RESIDUAL_OUTPUT = "residual"
FINAL_OUTPUT = "hidden_states"
_MARKER = "demo-reward-build.json"
_RECIPE_VERSION = 1
# Enough positions for any conversation the scorer reads (max_tokens is bounded by the config).
_CONTEXT = 2048
_TURNS_KEPT = 32  # prompt turns whose keys and values are kept for the next answers (~1.5 MB each)


def _recipe(layer: int | None, precision: str) -> dict:
    import onnxruntime_genai as og

    return {"version": _RECIPE_VERSION, "layer": layer, "precision": precision, "onnxruntime_genai": og.__version__}


def build_residual_model(checkpoint: Path, layer: int | None, precision: BackbonePrecision) -> Path:
    """The ONNX backbone folder for `checkpoint` cut at `layer` (None: every block, final norm),
    built on first use into the user cache and reused afterwards."""
    checkpoint = Path(checkpoint)
    cut = "final" if layer is None else f"block{layer}"
    target = cache_dir() / "reward" / f"{checkpoint.name}-{cut}-{precision}"

    def build(staging: Path) -> None:
        started = time.perf_counter()
        # In a throwaway process: cutting the checkpoint and the builder import torch.
        run_isolated(_build_job, checkpoint=str(checkpoint), layer=layer, precision=precision, output=str(staging))
        log.info("built reward backbone %s in %.1f s", target.name, time.perf_counter() - started)

    label = f"the scorers' {checkpoint.name} {cut} {precision} backbone"
    return cached_build(target, _recipe(layer, precision), build, marker=_MARKER, label=label)


def _build_job(checkpoint: str | Path, layer: int | None, precision: str, output: str | Path) -> None:
    """Cut, build and expose the residual (runs in a child process; see demo/isolated.py)."""
    import contextlib
    import io

    from onnxruntime_genai.models import builder

    checkpoint, output = Path(checkpoint), Path(output)
    scratch = output / "scratch"
    source = _cut_checkpoint(checkpoint, layer, scratch / "checkpoint")
    options = {"exclude_lm_head": "true", "hf_token": "false"}
    if precision != "fp32":
        options.update(accuracy_level="4", block_size="32")  # the generating models' int8 recipe
    where = (None, str(source), str(output), precision, "cpu", str(scratch / "builder"))
    with contextlib.redirect_stdout(io.StringIO()):
        prepared = builder.parse_extra_options(*where, [f"{k}={v}" for k, v in options.items()])
        builder.create_model(*where, **prepared)
    if layer is not None:
        _expose_residual(
            output / "model.onnx", hidden_size=json.loads((source / "config.json").read_text())["hidden_size"]
        )
    shutil.rmtree(scratch, ignore_errors=True)


def _cut_checkpoint(checkpoint: Path, layer: int | None, output: Path) -> Path:
    """A copy of the checkpoint with blocks `layer`.. and the LM head dropped."""
    from safetensors.torch import load_file, save_file

    output.mkdir(parents=True, exist_ok=True)
    config = json.loads((checkpoint / "config.json").read_text())
    blocks = int(config["num_hidden_layers"])
    if layer is not None and not 1 <= layer <= blocks:
        raise ValueError(f"layer must be between 1 and {blocks} for this backbone, got {layer}")
    if layer is not None:
        config["num_hidden_layers"] = layer
        for key in ("layer_types",):  # per-block lists must match the new depth
            if isinstance(config.get(key), list):
                config[key] = config[key][:layer]
    config["max_position_embeddings"] = min(int(config.get("max_position_embeddings", _CONTEXT)), _CONTEXT)
    (output / "config.json").write_text(json.dumps(config))
    kept = {}
    for file in sorted(checkpoint.glob("*.safetensors")):
        for name, tensor in load_file(str(file)).items():
            if name.startswith("lm_head."):
                continue
            parts = name.split(".")
            if layer is not None and "layers" in parts and int(parts[parts.index("layers") + 1]) >= layer:
                continue
            kept[name] = tensor
    save_file(kept, str(output / "model.safetensors"), metadata={"format": "pt"})
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        if (checkpoint / name).is_file():
            shutil.copy(checkpoint / name, output / name)
    return output


def _expose_residual(model_file: Path, hidden_size: int) -> None:
    """Add the residual sum of the last SkipSimplifiedLayerNormalization as a graph output.

    That node computes `residual = x + block_output` (its optional 4th output) and then the
    final norm of it; the builder only wires the normed value out.
    """
    import onnx

    model = onnx.load(str(model_file), load_external_data=False)
    nodes = [n for n in model.graph.node if FINAL_OUTPUT in n.output]
    if len(nodes) != 1 or nodes[0].op_type != "SkipSimplifiedLayerNormalization":
        raise RuntimeError(
            f"unexpected ONNX graph: the {FINAL_OUTPUT!r} output does not come from one "
            "SkipSimplifiedLayerNormalization node; this onnxruntime-genai builder is not supported"
        )
    outputs = list(nodes[0].output) + [""] * (4 - len(nodes[0].output))
    outputs[3] = RESIDUAL_OUTPUT
    del nodes[0].output[:]
    nodes[0].output.extend(outputs)
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(
            RESIDUAL_OUTPUT, onnx.TensorProto.FLOAT, ["batch_size", "sequence_length", hidden_size]
        )
    )
    onnx.save(model, str(model_file))


def resolve_backbone(config: AppConfig, spec: TrainedHeadReward | MeaningToxicity) -> tuple[Path, dict[str, str]]:
    """The backbone's local checkpoint, and what identifies it in a head file's metadata."""
    from ..weights import resolve_checkpoint

    model_spec = config.models[spec.backbone]
    checkpoint = resolve_checkpoint(model_spec.source, trust_remote_code=model_spec.trust_remote_code)
    identity = {
        "backbone_role": spec.backbone,
        "backbone_name": model_spec.name,
        "backbone_origin": checkpoint.origin,
        "backbone_checkpoint": checkpoint.path.name,
    }
    return checkpoint.path, identity


@dataclass(frozen=True)
class _Prefix:
    ids: tuple[int, ...]
    past: dict[str, np.ndarray]  # its keys and values, the past of what follows
    states: np.ndarray  # [len(ids), hidden]


class OnnxBackbone:
    """A frozen causal LM read for one hidden state per token, through onnxruntime.

    One instance per (model, layer, precision, length) in a process (`shared`), and it keeps the
    features of its last call: the reward head and the meaning-aware toxicity head read the same
    feature of the same answer, so scoring an answer with both runs the backbone once.
    """

    _shared: ClassVar[dict[tuple, OnnxBackbone]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        model_dir: Path,
        tokenizer,
        *,
        layer: int | None,
        precision: str,
        max_tokens: int,
        identity: dict[str, str],
        threads: int = 0,
    ):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
        decoder = json.loads((model_dir / "genai_config.json").read_text())["model"]["decoder"]
        self._empty_past = {
            i.name: np.zeros((1, decoder["num_key_value_heads"], 0, decoder["head_size"]), dtype=np.float32)
            for i in self.session.get_inputs()
            if i.name.startswith("past_key_values.")
        }
        self.output = FINAL_OUTPUT if layer is None else RESIDUAL_OUTPUT
        self.hidden_size = int(decoder["hidden_size"])
        self.tokenizer = tokenizer
        self.layer, self.max_tokens, self.identity = layer, max_tokens, identity
        self.dtype = f"onnxruntime {precision}"
        self.layout = ChatLayout.from_tokenizer(tokenizer)
        self.specials = special_token_strings(tokenizer)
        self._last: tuple[tuple, np.ndarray] | None = None
        self._lock = threading.Lock()
        self._presents = [o.name for o in self.session.get_outputs() if o.name.startswith("present.")]
        self._pasts = [name.replace("present.", "past_key_values.", 1) for name in self._presents]
        self._prefix: _Prefix | None = None
        self._turns: dict[tuple[int, ...], _Prefix] = {}  # recent prompt turns (LRU)
        self.reuse_prefix = True

    @classmethod
    def load(
        cls,
        checkpoint: Path,
        *,
        layer: int | None,
        precision: BackbonePrecision = "int8",
        max_tokens: int = 512,
        identity: dict[str, str] | None = None,
    ) -> OnnxBackbone:
        from ..generation.loading import load_tokenizer

        model_dir = build_residual_model(Path(checkpoint), layer, precision)
        return cls(
            model_dir,
            load_tokenizer(Path(checkpoint)),
            layer=layer,
            precision=precision,
            max_tokens=max_tokens,
            identity=identity or {"backbone_checkpoint": Path(checkpoint).name},
        )

    @classmethod
    def from_config(
        cls, config: AppConfig, spec: TrainedHeadReward | MeaningToxicity, layer: int | None
    ) -> OnnxBackbone:
        checkpoint, identity = resolve_backbone(config, spec)
        return cls.shared(
            checkpoint, layer=layer, precision=spec.precision, max_tokens=spec.max_tokens, identity=identity
        )

    @classmethod
    def shared(
        cls,
        checkpoint: Path,
        *,
        layer: int | None,
        precision: BackbonePrecision,
        max_tokens: int,
        identity: dict[str, str],
    ) -> OnnxBackbone:
        """The process's one instance for this backbone cut (built and loaded once)."""
        key = (str(Path(checkpoint).resolve()), layer, precision, max_tokens)
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls.load(
                    checkpoint, layer=layer, precision=precision, max_tokens=max_tokens, identity=identity
                )
            return cls._shared[key]

    def conversation(self, prompt: str, answer: str) -> Conversation:
        return encode_conversation(self.tokenizer, self.layout, self.specials, prompt, answer, self.max_tokens)

    def hidden_states(self, ids: Sequence[int]) -> np.ndarray:
        """[len(ids), hidden] states of one sequence (no padding, so no mask subtleties). The
        chat template's opening turn, which every conversation starts with, is computed once:
        its keys and values are fed as the past of the rest (`reuse_prefix`)."""
        prefix = self._shared_prefix() if self.reuse_prefix else None
        if prefix is not None and len(ids) > len(prefix.ids) and tuple(ids[: len(prefix.ids)]) == prefix.ids:
            rest = self._run(ids[len(prefix.ids) :], prefix.past, len(ids))[0]
            return np.concatenate([prefix.states, rest])
        return self._run(ids, self._empty_past, len(ids))[0]

    def _conversation_states(self, conversation: Conversation) -> np.ndarray:
        """`hidden_states` of a conversation, its prompt turn computed once for the answers that
        share it (an evaluation scores the raw and prompted base answers and the aligned answer
        to one prompt together): the turn's keys and values are the past of each answer."""
        ids = conversation.ids
        turn = tuple(ids[: conversation.answer_start])
        system = self._shared_prefix() if self.reuse_prefix else None
        if (
            system is None
            or len(ids) <= len(turn)
            or len(turn) <= len(system.ids)
            or turn[: len(system.ids)] != system.ids
        ):
            return self.hidden_states(ids)
        cached = self._turns.pop(turn, None)
        if cached is None:
            states, past = self._run(turn[len(system.ids) :], system.past, len(turn), presents=True)
            cached = _Prefix(turn, past, np.concatenate([system.states, states]))
        self._turns[turn] = cached  # the most recent last
        while len(self._turns) > _TURNS_KEPT:
            self._turns.pop(next(iter(self._turns)))
        answer = self._run(ids[len(turn) :], cached.past, len(ids))[0]
        return np.concatenate([cached.states, answer])

    def _run(self, ids: Sequence[int], past: dict[str, np.ndarray], total: int, presents: bool = False):
        feed = {
            "input_ids": np.asarray([list(ids)], dtype=np.int64),
            "attention_mask": np.ones((1, total), dtype=np.int64),
            **past,
        }
        outputs = self.session.run([self.output, *(self._presents if presents else [])], feed)
        return outputs[0][0], dict(zip(self._pasts, outputs[1:]))

    def _shared_prefix(self) -> _Prefix | None:
        """What different conversations have in common at the start (the system turn)."""
        if self._prefix is None:
            probes = [self.conversation("a", "b").ids, self.conversation("Z 1", "? x").ids]
            ids = tuple(os.path.commonprefix(probes))
            if len(ids) < 8:
                self._prefix = _Prefix((), {}, np.zeros((0, self.hidden_size), dtype=np.float32))
            else:
                states, past = self._run(ids, self._empty_past, len(ids), presents=True)
                self._prefix = _Prefix(ids, past, states)
        return self._prefix if self._prefix.ids else None

    def features(self, pairs: Sequence[Pair], kind: FeatureKind = "answer_mean") -> np.ndarray:
        """[len(pairs), hidden] fp32 features (see `pool_feature`), one forward pass each."""
        if kind not in FEATURE_KINDS:
            raise ValueError(f"feature kind must be one of {FEATURE_KINDS}, got {kind!r}")
        key = (tuple(pairs), kind)
        with self._lock:
            if self._last is not None and self._last[0] == key:
                return self._last[1].copy()
            out = np.zeros((len(pairs), self.hidden_size), dtype=np.float32)
            for index, (prompt, answer) in enumerate(pairs):
                conversation = self.conversation(prompt, answer)
                out[index] = pool_feature(self._conversation_states(conversation), conversation, kind)
            self._last = (key, out)
            return out.copy()
