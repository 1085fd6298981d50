"""Serving the reward model: backbone features → trained head → one reward per answer.

Torch-free, so the app scores answers without importing torch (~160 MiB): the backbone runs in
onnxruntime (demo/reward_backbone.py) and the head — a standardisation and a one-hidden-layer
MLP, trained by demo/reward.py — is a few lines of numpy over the tensors of its safetensors file.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import AppConfig, SequenceClassifierReward, TrainedHeadReward
from .reward_inputs import HEAD_FORMAT, METADATA_KEY, TRAIN_COMMAND, FeatureKind, Pair, RewardUnavailable

log = logging.getLogger(__name__)
_erf = np.vectorize(math.erf, otypes=[np.float64])


@dataclass(frozen=True)
class NumpyRewardHead:
    """(feature − mean) / std → Linear → [GELU → Linear] → reward − offset, as `RewardHead`."""

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (weight [out, in], bias [out]) each
    feature_mean: np.ndarray
    feature_std: np.ndarray
    reward_offset: float

    @property
    def input_dim(self) -> int:
        return int(self.feature_mean.shape[0])

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return standardised_mlp(features, self.layers, self.feature_mean, self.feature_std) - self.reward_offset


def standardised_mlp(
    features: np.ndarray,
    layers: tuple[tuple[np.ndarray, np.ndarray], ...],
    mean: np.ndarray,
    std: np.ndarray,
) -> np.ndarray:
    """(feature − mean) / std → Linear → [GELU → Linear]: the one numpy forward of the heads this
    project trains on backbone features (the reward head, the meaning-aware toxicity head)."""
    x = (np.asarray(features, dtype=np.float64) - mean) / std
    for index, (weight, bias) in enumerate(layers):
        if index:
            x = 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))  # exact GELU, as torch's default
        x = x @ weight.T + bias
    return x[:, 0]


def read_head_metadata(path: Path) -> dict[str, str]:
    """The metadata of a `demo-reward-head/1` safetensors file, read from its header only (no
    tensors): what the page says about the head."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise RewardUnavailable(
            f"reward head {path} not found; train it with `{TRAIN_COMMAND}` (2–3 minutes on a 2-core CPU)"
        )
    with safe_open(str(path), framework="np") as handle:
        raw = handle.metadata() or {}
    try:
        metadata = json.loads(raw.get(METADATA_KEY, "{}"))
    except json.JSONDecodeError:
        metadata = {}
    if metadata.get("format") != HEAD_FORMAT:
        raise RewardUnavailable(f"{path} is not a {HEAD_FORMAT} file; retrain it with `{TRAIN_COMMAND}`")
    return metadata


def read_head_file(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The fp32 tensors and the metadata of a `demo-reward-head/1` safetensors file."""
    from safetensors import safe_open

    metadata = read_head_metadata(path)
    with safe_open(str(path), framework="np") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    return tensors, metadata


def load_head_weights(path: Path) -> tuple[NumpyRewardHead, dict[str, str]]:
    """The head in a head file, ready to serve."""
    tensors, metadata = read_head_file(path)
    tensors = {name: array.astype(np.float64) for name, array in tensors.items()}
    # nn.Sequential indices: Linear layers sit at 1 (and 4 for the MLP) between dropouts/GELU.
    linear = sorted({int(name.split(".")[1]) for name in tensors if name.startswith("net.")})
    layers = tuple((tensors[f"net.{i}.weight"], tensors[f"net.{i}.bias"]) for i in linear)
    head = NumpyRewardHead(
        layers=layers,
        feature_mean=tensors["feature_mean"],
        feature_std=tensors["feature_std"],
        reward_offset=float(tensors["reward_offset"]),
    )
    return head, metadata


class TrainedHeadRewardScorer:
    """The project's reward model: frozen backbone → hidden-state feature → trained head. Which
    layer and pooling the head reads is stored in the head file."""

    def __init__(self, backbone, head: NumpyRewardHead, metadata: dict[str, str]):
        if int(metadata.get("input_dim", backbone.hidden_size)) != backbone.hidden_size:
            raise RewardUnavailable(
                f"the reward head reads {metadata['input_dim']}-dim states but the backbone has "
                f"{backbone.hidden_size}; retrain it for this backbone with `{TRAIN_COMMAND}`"
            )
        layer = "final" if backbone.layer is None else str(backbone.layer)
        if metadata.get("layer", layer) != layer:
            raise RewardUnavailable(
                f"the reward head reads backbone layer {metadata['layer']} but the backbone was loaded at "
                f"layer {layer}; load it with TrainedHeadRewardScorer.from_spec"
            )
        trained_on = metadata.get("backbone_checkpoint")
        current = backbone.identity.get("backbone_checkpoint")
        if trained_on and current and trained_on != current:
            log.warning(
                "reward head was trained on backbone %s but runs on %s; its scores may be off", trained_on, current
            )
        if metadata.get("backbone_dtype", backbone.dtype) != backbone.dtype:
            log.info("reward head trained on %s features, running on %s", metadata["backbone_dtype"], backbone.dtype)
        self.backbone, self.head, self.metadata = backbone, head, metadata
        self.feature: FeatureKind = metadata.get("feature", "last_token")  # type: ignore[assignment]

    @classmethod
    def from_spec(cls, spec: TrainedHeadReward, config: AppConfig) -> TrainedHeadRewardScorer:
        from .reward_backbone import OnnxBackbone

        head, metadata = load_head_weights(spec.head_path)  # first: a missing head needs no build
        layer = metadata.get("layer", "final")
        backbone = OnnxBackbone.from_config(config, spec, layer=None if layer == "final" else int(layer))
        return cls(backbone, head, metadata)

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """One reward per (prompt, answer)."""
        if not pairs:
            return []
        features = np.asarray(self.backbone.features(list(pairs), self.feature), dtype=np.float32)
        return [float(r) for r in self.head(features)]


def build_reward_scorer(config: AppConfig):
    """The reward scorer `models.yaml` asks for."""
    spec = config.scoring.reward
    if isinstance(spec, TrainedHeadReward):
        return TrainedHeadRewardScorer.from_spec(spec, config)
    if isinstance(spec, SequenceClassifierReward):
        from .hosted import SequenceClassifierRewardScorer  # torch: hosted reward models only

        return SequenceClassifierRewardScorer.from_spec(spec, config)
    raise TypeError(f"unknown reward spec {spec!r}")
