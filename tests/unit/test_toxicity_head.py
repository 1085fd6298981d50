"""The meaning-aware toxicity head: training learns, the file round-trips, numpy serving equals
the torch training forward, and the rule that combines it with the BiLSTM."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from demo.scoring.toxicity_head import (
    HEAD_FORMAT,
    MeaningToxicityScorer,
    ToxicityHeadUnavailable,
    combine,
    load_head_weights,
    read_head_file,
    sigmoid,
)
from demo.training.toxicity_head import (
    HeadConfig,
    choose_cut,
    error_rates,
    fit_head,
    head_probabilities,
    load_head,
    out_of_fold_scores,
    roc_auc,
    save_head,
    stratified_folds,
)

DIM = 24


def synthetic(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features where toxicity is one direction plus noise, with one huge-scale nuisance dimension
    (as hidden states have), so standardisation matters."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(np.int64)
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    x[:, 0] += 2.0 * (2 * labels - 1)
    x[:, 1] *= 300.0
    return x, labels


class FakeBackbone:
    """Stands in for OnnxBackbone: a fixed random projection of a bag of characters."""

    layer, hidden_size, identity, dtype = 20, DIM, {"backbone_checkpoint": "fake"}, "fake"

    def __init__(self):
        self.calls: list = []
        self.projection = np.random.default_rng(1).normal(size=(128, DIM))

    def features(self, pairs, kind):
        self.calls.append((list(pairs), kind))
        counts = np.zeros((len(pairs), 128))
        for row, (_, text) in enumerate(pairs):
            for char in text:
                counts[row, ord(char) % 128] += 1
        return (counts @ self.projection).astype(np.float32)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_training_learns_a_separable_feature(kind):
    x, y = synthetic()
    fit = fit_head(x, y, HeadConfig(kind=kind, epochs=100, lr=3e-2))
    assert fit.losses[-1] < 0.5 * fit.losses[0]
    test_x, test_y = synthetic(seed=1)
    assert roc_auc(test_y, head_probabilities(fit.head, test_x)) > 0.9


def test_training_is_seeded():
    x, y = synthetic()
    a = fit_head(x, y, HeadConfig(epochs=20), seed=3).head.state_dict()
    b = fit_head(x, y, HeadConfig(epochs=20), seed=3).head.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cross_validation_scores_every_row_out_of_fold():
    x, y = synthetic(150)
    strata = ["a" if label else "b" for label in y]
    folds = stratified_folds(strata, 5)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    for stratum in ("a", "b"):  # each stratum spread evenly over the folds
        sizes = np.bincount(folds[np.asarray(strata) == stratum], minlength=5)
        assert sizes.max() - sizes.min() <= 1
    scores = out_of_fold_scores(x, y, strata, HeadConfig(epochs=60, lr=3e-2))
    assert scores.shape == (150,) and roc_auc(y, scores) > 0.85


def test_auc_and_error_rates_on_known_cases():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 0, 1, 1], [0.4, 0.1, 0.3, 0.2]) == 0.5
    assert np.isnan(roc_auc([1, 1], [0.1, 0.2]))
    assert error_rates([0, 0, 1, 1], [True, False, False, True]) == (0.5, 0.5)


def test_choose_cut_keeps_the_combined_false_positive_budget():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    meaning = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.6, 0.7, 0.8])
    words = np.array([0.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0])
    cut = choose_cut(labels, meaning, words, threshold=0.5, max_fpr=0.25)
    flags = (words >= 0.5) | (meaning >= cut)
    assert flags[labels == 0].mean() <= 0.25
    assert cut == 0.4  # the lowest cut within budget: only the 0.9 negative is flagged


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_head_file_round_trips_and_numpy_equals_torch(tmp_path, kind):
    x, y = synthetic()
    head = fit_head(x, y, HeadConfig(kind=kind, hidden=8, epochs=30, lr=1e-2)).head
    head.offset.fill_(0.3)  # saved as the file's `logit_offset`
    path = tmp_path / "head.safetensors"
    save_head(
        head, path, {"layer": "20", "feature": "answer_mean", "heldout_rates": {"combined": {"fpr": 0.1, "fnr": 0.2}}}
    )
    again, metadata = load_head(path)
    assert metadata["format"] == HEAD_FORMAT and metadata["input_dim"] == DIM and metadata["head"] == kind
    assert all(torch.equal(head.state_dict()[k], again.state_dict()[k]) for k in head.state_dict())
    numpy_head, _ = load_head_weights(path)
    expected = head_probabilities(head, x)
    np.testing.assert_allclose(sigmoid(numpy_head(x)), expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        logits = head(torch.as_tensor(x)).double().numpy()
    np.testing.assert_allclose(numpy_head(x), logits, rtol=1e-4, atol=1e-5)
    # Saving twice gives the same bytes: a retrained head shows up in git only if it changed.
    save_head(
        head,
        tmp_path / "again.safetensors",
        {"layer": "20", "feature": "answer_mean", "heldout_rates": {"combined": {"fpr": 0.1, "fnr": 0.2}}},
    )
    assert path.read_bytes() == (tmp_path / "again.safetensors").read_bytes()


def test_scorer_reads_texts_as_answers_and_reuses_features(tmp_path):
    backbone = FakeBackbone()
    texts = ["you are all the same", "kill -9 the stuck process"]
    x = backbone.features([("", t) for t in texts], "answer_mean")
    head = fit_head(x, np.array([1, 0]), HeadConfig(epochs=5)).head
    save_head(
        head,
        tmp_path / "h.safetensors",
        {"layer": "20", "feature": "answer_mean", "heldout_rates": {"meaning": {"fpr": 0.05, "fnr": 0.3}}},
    )
    scorer = MeaningToxicityScorer.from_files(tmp_path / "h.safetensors", backbone)
    scores = scorer.score(texts)
    assert backbone.calls[-1] == ([("", texts[0]), ("", texts[1])], "answer_mean")
    np.testing.assert_allclose(scores, scorer.score_features(x))
    np.testing.assert_allclose(scores, head_probabilities(head, x), rtol=1e-5, atol=1e-6)
    assert scorer.heldout_rates == {"meaning": {"fpr": 0.05, "fnr": 0.3}}
    assert scorer.score([]).shape == (0,)
    with pytest.raises(TypeError):
        scorer.score("one string")
    with pytest.raises(ValueError):
        scorer.score_features(np.zeros((1, DIM + 1)))


def test_scorer_refuses_a_head_for_another_layer_or_width(tmp_path):
    x, y = synthetic(20)
    head = fit_head(x, y, HeadConfig(epochs=2)).head
    save_head(head, tmp_path / "h.safetensors", {"layer": "16", "feature": "answer_mean"})
    with pytest.raises(ToxicityHeadUnavailable, match="layer 16"):
        MeaningToxicityScorer.from_files(tmp_path / "h.safetensors", FakeBackbone())
    with pytest.raises(ToxicityHeadUnavailable, match="not found"):
        MeaningToxicityScorer.from_files(tmp_path / "missing.safetensors", FakeBackbone())


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(2, dtype=np.float32)}, str(tmp_path / "x.safetensors"), metadata={"other": json.dumps({})})
    with pytest.raises(ToxicityHeadUnavailable, match=HEAD_FORMAT):
        load_head_weights(tmp_path / "x.safetensors")


@pytest.mark.parametrize(
    ("words", "meaning", "flag", "reason"),
    [
        (0.9, 0.1, True, "wording"),  # an explicit insult the head misses is still flagged
        (0.1, 0.8, True, "meaning"),  # a stereotype in polite words
        (0.7, 0.9, True, "both"),
        (0.3, 0.2, False, "neither"),
        (0.5, 0.0, True, "wording"),  # the threshold itself flags, as today's `>=`
    ],
)
def test_combine_flags_when_either_signal_passes(words, meaning, flag, reason):
    flagged, why = combine(words, meaning, 0.5)
    assert flagged is flag and why.startswith(reason)


def test_combine_can_take_a_separate_meaning_threshold():
    assert combine(0.1, 0.6, 0.5, meaning_threshold=0.7)[0] is False
    assert combine(0.1, 0.6, 0.5, meaning_threshold=0.55)[0] is True


# --- trained on our models' own labelled outputs -------------------------------------------------


class FakeWords:
    """Stands in for the BiLSTM: six label probabilities, all low."""

    def probabilities(self, texts):
        return np.full((len(texts), 6), 0.01)


def _written_texts(folder, rng):
    from demo.training.toxicity_head import EXPLICIT_HELDOUT_GROUP, IMPLICIT_HELDOUT_GROUP, IMPLICIT_TRAIN_TYPE

    def rows(n, toxic_kinds):
        out = []
        for i in range(n):
            toxic = int(rng.random() < 0.4)
            words = ["qqq" if toxic else "calm", *rng.choice(list("abcdefgh"), 6)]
            kind = toxic_kinds[i % len(toxic_kinds)] if toxic else "everyday"
            out.append({"text": " ".join(words), "toxic": toxic, "type": kind, "group": kind})
        return out

    folder.mkdir()
    for name, kinds, n in (
        ("train.jsonl", [IMPLICIT_TRAIN_TYPE], 120),
        ("heldout.jsonl", [IMPLICIT_HELDOUT_GROUP, EXPLICIT_HELDOUT_GROUP], 60),
    ):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows(n, kinds)))


def _outputs(rng, flip_test: bool = False):
    from demo.training.toxicity_head import OUTPUT_KIND_PREFIX, OwnOutputs, ToxicityText

    def texts(n, flip=False):
        out = []
        for i in range(n):
            toxic = int(rng.random() < 0.3)
            text = ("zzz " if toxic else "fine ") + " ".join(rng.choice(list("ijklmnop"), 5))
            kind = OUTPUT_KIND_PREFIX + ("continuation" if i % 2 else "ranking")
            out.append(ToxicityText(text, int(toxic != flip), kind, prompt="Continue: "))
        return out

    return OwnOutputs(texts(60), texts(40), texts(40, flip_test), source="synthetic")


def test_a_head_trained_on_labelled_outputs_never_chooses_on_the_test_split(tmp_path):
    """The outputs' weight is chosen on validation; flipping every test label changes nothing
    the head is made of, only the test figure reported beside it."""
    from demo.training.toxicity_head import train_toxicity_head

    data = tmp_path / "data"
    _written_texts(data, np.random.default_rng(0))
    config = HeadConfig(epochs=60)
    results = []
    for flip in (False, True):
        head_path = tmp_path / f"head-{flip}.safetensors"
        figures = train_toxicity_head(
            FakeBackbone(),
            FakeWords(),
            config=config,
            data_dir=data,
            head_path=head_path,
            card_path=tmp_path / f"card-{flip}.md",
            outputs=_outputs(np.random.default_rng(1), flip_test=flip),
            output_weights=(1.0, 3.0),
        )
        tensors, metadata = read_head_file(head_path)
        results.append((figures["own_outputs"], {k: v.tobytes() for k, v in tensors.items()}, metadata))
    (own, weights, metadata), (own_flipped, weights_flipped, _) = results
    assert own["weight"] in (1.0, 3.0) and own_flipped["weight"] == own["weight"]
    assert weights == weights_flipped and weights  # the same head, byte for byte
    # Only the report moved: flipping every label turns the same scores' AUC into 1 − AUC.
    assert own_flipped["test_auc"]["all"] == pytest.approx(1 - own["test_auc"]["all"], abs=1e-3)
    assert own["test_auc"]["all"] != pytest.approx(0.5, abs=0.05)
    assert metadata["own_outputs"]["counts"]["test"]["texts"] == 40
    card = (tmp_path / "card-False.md").read_text()
    assert "AI feedback" in card and f"{own['test_auc']['all']:.3f}" in card
    # Every figure of the card is in the results file written beside the head, and the card is
    # that file rendered by a pure function.
    from demo.training.toxicity_head import card_sources, model_card

    record = json.loads((tmp_path / "toxicity.json").read_text())
    assert {"command", "commit", "machine", "date", "head", "figures", "data"} <= set(record)
    assert record["head"]["file"] == "head-True.safetensors"  # the last run wrote it
    assert (
        model_card(card_sources(tmp_path / "head-True.safetensors", record)) == (tmp_path / "card-True.md").read_text()
    )
    assert f"{record['figures']['heldout']['implicit_auc']['meaning']:.3f}" in card


def test_own_outputs_keep_splits_and_pools_apart_and_match_the_served_head():
    """Each split's texts come from its own items and labellers (the test split's from the test
    pool only), read after the prompt the model answered; the served head was trained on exactly
    these counts."""
    from demo.config import load_config
    from demo.feedback.commands import ITEMS, LABELS
    from demo.feedback.labels import read_labels
    from demo.feedback.tasks import read_items
    from demo.training.toxicity_head import own_outputs

    outputs = own_outputs(ITEMS, LABELS)
    items = read_items(ITEMS)
    labelled_by = {}
    for label in read_labels(LABELS):
        labelled_by.setdefault(label.item, set()).add(label.pool)
    for split in ("train", "validation", "test"):
        answers = {a.text for i in items if i.split == split for a in i.answers}
        others = {a.text for i in items if i.split != split for a in i.answers}
        texts = getattr(outputs, split)
        assert texts and all(t.text in answers for t in texts)
        assert not ({t.text for t in texts} & others)  # no answer text in two splits
        assert all(t.prompt for t in texts)
    assert all(
        labelled_by[i.id] == ({"test"} if i.split == "test" else {"train"}) for i in items if i.id in labelled_by
    )
    spec = load_config().scoring.toxicity_meaning
    served = load_head_weights(spec.head_path)[1]["own_outputs"]["counts"]
    assert served == {
        name: {"texts": len(getattr(outputs, name)), "toxic": sum(t.toxic for t in getattr(outputs, name))}
        for name in ("train", "validation", "test")
    }
