"""Toxicity scores for model answers, without TensorFlow.

This is a numpy port of the BiLSTM classifier shipped in the PyPI package
``toxic-comment-classifier==0.3.0`` (MIT). That package's own code imports
TensorFlow (~1.8 GB), so we never import its modules: we only read its two data
files -- ``model/model.weights.h5`` (Keras 3 weights, read with h5py) and
``model/tokenizer.pickle`` (a Keras ``Tokenizer``, read with a restricted
unpickler) -- and replay the forward pass in numpy:

    text -> Tokenizer.texts_to_sequences -> pad_sequences(maxlen=100)
         -> Embedding(20000, 50) -> Bidirectional(LSTM(50, return_sequences=True))
         -> GlobalMaxPooling1D -> Dense(50, relu) -> [Dropout] -> Dense(6, sigmoid)

The port matches Keras 3 on the shipped weights to ~1e-7 (see tests/integration/test_toxicity.py).
"""

from __future__ import annotations

import collections
import importlib.util
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import h5py
import numpy as np

TOXICITY_LABELS: tuple[str, ...] = (
    "toxic",
    "severe_toxic",
    "obscene",
    "threat",
    "insult",
    "identity_hate",
)

# Fixed by the shipped model: its Input layer takes exactly 100 token ids.
MAX_LEN = 100

_PIP_HINT = "pip install --no-deps toxic-comment-classifier==0.3.0"
# Relative to the package directory of `toxic_classifier`.
_WEIGHTS_FILE = ("model", "model.weights.h5")
_TOKENIZER_FILE = ("model", "tokenizer.pickle")

# Texts are scored in chunks so a huge batch cannot allocate an unbounded
# (2, batch, 100, 200) gate tensor; 128 rows is ~40 MB of float64.
_CHUNK = 128


# --------------------------------------------------------------------------- #
# Tokenizer: restricted unpickling + a replica of Keras' texts_to_sequences.
# --------------------------------------------------------------------------- #

# Keras 3 pickles its legacy Tokenizer under this path; older Keras 2 / tf.keras
# pickles use the other two. All of them carry the same plain-attribute state.
_TOKENIZER_CLASS_PATHS = frozenset(
    {
        ("keras.src.legacy.preprocessing.text", "Tokenizer"),
        ("keras.preprocessing.text", "Tokenizer"),
        ("keras_preprocessing.text", "Tokenizer"),
    }
)
# The only other globals the shipped pickle references: word_counts is an
# OrderedDict, word_docs/index_docs are defaultdict(int).
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("builtins", "int"): int,
}


class _PickledTokenizerState:
    """Stand-in for the Keras Tokenizer class: it only collects the pickled attributes."""

    state: dict[str, Any]

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f"tokenizer pickle has a {type(state).__name__} state; expected the attribute dict of a Keras Tokenizer"
            )
        self.state = state


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that admits only the Keras Tokenizer and a few harmless containers.

    The Keras Tokenizer class is mapped onto `_PickledTokenizerState`, so no Keras
    code runs and nothing outside the allow-list can be constructed or called.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _TOKENIZER_CLASS_PATHS:
            return _PickledTokenizerState
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from the tokenizer pickle: only a "
                "Keras Tokenizer and collections.OrderedDict/defaultdict, builtins.int "
                "are allowed"
            ) from None


@dataclass(frozen=True)
class KerasTokenizer:
    """Replica of the legacy Keras ``Tokenizer.texts_to_sequences`` (Keras 3.x).

    Only the state that affects ``texts_to_sequences`` is kept.
    """

    word_index: dict[str, int]
    num_words: int | None = None
    filters: str = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
    lower: bool = True
    split: str = " "
    char_level: bool = False
    oov_token: str | None = None

    def __post_init__(self) -> None:
        # Keras would silently emit `None` ids in this case; fail early instead.
        if self.oov_token is not None and self.oov_token not in self.word_index:
            raise ValueError(
                f"oov_token {self.oov_token!r} is not in word_index; the tokenizer state "
                "is inconsistent (re-fit the tokenizer or drop oov_token)"
            )
        if not self.char_level and not self.split:
            raise ValueError("split must be a non-empty string for word-level tokenizers")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> KerasTokenizer:
        """Build from the attribute dict of a pickled Keras Tokenizer."""
        if state.get("analyzer") is not None:
            # A custom analyzer is arbitrary Python code; we cannot replicate it.
            raise ValueError("tokenizer uses a custom analyzer, which this port does not support")
        if not isinstance(state.get("word_index"), dict):
            raise ValueError("tokenizer state has no word_index dict; is this a fitted Keras Tokenizer?")
        return cls(
            word_index=state["word_index"],
            num_words=state.get("num_words"),
            filters=state.get("filters", cls.filters),
            lower=bool(state.get("lower", True)),
            split=state.get("split", " "),
            char_level=bool(state.get("char_level", False)),
            oov_token=state.get("oov_token"),
        )

    @classmethod
    def load(cls, path: Path) -> KerasTokenizer:
        """Read a pickled Keras Tokenizer through `RestrictedUnpickler`."""
        with open(path, "rb") as handle:
            return cls.from_state(load_tokenizer_state(handle))

    def _words(self, text: str) -> list[str]:
        if self.char_level:
            # Keras does not apply `filters` at char level, only lowercasing.
            return list(text.lower() if self.lower else text)
        # Same as keras' text_to_word_sequence: filter chars become separators.
        if self.lower:
            text = text.lower()
        text = text.translate(str.maketrans(dict[str, str | int | None]({c: self.split for c in self.filters})))
        return [w for w in text.split(self.split) if w]

    def texts_to_sequences(self, texts: Sequence[str]) -> list[list[int]]:
        oov_index = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        sequences = []
        for text in texts:
            ids: list[int] = []
            for word in self._words(text):
                i = self.word_index.get(word)
                if i is not None and not (self.num_words and i >= self.num_words):
                    ids.append(i)
                elif oov_index is not None:
                    # Unknown words and words past the num_words cut-off alike.
                    ids.append(oov_index)
            sequences.append(ids)
        return sequences


def load_tokenizer_state(handle: BinaryIO) -> dict[str, Any]:
    """Unpickle a Keras Tokenizer's attribute dict without running foreign code."""
    obj = RestrictedUnpickler(handle).load()
    if not isinstance(obj, _PickledTokenizerState) or not hasattr(obj, "state"):
        raise pickle.UnpicklingError(f"tokenizer pickle holds a {type(obj).__name__}, not a Keras Tokenizer")
    return obj.state


def pad_sequences(sequences: Sequence[Sequence[int]], maxlen: int = MAX_LEN) -> np.ndarray:
    """Keras ``pad_sequences`` defaults: pad and truncate at the front (keep the last `maxlen`), value 0."""
    out = np.zeros((len(sequences), maxlen), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = list(seq)[-maxlen:]
        if tail:
            out[row, maxlen - len(tail) :] = tail
    return out


# --------------------------------------------------------------------------- #
# Model: weights from the .h5 and the numpy forward pass.
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class LSTMWeights:
    """One Keras LSTM cell; gate blocks along the last axis are ordered i, f, c, o."""

    kernel: np.ndarray  # (input_dim, 4 * units)
    recurrent_kernel: np.ndarray  # (units, 4 * units)
    bias: np.ndarray  # (4 * units,)


@dataclass(frozen=True)
class BiLSTMWeights:
    embedding: np.ndarray  # (vocab, embed_dim)
    forward: LSTMWeights
    backward: LSTMWeights
    dense_kernel: np.ndarray  # (2 * units, hidden)
    dense_bias: np.ndarray
    out_kernel: np.ndarray  # (hidden, n_labels)
    out_bias: np.ndarray

    @classmethod
    def from_h5(cls, path: Path) -> BiLSTMWeights:
        """Read a Keras 3 ``model.weights.h5`` of the package's architecture."""

        def lstm(group: h5py.Group) -> LSTMWeights:
            v = group["cell/vars"]
            return LSTMWeights(_f64(v["0"]), _f64(v["1"]), _f64(v["2"]))

        try:
            with h5py.File(path, "r") as f:
                layers = f["layers"]
                weights = cls(
                    embedding=_f64(layers["embedding/vars/0"]),
                    forward=lstm(layers["bidirectional/forward_layer"]),
                    backward=lstm(layers["bidirectional/backward_layer"]),
                    dense_kernel=_f64(layers["dense/vars/0"]),
                    dense_bias=_f64(layers["dense/vars/1"]),
                    out_kernel=_f64(layers["dense_1/vars/0"]),
                    out_bias=_f64(layers["dense_1/vars/1"]),
                )
        except KeyError as exc:
            raise ValueError(
                f"{path} does not have the layout of toxic-comment-classifier 0.3.0's "
                f"Keras 3 weights (missing {exc}); reinstall with `{_PIP_HINT}`"
            ) from None
        units = weights.forward.recurrent_kernel.shape[0]
        if weights.dense_kernel.shape[0] != 2 * units or weights.out_kernel.shape[1] != len(TOXICITY_LABELS):
            raise ValueError(f"{path}: unexpected layer shapes for the BiLSTM toxicity model")
        return weights


def _f64(dataset: h5py.Dataset) -> np.ndarray:
    # float64 arithmetic keeps us within ~1e-7 of Keras' float32 outputs; the
    # port's own rounding error then stays far below the reference's.
    return np.asarray(dataset[()], dtype=np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: no overflow warnings for large |x|, unlike 1 / (1 + exp(-x)).
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def lstm_sequence(x: np.ndarray, weights: Sequence[LSTMWeights]) -> np.ndarray:
    """Run one or more independent Keras LSTMs over the same-shaped inputs.

    x: (directions, batch, time, input_dim), one input per entry of `weights`.
    Returns hidden states (directions, batch, time, units). Stacking the
    directions lets a single batched matmul per time step serve all of them.
    """
    kernel = np.stack([w.kernel for w in weights])
    recurrent = np.stack([w.recurrent_kernel for w in weights])
    bias = np.stack([w.bias for w in weights])[:, None, None, :]
    n_dir, batch, steps, _ = x.shape
    units = recurrent.shape[1]
    # Input projections for every step at once; only h @ U must stay sequential.
    x_gates = np.matmul(x, kernel[:, None]) + bias  # (dir, batch, time, 4*units)
    h = np.zeros((n_dir, batch, units), dtype=x_gates.dtype)
    c = np.zeros_like(h)
    out = np.empty((n_dir, batch, steps, units), dtype=x_gates.dtype)
    for t in range(steps):
        z = x_gates[:, :, t] + np.matmul(h, recurrent)
        i = _sigmoid(z[..., :units])
        f = _sigmoid(z[..., units : 2 * units])
        g = np.tanh(z[..., 2 * units : 3 * units])
        o = _sigmoid(z[..., 3 * units :])
        c = f * c + i * g
        h = o * np.tanh(c)
        out[:, :, t] = h
    return out


def bidirectional_lstm(x: np.ndarray, forward: LSTMWeights, backward: LSTMWeights) -> np.ndarray:
    """Keras ``Bidirectional(LSTM(..., return_sequences=True))``, merge_mode='concat'.

    x: (batch, time, input_dim) -> (batch, time, 2 * units) as [forward, backward].
    No masking: the shipped model has no mask_zero, so padding ids run through too.
    """
    stacked = np.stack([x, x[:, ::-1]])  # backward direction sees the reversed sequence
    out = lstm_sequence(stacked, [forward, backward])
    # Keras flips the backward outputs back to the original time order.
    return np.concatenate([out[0], out[1][:, ::-1]], axis=-1)


def forward_pass(weights: BiLSTMWeights, token_ids: np.ndarray) -> np.ndarray:
    """(batch, MAX_LEN) int ids -> (batch, n_labels) sigmoid probabilities."""
    x = weights.embedding[token_ids]
    seq = bidirectional_lstm(x, weights.forward, weights.backward)
    pooled = seq.max(axis=1)  # GlobalMaxPooling1D over time
    hidden = np.maximum(pooled @ weights.dense_kernel + weights.dense_bias, 0.0)
    # Dropout is the identity at inference.
    return _sigmoid(hidden @ weights.out_kernel + weights.out_bias)


# --------------------------------------------------------------------------- #
# Public classifier.
# --------------------------------------------------------------------------- #


class BiLSTMToxicityClassifier:
    """Scores texts with the toxic-comment-classifier 0.3.0 BiLSTM, in numpy."""

    labels: tuple[str, ...] = TOXICITY_LABELS

    def __init__(self, weights: BiLSTMWeights, tokenizer: KerasTokenizer) -> None:
        vocab = weights.embedding.shape[0]
        if tokenizer.num_words is None or tokenizer.num_words > vocab:
            # Otherwise ids past the embedding table would raise at scoring time.
            raise ValueError(
                f"tokenizer num_words={tokenizer.num_words} does not fit the embedding "
                f"table of {vocab} rows; the weights and tokenizer do not belong together"
            )
        self._weights = weights
        self._tokenizer = tokenizer

    @classmethod
    def from_package(cls, package: str = "toxic_classifier") -> BiLSTMToxicityClassifier:
        """Load the data files of the installed ``toxic-comment-classifier`` package.

        Only the package's directory is looked up: its __init__ imports TensorFlow,
        so it is never executed.
        """
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec else []
        for location in locations:
            root = Path(location)
            weights, tokenizer = root.joinpath(*_WEIGHTS_FILE), root.joinpath(*_TOKENIZER_FILE)
            if weights.is_file() and tokenizer.is_file():
                return cls.from_files(weights, tokenizer)
        where = f" (looked in {', '.join(locations)})" if locations else ""
        raise FileNotFoundError(
            f"toxicity model data of package {package!r} not found{where}; install it "
            f"into this environment with `{_PIP_HINT}` (--no-deps avoids pulling TensorFlow)"
        )

    @classmethod
    def from_folder(cls, root: Path) -> BiLSTMToxicityClassifier:
        """Load the data files from the folder of a ``toxic_classifier`` package (installed or
        fetched as a bare wheel; demo/wheel_fetch.py)."""
        return cls.from_files(Path(root).joinpath(*_WEIGHTS_FILE), Path(root).joinpath(*_TOKENIZER_FILE))

    @classmethod
    def from_files(cls, weights_path: Path, tokenizer_path: Path) -> BiLSTMToxicityClassifier:
        for path in (weights_path, tokenizer_path):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path} does not exist; reinstall with `{_PIP_HINT}`")
        return cls(BiLSTMWeights.from_h5(Path(weights_path)), KerasTokenizer.load(Path(tokenizer_path)))

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), len(labels)) array of probabilities."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single string")
        ids = pad_sequences(self._tokenizer.texts_to_sequences(texts))
        chunks = [forward_pass(self._weights, ids[s : s + _CHUNK]) for s in range(0, len(ids), _CHUNK)]
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.labels)))

    def label_scores(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """label -> probability, one dict per text, in input order."""
        return [dict(zip(self.labels, map(float, row))) for row in self.probabilities(texts)]
