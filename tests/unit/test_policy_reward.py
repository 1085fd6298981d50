"""The reward model on our policy's rankings: pairs from rankings, the paper's weighting, and
agreement with labellers (pure functions; the fit runs in the align pipeline)."""

from __future__ import annotations

import pytest

from demo.feedback.labels import Label
from demo.feedback.policy_report import decisive_pairs, labeller_agreement, policy_report
from demo.feedback.tasks import Answer, Item
from demo.training.align.policy_reward import agreement, weighted_pairs


def _item(item_id: str, texts: list[str], split: str = "train") -> Item:
    answers = tuple(Answer(str(n), f"sft:chat:sample{n}", t, ()) for n, t in enumerate(texts, 1))
    return Item(item_id, "ranking", split, f"prompt {item_id}", "chat", None, answers)  # type: ignore[arg-type]


def _label(item: str, ranking, labeller: str = "P1") -> Label:
    return Label(item, labeller, "ai", "v1", "train", ranking=tuple(tuple(g) for g in ranking), answers={})


def test_a_ranking_gives_every_pair_across_its_groups_and_none_within_a_tie():
    assert decisive_pairs(_label("a", [["2"], ["1", "3"]])) == [("2", "1"), ("2", "3")]
    assert len(decisive_pairs(_label("a", [["1"], ["2"], ["3"], ["4"]]))) == 6
    assert decisive_pairs(_label("a", [["1", "2"]])) == []


def test_each_ranking_weighs_one_shared_by_its_pairs_and_by_the_prompts_labellers():
    items = {"a": _item("a", ["x", "y", "z"]), "b": _item("b", ["u", "v"])}
    labels = [
        _label("a", [["1"], ["2"], ["3"]], "P1"),
        _label("a", [["2"], ["1", "3"]], "P2"),
        _label("b", [["2"], ["1"]], "P1"),
    ]
    pairs = weighted_pairs(items, labels)
    by_item = {}
    for (prompt, _, _), weight in pairs:
        by_item[prompt] = by_item.get(prompt, 0.0) + weight
    assert by_item == pytest.approx({"prompt a": 1.0, "prompt b": 1.0})
    assert (("prompt b", "v", "u"), 1.0) in pairs


def test_agreement_counts_each_labellers_pairs_and_a_score_tie_as_half():
    items = {"a": _item("a", ["good", "bad", "worse"])}
    labels = [_label("a", [["1"], ["2"], ["3"]])]
    scores = {"good": 3.0, "bad": 1.0, "worse": 2.0}
    result = agreement(lambda prompt, answer: scores[answer], items, labels)
    assert result == {"pairs": 3, "agreement": round(2 / 3, 4)}
    tied = agreement(lambda prompt, answer: 0.0, items, labels)
    assert tied["agreement"] == 0.5


def test_labellers_agree_only_where_both_are_decisive():
    labels = [_label("a", [["1"], ["2"], ["3"]], "Q1"), _label("a", [["1", "2"], ["3"]], "Q2")]
    assert labeller_agreement(labels) == {"items_with_two_labellers": 1, "pairs_decisive_for_both": 2, "agreement": 1.0}
    opposite = [_label("a", [["1"], ["2"]], "Q1"), _label("a", [["2"], ["1"]], "Q2")]
    assert labeller_agreement(opposite)["agreement"] == 0.0


def test_the_policy_report_counts_items_labellers_ties_and_agreement_per_pool():
    items = [_item("a", ["x", "y", "z"]), _item("b", ["u", "v"], split="test")]
    labels = [
        _label("a", [["1"], ["2", "3"]], "P1"),
        _label("a", [["1"], ["3"], ["2"]], "P2"),
        Label("b", "Q1", "ai", "v1", "test", ranking=(("2",), ("1",)), answers={}),
    ]
    report = policy_report(items, labels)
    assert report["items"] == {"train": 1, "validation": 0, "test": 1}
    assert report["labels"] == 3 and report["rankings_with_a_tie"] == round(1 / 3, 4)
    assert [(r["labeller"], r["pool"], r["labels"]) for r in report["labellers"]] == [
        ("P1", "train", 1),
        ("P2", "train", 1),
        ("Q1", "test", 1),
    ]
    assert report["agreement"]["train"] == {
        "items_with_two_labellers": 1,
        "pairs_decisive_for_both": 2,
        "agreement": 1.0,
    }
    assert report["agreement"]["test"]["agreement"] is None


def test_pair_weights_decide_which_of_two_contradicting_preferences_the_head_learns():
    import torch

    from demo.training.reward import HeadConfig, fit_head

    generator = torch.Generator().manual_seed(0)
    up = torch.randn(40, 8, generator=generator)
    down = up.clone()
    down[:, 0] -= 2.0  # the first feature, lowered: "up" is better in the first 20 pairs, worse in the rest
    chosen = torch.cat([up[:20], down[20:]])
    rejected = torch.cat([down[:20], up[20:]])
    config = HeadConfig(layer=None, kind="linear", epochs=150)
    for favoured in (slice(0, 20), slice(20, 40)):
        weights = torch.full((40,), 0.01)
        weights[favoured] = 1.0
        head = fit_head(chosen, rejected, config, weights=weights).head
        with torch.no_grad():
            agrees = head(chosen) > head(rejected)
        assert bool(agrees[favoured].all()) and not bool(
            agrees[[i for i in range(40) if i not in range(40)[favoured]]].any()
        )
    uniform = fit_head(chosen, rejected, config, weights=torch.full((40,), 3.0)).head
    plain = fit_head(chosen, rejected, config).head
    with torch.no_grad():
        assert torch.allclose(uniform(chosen), plain(chosen), atol=1e-4)
    with pytest.raises(ValueError, match="one number per pair"):
        fit_head(chosen, rejected, config, weights=torch.ones(3))


def test_a_bootstrap_over_prompts_brackets_the_agreement():
    items = {f"i{n}": _item(f"i{n}", ["good", "bad"]) for n in range(20)}
    labels = [_label(f"i{n}", [["1"], ["2"]] if n % 4 else [["2"], ["1"]]) for n in range(20)]
    result = agreement(lambda prompt, answer: 1.0 if answer == "good" else 0.0, items, labels, bootstrap=500)
    low, high = result["ci95"]
    assert result["agreement"] == 0.75 and low < 0.75 < high and 0.4 < low and high <= 1.0
