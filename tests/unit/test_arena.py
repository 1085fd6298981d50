"""The blind vote without a browser: systems, battle integrity, the vote path and reveal,
ratings on battles with a known answer, the TRL export, and the view functions."""

from __future__ import annotations

import json
import math
import random

import pytest
from arena_fakes import fake_comparator, vote_record

from demo.arena import ratings
from demo.arena.battles import BattleRegistry, VoteRefused
from demo.arena.export import export_trl, load_vote_pairs, split_votes, unpaired_path_for
from demo.arena.service import Arena, judge_verdict, load_example_prompts
from demo.arena.store import VoteStore
from demo.arena.systems import draw_pair, identity_words, names_a_model, roles_for, systems_from_config

# --- systems -----------------------------------------------------------------------------------


def test_systems_are_each_base_model_raw_and_prompted_and_each_chat_model(tiny_config):
    systems = systems_from_config(tiny_config)
    by_format = {(s.model_id, s.format) for s in systems}
    for model_id in tiny_config.served_model_ids():
        spec = tiny_config.models[model_id]
        expected = {"raw", "prompted"} if spec.prompt_format == "base" else {"chat"}
        assert {f for m, f in by_format if m == model_id} == expected
    hashes = {s.id: s.config_hash for s in systems}
    assert len(set(hashes.values())) == len(systems)  # raw and prompted differ by the prefix
    assert systems_from_config(tiny_config) == systems  # stable


def test_draw_pair_is_two_different_systems_in_both_orders(tiny_config):
    systems = systems_from_config(tiny_config)
    rng = random.Random(1)
    seen = set()
    for _ in range(200):
        a, b = draw_pair(systems, rng)
        assert a != b
        seen.add((a.id, b.id))
    assert len(seen) == len(systems) * (len(systems) - 1)  # every ordered pair turns up


def test_the_less_aligned_system_runs_as_base(tiny_config):
    base, chat = [s for s in systems_from_config(tiny_config) if s.format in ("raw", "chat")]
    assert roles_for(base, chat) == ("base", "aligned")
    assert roles_for(chat, base) == ("aligned", "base")


def test_an_answer_that_names_a_model_is_detected():
    words = ("Gemma", "SmolLM", "SmolLM2")
    assert names_a_model("I am SmolLM2, made by Hugging Face.", words)
    assert names_a_model("as gemma I think", words)
    assert not names_a_model("The dilemma is gemmary.", words)


def test_identity_words_come_from_the_config(tiny_config):
    words = identity_words(tiny_config)
    assert words and all(len(w) >= 3 for w in words)


# --- battles: integrity ------------------------------------------------------------------------


@pytest.fixture
def arena(tiny_config, tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite")
    config = tiny_config.model_copy(
        update={
            "arena": tiny_config.arena.model_copy(update={"max_votes_per_minute": 100, "max_battles_per_minute": 100})
        }
    )
    yield Arena(config, fake_comparator(config), store, rng=random.Random(0))
    store.close()


def play(arena, session="s1", prompt="Name three colours."):
    battle = arena.new_battle(session, prompt)
    for _ in arena.stream(battle):
        pass
    return battle


def test_a_vote_is_stored_and_revealed(arena):
    battle = play(arena)
    reveal = arena.vote("s1", battle.id, "A", {"A": ["hallucination", "not-a-key"]}, ("6", None))
    assert reveal.stored and reveal.systems == battle.systems
    [row] = arena.store.votes()
    assert row.battle_id == battle.id and row.winner == "A"
    assert (row.model_a, row.format_a) == (battle.systems[0].model_id, battle.systems[0].format)
    assert row.answer_a == battle.answer(0).text and row.input_a == battle.answer(0).input_text
    assert row.reward_a == battle.answer(0).reward and row.reward_b == battle.answer(1).reward
    assert row.positions == {"A": battle.roles[0], "B": battle.roles[1]}
    assert row.attributes == {"A": ["hallucination"], "B": []} and row.rating_a == 6 and row.rating_b is None
    # Each side's own secret seed, stored so the battle can be reproduced for analysis.
    assert row.settings["seed"] == row.seed == battle.seeds[0] and row.seed_b == battle.seeds[1]
    assert row.voter and "s1" not in row.voter
    assert reveal.judge == judge_verdict(row.reward_a, row.reward_b, arena.config.scoring.tie_tolerance)
    assert reveal.agreed == (reveal.judge == "A") if reveal.judge in ("A", "B") else reveal.agreed is None


def test_the_answers_come_from_the_drawn_systems_in_their_formats(arena):
    battle = play(arena)
    for position, system in enumerate(battle.systems):
        side = battle.answer(position)
        assert side.model_id == system.model_id
        assert side.input_text.startswith(f"[{system.format}]")


def test_a_replayed_vote_is_refused(arena):
    battle = play(arena)
    arena.vote("s1", battle.id, "B")
    with pytest.raises(VoteRefused, match="already been voted"):
        arena.vote("s1", battle.id, "A")
    assert arena.store.count() == 1


def test_a_forged_battle_id_is_refused(arena):
    play(arena)
    for forged in ("", None, "not-a-battle", "x" * 24):
        with pytest.raises(VoteRefused, match="unknown"):
            arena.vote("s1", forged, "A")
    assert arena.store.count() == 0


def test_another_sessions_battle_is_refused(arena):
    battle = play(arena, session="alice")
    with pytest.raises(VoteRefused, match="another browser session"):
        arena.vote("mallory", battle.id, "A")
    arena.vote("alice", battle.id, "A")  # still open to its owner
    assert arena.store.count() == 1


def test_a_vote_before_both_answers_finished_is_refused(arena):
    battle = arena.new_battle("s1", "Name three colours.")
    with pytest.raises(VoteRefused, match="Wait until both answers"):
        arena.vote("s1", battle.id, "A")
    stream = arena.stream(battle)
    next(stream)  # one answer started, the other not yet
    with pytest.raises(VoteRefused, match="Wait until both answers"):
        arena.vote("s1", battle.id, "A")
    for _ in stream:
        pass
    arena.vote("s1", battle.id, "A")


def test_a_battle_whose_answer_failed_cannot_be_voted_on(arena):
    battle = arena.new_battle("s1", "Name three colours.")
    worker = arena.comparator.workers[battle.systems[0].model_id]
    original = worker.stream

    def broken(request, should_stop=lambda: False):
        raise RuntimeError("boom")
        yield  # pragma: no cover

    worker.stream = broken
    try:
        for _ in arena.stream(battle):
            pass
    finally:
        worker.stream = original
    with pytest.raises(VoteRefused, match="failed"):
        arena.vote("s1", battle.id, "A")


def test_an_unknown_outcome_and_a_bad_rating_are_refused(arena):
    battle = play(arena)
    with pytest.raises(VoteRefused):
        arena.vote("s1", battle.id, "C")
    with pytest.raises(VoteRefused, match="1 to 7"):
        arena.vote("s1", battle.id, "A", ratings=(9, None))
    arena.vote("s1", battle.id, "A")  # a refused vote leaves the battle open


def test_the_rate_limit_per_session(tiny_config):
    now = [0.0]
    registry = BattleRegistry(max_votes_per_minute=2, clock=lambda: now[0])
    systems = tuple(systems_from_config(tiny_config)[:2])

    def voted(session):
        battle = registry.issue(session, "p", "typed", systems, ("base", "aligned"))
        registry.finish(battle.id, object())
        registry.claim(session, battle.id)
        registry.confirm(battle.id)

    voted("s1")
    voted("s1")
    battle = registry.issue("s1", "p", "typed", systems, ("base", "aligned"))
    registry.finish(battle.id, object())
    with pytest.raises(VoteRefused, match="at most 2 a minute"):
        registry.claim("s1", battle.id)
    voted("s2")  # another session is not limited by s1
    now[0] = 61.0
    registry.claim("s1", battle.id)


def test_battle_ids_are_unguessable_and_old_battles_are_forgotten(tiny_config):
    registry = BattleRegistry(max_open_per_session=3)
    systems = tuple(systems_from_config(tiny_config)[:2])
    ids = [registry.issue("s", "p", "typed", systems, ("base", "aligned")).id for _ in range(10)]
    assert len(set(ids)) == 10 and all(len(i) >= 24 for i in ids)
    assert sum(registry.get("s", i) is not None for i in ids) == 3


def test_a_failed_store_leaves_the_battle_open(arena):
    from demo.arena.store import StoreUnavailable

    battle = play(arena)
    original = arena.store.record

    def broken(vote):
        raise StoreUnavailable("disk full")

    arena.store.record = broken
    with pytest.raises(VoteRefused, match="not recorded"):
        arena.vote("s1", battle.id, "A")
    arena.store.record = original
    assert arena.vote("s1", battle.id, "A").stored


def test_a_self_identifying_answer_is_kept_and_flagged(tiny_config, tmp_path):
    words = identity_words(tiny_config)
    answers = {
        m: {"raw": f"I am {words[0]}.", "prompted": f"I am {words[0]}.", "chat": f"I am {words[0]}."}
        for m in tiny_config.served_model_ids()
    }
    store = VoteStore(tmp_path / "v.sqlite")
    arena = Arena(tiny_config, fake_comparator(tiny_config, answers), store, rng=random.Random(0))
    battle = play(arena)
    assert arena.vote("s1", battle.id, "A").self_identified
    [row] = store.votes()
    assert row.self_identified
    board = ratings.leaderboard(store.votes(), arena.is_aligned, rounds=10)
    assert board.votes == 1 and board.rated_votes == 0 and board.self_identified == 1


def test_voting_unavailable_without_a_store(tiny_config):
    arena = Arena(tiny_config, fake_comparator(tiny_config), None, "disk is read-only")
    battle = play(arena)  # battles still run
    assert battle.state == "finished"
    with pytest.raises(VoteRefused, match="Voting is unavailable: disk is read-only"):
        arena.vote("s1", battle.id, "A")


def test_random_examples_come_from_the_shipped_suites():
    examples = load_example_prompts()
    categories = {e.category for e in examples}
    assert len(examples) > 100 and {"generation", "chat", "toxicity"} <= categories


# --- ratings -----------------------------------------------------------------------------------


def test_bradley_terry_three_wins_in_four_is_log10_3_apart():
    battles = [("a", "b", "A")] * 3 + [("a", "b", "B")]
    result = ratings.bradley_terry(battles, ["a", "b"], prior=0.0)  # the plain maximum likelihood
    assert result["a"] - result["b"] == pytest.approx(400 * math.log10(3), abs=0.1)
    assert (result["a"] + result["b"]) / 2 == pytest.approx(1000)
    shrunk = ratings.bradley_terry(battles, ["a", "b"])  # the weak prior pulls a little towards 1000
    assert 170 < shrunk["a"] - shrunk["b"] < 400 * math.log10(3)


def test_ties_and_both_bad_are_half_a_win():
    decisive = [("a", "b", "A")] * 3 + [("a", "b", "B")]
    with_ties = [("a", "b", "A")] * 2 + [("a", "b", "tie"), ("a", "b", "bad")]
    assert ratings.bradley_terry(with_ties, ["a", "b"]) == pytest.approx(
        ratings.bradley_terry(decisive, ["a", "b"]), abs=0.1
    )
    even = [("a", "b", "tie")] * 4
    assert ratings.bradley_terry(even, ["a", "b"]) == pytest.approx({"a": 1000, "b": 1000}, abs=0.1)


def test_few_votes_give_finite_ordered_ratings():
    # What the first three votes of a new deployment look like: a system with only a win.
    battles = [("p", "r", "bad"), ("r", "p", "bad"), ("c", "p", "A")]
    result = ratings.bradley_terry(battles, ["p", "r", "c"])
    assert all(math.isfinite(v) for v in result.values())
    assert result["c"] > result["r"] > result["p"] and result["c"] - result["p"] < 600


def test_the_fit_matches_evalica_on_well_connected_data():
    evalica = pytest.importorskip("evalica")
    rng = random.Random(3)
    battles = [(a, b, rng.choice(["A", "A", "B", "tie"])) for a, b in (rng.sample("xyz", 2) for _ in range(300))]
    ours = ratings.bradley_terry(battles, list("xyz"), prior=0.0)
    winners = {"A": evalica.Winner.X, "B": evalica.Winner.Y, "tie": evalica.Winner.Draw}
    result = evalica.bradley_terry(
        [a for a, _, _ in battles],
        [b for _, b, _ in battles],
        [winners[w] for _, _, w in battles],
        tie_weight=0.5,
        limit=1000,
        tolerance=1e-10,
    )
    logs = {k: math.log10(v) for k, v in result.scores.items()}
    centre = sum(logs.values()) / 3
    for name in "xyz":
        assert ours[name] == pytest.approx(1000 + 400 * (logs[name] - centre), abs=1.0)


def test_bradley_terry_recovers_known_strengths():
    rng = random.Random(0)
    truth = {"x": 900.0, "y": 1000.0, "z": 1100.0}
    battles = []
    for _ in range(4000):
        a, b = rng.sample(sorted(truth), 2)
        p_a = 1 / (1 + 10 ** ((truth[b] - truth[a]) / 400))
        battles.append((a, b, "A" if rng.random() < p_a else "B"))
    fitted = ratings.bradley_terry(battles, sorted(truth))
    for name, value in truth.items():
        assert fitted[name] == pytest.approx(value, abs=25)
    rows = ratings.ratings_with_intervals(battles, rounds=30)
    assert [r.system for r in rows] == ["z", "y", "x"]
    for row in rows:
        assert row.lower <= row.rating <= row.upper and row.upper - row.lower < 80
        assert row.lower - 25 <= truth[row.system] <= row.upper + 25


def test_win_rates_and_counts():
    rates, counts = ratings.win_rates([("a", "b", "A"), ("b", "a", "tie"), ("a", "c", "B")])
    assert rates["a", "b"] == 0.75 and rates["b", "a"] == 0.25
    assert rates["c", "a"] == 1.0 and counts["a", "b"] == counts["b", "a"] == 2 and counts["a", "c"] == 1


def test_paper_figures_from_hand_made_votes():
    def is_aligned(system):
        return system.endswith(":chat")

    votes = [
        vote_record("1", "B", ("g", "raw"), ("s", "chat"), judge="B"),  # aligned wins, judge agrees
        vote_record("2", "A", ("s", "chat"), ("g", "raw"), judge="B"),  # aligned wins, judge disagrees
        vote_record("3", "tie", ("g", "raw"), ("s", "chat"), judge="A"),  # half a win
        vote_record("4", "A", ("g", "prompted"), ("s", "chat"), judge="A", category="chat"),  # prompted base wins
        vote_record("5", "A", ("g", "raw"), ("g", "prompted"), judge="tie"),  # neither figure
    ]
    board = ratings.leaderboard(votes, is_aligned, rounds=20)
    assert board.aligned_vs_base.value == pytest.approx(2.5 / 3) and board.aligned_vs_base.n == 3
    assert board.aligned_vs_prompted.value == 0.0 and board.aligned_vs_prompted.n == 1
    assert board.judge_agreement.value == pytest.approx(2 / 3) and board.judge_agreement.n == 3
    assert board.by_category["chat"]["votes"] == 1
    assert board.by_category["typed"]["aligned_vs_base"].n == 3
    assert set(board.systems) == {"g:raw", "g:prompted", "s:chat"}
    text = ratings.leaderboard_text(board)
    assert "85 ± 3 %" in text and "5 votes" in text


def test_human_agreement_by_system_not_by_screen_position():
    # Three sessions voted on the same two answers, shown in both orders.
    same = dict(answer_a="red", answer_b="red, blue and yellow")
    swapped = dict(answer_a="red, blue and yellow", answer_b="red")
    votes = [
        vote_record("1", "B", ("g", "raw"), ("s", "chat"), voter="v1", **same),
        vote_record("2", "A", ("s", "chat"), ("g", "raw"), voter="v2", **swapped),  # same choice
        vote_record("3", "A", ("g", "raw"), ("s", "chat"), voter="v3", **same),  # the other choice
        vote_record("4", "B", ("g", "raw"), ("s", "chat"), voter="v1", **same),  # v1 again: not a pair with v1
    ]
    share = ratings.human_agreement(votes)
    # pairs across voters: (1,2) agree, (1,3) no, (2,3) no, (4,2) agree, (4,3) no
    assert share.n == 5 and share.value == pytest.approx(2 / 5)


def test_share_intervals_are_wilson():
    low, high = ratings.Share(1.0, 1).interval
    assert high == 1.0 and low == pytest.approx(0.2065, abs=1e-3)
    low, high = ratings.Share(0.85, 400).interval
    assert (high - low) / 2 == pytest.approx(0.035, abs=0.002)  # close to the paper's ± 3-4 points
    assert ratings.Share(None, 0).text() == "– (no votes yet)"


def test_an_empty_leaderboard():
    board = ratings.leaderboard([], lambda s: False)
    assert board.votes == 0 and board.ratings == [] and board.aligned_vs_base.value is None
    assert "0 votes" in ratings.leaderboard_text(board)


# --- export ------------------------------------------------------------------------------------


def test_export_writes_trl_preference_and_unpaired_files(tmp_path):
    votes = [
        vote_record("1", "A", answer_a="good", answer_b="bad"),
        vote_record("2", "B", answer_a="worse", answer_b="better", prompt="Another prompt"),
        vote_record("3", "tie", answer_a="fine", answer_b="also fine"),
        vote_record("4", "bad", answer_a="no", answer_b="nope"),
    ]
    done = export_trl(votes, tmp_path / "out.jsonl")
    pairs = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in pairs] == [
        ("Name three colours.", "good", "bad"),
        ("Another prompt", "better", "worse"),
    ]
    assert done.unpaired_path == unpaired_path_for(tmp_path / "out.jsonl") == tmp_path / "out.unpaired.jsonl"
    unpaired = [json.loads(line) for line in done.unpaired_path.read_text().splitlines()]
    assert [(u["completion"], u["label"]) for u in unpaired] == [
        ("fine", True),
        ("also fine", True),
        ("no", False),
        ("nope", False),
    ]
    assert all(set(u) >= {"prompt", "completion", "label"} for u in unpaired)
    loaded = load_vote_pairs(tmp_path / "out.jsonl")
    assert [p.chosen for p in loaded] == ["good", "better"] and loaded[0].aspect == "arena vote"


def test_exported_files_load_as_trl_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    trl_utils = pytest.importorskip("trl.data_utils")
    done = export_trl([vote_record("1", "A"), vote_record("2", "tie")], tmp_path / "v.jsonl")
    pairs = datasets.load_dataset("json", data_files=str(done.pairs_path), split="train")
    unpaired = datasets.load_dataset("json", data_files=str(done.unpaired_path), split="train")
    assert trl_utils.is_conversational(pairs[0]) is False
    assert {"prompt", "chosen", "rejected"} <= set(pairs.column_names)
    assert {"prompt", "completion", "label"} <= set(unpaired.column_names)


def test_split_votes_holds_out_by_prompt(tmp_path):
    from demo.preferences import PreferencePair

    pairs = [PreferencePair(f"prompt {i % 6}", f"c{i}", f"r{i}", "typed", "arena vote", "-") for i in range(12)]
    train, test = split_votes(pairs)
    assert test and train and len(train) + len(test) == 12
    assert not {p.prompt for p in train} & {p.prompt for p in test}
    assert split_votes(pairs) == (train, test)
    assert split_votes(pairs[:1]) == (pairs[:1], [])


# --- views -------------------------------------------------------------------------------------


def test_reveal_shows_both_identities_rewards_and_the_judge(tiny_config):
    from demo.arena.service import Reveal
    from demo.ui.tabs.arena import reveal_html

    a, b = systems_from_config(tiny_config)[:2]
    text = reveal_html(Reveal("id", (a, b), (0.5, -1.25), "A", "A", True, False, True))
    assert a.name in text and b.name in text and "+0.50" in text and "-1.25" in text
    assert "A is better" in text and "prefers A" in text and "agrees with you" in text
    text = reveal_html(Reveal("id", (a, b), (None, None), "tie", None, None, True, False))
    assert "no score" in text and "left out of the ratings" in text and "already been recorded" in text


def test_blind_answers_are_escaped_and_errors_do_not_name_the_model():
    from demo.session import SideState
    from demo.ui.tabs.arena import blind_answer_html

    html = blind_answer_html(SideState("Secret Model", text="<script>alert(1)</script>"), False)
    assert "<script>" not in html and "&lt;script&gt;" in html
    failed = blind_answer_html(SideState("Secret Model", error="Secret Model is unavailable"), False)
    assert "Secret" not in failed
    assert "empty answer" in blind_answer_html(SideState("m", text="  "), False)


def test_every_battle_draws_its_own_secret_seed_and_the_vote_keeps_it():
    from demo.arena.battles import Battle

    battles = [Battle("id", "s", "p", "typed", (None, None), ("base", "aligned"), 0.0) for _ in range(50)]  # type: ignore[arg-type]
    seeds = {seed for battle in battles for seed in battle.seeds}
    assert len(seeds) == 100  # not the configured seed, not shared between battles or sides
