"""Serving the heads this project trains on backbone features (the reward head, the meaning-aware
toxicity head) in numpy, without torch: the forward of demo/training/heads.py's `FeatureHead`
over the tensors of its safetensors file.

Both files hold `feature_mean`, `feature_std`, the Linear layers as `net.<i>.weight/bias` and
one scalar offset, named by the file (`reward_offset`, `logit_offset`); the toxicity scorer
applies its sigmoid on top of the score.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])


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


@dataclass(frozen=True)
class NumpyHead:
    """(feature − mean) / std → Linear → [GELU → Linear] → score − offset, as `FeatureHead`."""

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (weight [out, in], bias [out]) each
    feature_mean: np.ndarray
    feature_std: np.ndarray
    offset: float

    @property
    def input_dim(self) -> int:
        return int(self.feature_mean.shape[0])

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return standardised_mlp(features, self.layers, self.feature_mean, self.feature_std) - self.offset

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], offset_key: str) -> NumpyHead:
        """The head in a head file's tensors; `offset_key` names its offset tensor."""
        tensors = {name: array.astype(np.float64) for name, array in tensors.items()}
        # nn.Sequential indices: Linear layers sit at 1 (and 4 for the MLP) between dropouts/GELU.
        linear = sorted({int(name.split(".")[1]) for name in tensors if name.startswith("net.")})
        return cls(
            layers=tuple((tensors[f"net.{i}.weight"], tensors[f"net.{i}.bias"]) for i in linear),
            feature_mean=tensors["feature_mean"],
            feature_std=tensors["feature_std"],
            offset=float(tensors[offset_key]),
        )


def read_metadata(path: Path, metadata_key: str) -> dict:
    """The JSON metadata a head file keeps under `metadata_key`, from its header only ({} when
    absent or unreadable: the caller checks the format and says what to do)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        raw = handle.metadata() or {}
    try:
        metadata = json.loads(raw.get(metadata_key, "{}"))
    except json.JSONDecodeError:
        return {}
    return metadata if isinstance(metadata, dict) else {}


def read_tensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, as stored (fp32)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}
