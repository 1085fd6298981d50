"""Serving the reward model: backbone features → trained head → one reward per answer.

Torch-free, so the app scores answers without importing torch (~160 MiB): the backbone runs in
onnxruntime (demo/reward_backbone.py) and the head — a standardisation and a one-hidden-layer
MLP, trained by demo/training/reward/ — is the shared numpy head of demo/scoring/heads.py over the
tensors of its safetensors file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..config import AppConfig, SequenceClassifierReward, TrainedHeadReward
from .heads import NumpyHead, read_metadata, read_tensors
from .reward_inputs import HEAD_FORMAT, METADATA_KEY, TRAIN_COMMAND, FeatureKind, Pair, RewardUnavailable

log = logging.getLogger(__name__)

# The reward head is the shared numpy head (demo/scoring/heads.py); its file names the offset so.
OFFSET_KEY = "reward_offset"


def read_head_metadata(path: Path) -> dict[str, str]:
    """The metadata of a `demo-reward-head/1` safetensors file, read from its header only (no
    tensors): what the page says about the head."""
    if not Path(path).is_file():
        raise RewardUnavailable(
            f"reward head {path} not found; train it with `{TRAIN_COMMAND}` (2–3 minutes on a 2-core CPU)"
        )
    metadata = read_metadata(path, METADATA_KEY)
    if metadata.get("format") != HEAD_FORMAT:
        raise RewardUnavailable(f"{path} is not a {HEAD_FORMAT} file; retrain it with `{TRAIN_COMMAND}`")
    return metadata


def read_head_file(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The fp32 tensors and the metadata of a `demo-reward-head/1` safetensors file."""
    metadata = read_head_metadata(path)
    return read_tensors(path), metadata


def load_head_weights(path: Path) -> tuple[NumpyHead, dict[str, str]]:
    """The head in a head file, ready to serve."""
    tensors, metadata = read_head_file(path)
    return NumpyHead.from_tensors(tensors, OFFSET_KEY), metadata


class TrainedHeadRewardScorer:
    """The project's reward model: frozen backbone → hidden-state feature → trained head. Which
    layer and pooling the head reads is stored in the head file."""

    def __init__(self, backbone, head: NumpyHead, metadata: dict[str, str]):
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
