"""The one head this project trains on frozen backbone features, for the reward model (the judge,
demo/training/reward/) and the meaning-aware toxicity signal (demo/training/toxicity_head.py):
(feature − mean) / std → linear or one-hidden-layer MLP → scalar − offset.

The two head files differ only in the name of the offset tensor (`reward_offset`, `logit_offset`)
and in their metadata; `head_tensors` and `load_head_tensors` map the module's `offset` buffer to
that name, so a saved head keeps the file layout (and the bytes) it always had. The app serves
these files in numpy (demo/scoring/heads.py), without torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import repo_relative
from ..paths import RESULTS_DIR

HEAD_KINDS = ("linear", "mlp")


class FeatureHead(nn.Module):
    """(feature − mean) / std → linear or one-hidden-layer MLP → scalar − offset.

    The offset centres the score where its user wants 0: the reward head on the mean training
    answer, the toxicity head on its chosen operating point (logit 0 = probability 0.5)."""

    # register_buffer's tensors, declared for type checkers (torch types them Tensor | Module)
    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    offset: torch.Tensor
    net: Any  # an nn.Sequential; torch types its items as Module and their weights as Tensor | Module

    def __init__(self, input_dim: int, kind: str = "mlp", hidden: int = 64, dropout: float = 0.0):
        super().__init__()
        if kind == "linear":
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(input_dim, 1))
        elif kind == "mlp":
            self.net = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(input_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
            )
        else:
            raise ValueError(f"head kind must be 'linear' or 'mlp', got {kind!r}")
        self.kind, self.hidden = kind, hidden
        self.register_buffer("feature_mean", torch.zeros(input_dim))
        self.register_buffer("feature_std", torch.ones(input_dim))
        self.register_buffer("offset", torch.zeros(()))

    @property
    def input_dim(self) -> int:
        return int(self.feature_mean.shape[0])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = (features - self.feature_mean) / self.feature_std
        return self.net(x).squeeze(-1) - self.offset


def head_tensors(head: FeatureHead, offset_key: str) -> dict[str, torch.Tensor]:
    """The head's tensors as its file names them (`offset` is written as `offset_key`)."""
    return {
        (offset_key if name == "offset" else name): tensor.detach().float().contiguous()
        for name, tensor in head.state_dict().items()
    }


def load_head_tensors(
    tensors: dict[str, np.ndarray], offset_key: str, *, input_dim: int, kind: str, hidden: int
) -> FeatureHead:
    """A head from the tensors of its file (`offset_key` is read into `offset`), in eval mode."""
    head = FeatureHead(input_dim, kind, hidden)
    state = {("offset" if name == offset_key else name): torch.tensor(array) for name, array in tensors.items()}
    head.load_state_dict(state)
    return head.eval()


def write_head_file(path: Path, tensors: dict[str, torch.Tensor], metadata_key: str, metadata: dict) -> None:
    """A safetensors head file whose metadata is one sorted JSON string under `metadata_key`:
    safetensors writes several metadata keys in a random order, and a retrained head should be
    byte-identical to the committed one."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    blob = json.dumps(metadata, sort_keys=True, ensure_ascii=False)
    save_file(tensors, str(path), metadata={metadata_key: blob})


# Where a training run run with --replace-shipped records its figures (every figure of the card).
TRAINING_RESULTS_DIR = RESULTS_DIR / "training"


def head_facts(path: Path) -> dict:
    """What a results record says about the head file it describes: its name, the sha256 of its
    bytes and of its tensors alone (names, shapes and values: a head retrained to the same weights
    matches even where its metadata differs), and its trained parameters (the Linear layers; the
    standardisation statistics and the offset are fixed, not learnt)."""
    import hashlib

    from ..scoring.heads import read_tensors

    tensors = read_tensors(path)
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name], dtype=np.float32)
        digest.update(f"{name}:{list(array.shape)}\n".encode() + array.tobytes())
    return {
        "file": Path(path).name,
        "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
        "tensors_sha256": digest.hexdigest(),
        "parameters": sum(int(array.size) for name, array in tensors.items() if name.startswith("net.")),
    }


def shipped_record(results: Path, head_path: Path, facts: dict, train_command: str) -> dict | None:
    """The committed results record of a shipped head (None when there is none), or ValueError
    when it was written with another head than the one at `head_path` (`facts`: its `head_facts`;
    compared by tensors)."""
    if not results.is_file():
        return None
    record = json.loads(results.read_text(encoding="utf-8"))
    if record["head"]["tensors_sha256"] != facts["tensors_sha256"]:
        raise ValueError(
            f"{repo_relative(results)} was written with another head than {repo_relative(head_path)} (tensors "
            f"sha256 {record['head']['tensors_sha256'][:12]}… vs {facts['tensors_sha256'][:12]}…): re-run "
            f"`{train_command} --replace-shipped`, or remove the record"
        )
    return record
