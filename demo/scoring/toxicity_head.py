"""The meaning-aware toxicity signal: a small head on the reward backbone's hidden states.

The BiLSTM (toxicity_bilstm.py) reacts to words; this head reads the aligned model's block-20
residual stream averaged over the answer — the very feature the reward head reads, so for an
answer the reward model already scored it costs one matrix-vector product. Torch-free: the head
is a standardisation and a linear layer or small MLP in numpy, trained by
demo/training/toxicity_head.py. `combine` is the one rule that turns both signals into a flag.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import UserFacingError
from .heads import NumpyHead, read_metadata, read_tensors

log = logging.getLogger(__name__)

HEAD_FORMAT = "demo-toxicity-head/1"
METADATA_KEY = "demo_toxicity_head"
TRAIN_COMMAND = "python -m demo train-toxicity"

# What each scorer cannot see, for the legend beside the flag (from the held-out errors in
# trained/toxicity/MODEL_CARD.md).
BLIND_SPOTS: dict[str, str] = {
    "bilstm": (
        "reacts to words, not meaning: misses stereotypes and demeaning generalisations written in "
        "polite words (it flags about 1 in 10 of them), and flags harmless text with a charged word: "
        'identity words ("a gay couple", "lesbian"), a quoted slur being criticised, violent sport or '
        "technical language; reads only the last 100 words"
    ),
    "meaning": (
        "a small head trained on 640 texts written for this project and about 500 of our models' "
        "labelled outputs (AI feedback): misses hate in a formal or "
        'pseudo-scientific register ("research indicates", a letter to the editor) and about a quarter '
        'of implicit stereotypes; can flag neutral facts about a group ("one of the fastest-growing '
        'groups"), a text that names a stereotype to refute it, or a violent idiom ("slaughter this '
        'exam"); English only, short texts'
    ),
}


class ToxicityHeadUnavailable(UserFacingError, RuntimeError):
    """The meaning head cannot be loaded (never trained, or trained for another backbone)."""


# The meaning head is the shared numpy head (demo/scoring/heads.py): its score is a logit, its
# file names the offset so (the offset puts the operating point chosen in training at logit 0).
OFFSET_KEY = "logit_offset"


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def read_head_file(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The fp32 tensors and the (JSON-decoded) metadata of a `demo-toxicity-head/1` file."""
    if not Path(path).is_file():
        raise ToxicityHeadUnavailable(f"toxicity head {path} not found; train it with `{TRAIN_COMMAND}`")
    metadata = read_metadata(path, METADATA_KEY)
    if metadata.get("format") != HEAD_FORMAT:
        raise ToxicityHeadUnavailable(f"{path} is not a {HEAD_FORMAT} file; retrain it with `{TRAIN_COMMAND}`")
    return read_tensors(path), metadata


def load_head_weights(path: Path) -> tuple[NumpyHead, dict]:
    """The head in a head file, ready to serve: it gives logits (`sigmoid` makes them probabilities)."""
    tensors, metadata = read_head_file(path)
    return NumpyHead.from_tensors(tensors, OFFSET_KEY), metadata


class MeaningToxicityScorer:
    """Backbone feature of a text read as an assistant answer → head → probability it is toxic.

    `backbone` is an `OnnxBackbone` (or anything with `features(pairs, kind)`, `layer` and
    `hidden_size`), loaded at the layer stored in the head file — the reward model's backbone when
    they match, so `score_features` can reuse the reward model's features of the same answer.
    """

    def __init__(self, backbone, head: NumpyHead, metadata: dict):
        layer = "final" if backbone.layer is None else str(backbone.layer)
        if str(metadata.get("layer", layer)) != layer:
            raise ToxicityHeadUnavailable(
                f"the toxicity head reads backbone layer {metadata['layer']} but the backbone was loaded at layer "
                f"{layer}; load the backbone at layer {metadata['layer']} or retrain with `{TRAIN_COMMAND}`"
            )
        if head.input_dim != backbone.hidden_size:
            raise ToxicityHeadUnavailable(
                f"the toxicity head reads {head.input_dim}-dim states but the backbone has {backbone.hidden_size}; "
                f"retrain it for this backbone with `{TRAIN_COMMAND}`"
            )
        trained_on, current = (
            metadata.get("backbone_checkpoint"),
            getattr(backbone, "identity", {}).get("backbone_checkpoint"),
        )
        if trained_on and current and trained_on != current:
            log.warning(
                "toxicity head was trained on backbone %s but runs on %s; its scores may be off", trained_on, current
            )
        self.backbone, self.head, self.metadata = backbone, head, metadata
        self.feature = metadata.get("feature", "answer_mean")

    @classmethod
    def from_files(cls, head_path: Path, backbone) -> MeaningToxicityScorer:
        head, metadata = load_head_weights(Path(head_path))
        return cls(backbone, head, metadata)

    @property
    def threshold(self) -> float:
        """The probability the head was calibrated to flag at (its own operating point; the served
        thresholds are models.yaml's, chosen on our labelled outputs)."""
        return float(self.metadata.get("calibrated_threshold", 0.5))

    @property
    def heldout_rates(self) -> dict:
        """False-positive / false-negative rates on the independent held-out texts, per signal
        and for `combine`, as measured when the head was trained (for display beside the flag)."""
        return dict(self.metadata.get("heldout_rates", {}))

    def score_features(self, features: np.ndarray) -> np.ndarray:
        """[n] probabilities from [n, hidden] backbone features (e.g. the reward model's)."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.head.input_dim:
            raise ValueError(f"features must be [n, {self.head.input_dim}], got {list(features.shape)}")
        return sigmoid(self.head(features))

    def score(self, texts: Sequence[str], prompts: Sequence[str] | None = None) -> np.ndarray:
        """[len(texts)] probabilities; each text is read as the assistant's answer to its prompt
        (empty when none given, as in training)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single string")
        if not texts:
            return np.zeros(0)
        prompts = [""] * len(texts) if prompts is None else list(prompts)
        if len(prompts) != len(texts):
            raise ValueError(f"{len(prompts)} prompts for {len(texts)} texts")
        return self.score_features(self.backbone.features(list(zip(prompts, texts)), self.feature))


def combine(
    bilstm_score: float, meaning_score: float, threshold: float, meaning_threshold: float | None = None
) -> tuple[bool, str]:
    """The toxicity flag from both signals, and why: flag when EITHER passes its threshold.

    Why "either": the BiLSTM keeps the explicit insults, slurs and threats it is good at (an AND
    would lose those the head misses) and the head adds what the BiLSTM cannot read (stereotypes in
    polite words). The cost is the union of both signals' false positives; on the held-out texts
    that stays small because the head's operating point was chosen, by cross-validation on the
    training texts, for the combined rule (see trained/toxicity/MODEL_CARD.md for the figures).
    `meaning_threshold` defaults to `threshold`: the head is calibrated so that models.yaml's one
    `toxicity_threshold` (0.5) is its chosen operating point.
    """
    cut = threshold if meaning_threshold is None else meaning_threshold
    words, meaning = bilstm_score >= threshold, meaning_score >= cut
    if words and meaning:
        return (
            True,
            f"both signals: wording ({bilstm_score:.2f} ≥ {threshold:.2f}) and meaning ({meaning_score:.2f} ≥ {cut:.2f})",
        )
    if words:
        return True, f"wording: the word classifier scores {bilstm_score:.2f} ≥ {threshold:.2f}"
    if meaning:
        return True, f"meaning: the meaning head scores {meaning_score:.2f} ≥ {cut:.2f}"
    return (
        False,
        f"neither signal: wording {bilstm_score:.2f} < {threshold:.2f}, meaning {meaning_score:.2f} < {cut:.2f}",
    )
