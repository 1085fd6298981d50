"""Battle and vote limits a script cannot sidestep, and the reading-time check (real code, fake
clock): demo/arena/limits.py, the registry and the Arena that use it."""

from __future__ import annotations

import random

import pytest
from arena_fakes import fake_comparator

from demo.arena.battles import BattleRegistry, VoteRefused
from demo.arena.limits import RateLimited, SlidingWindow, client_address, reading_seconds
from demo.arena.ratings import leaderboard
from demo.arena.service import Arena
from demo.arena.store import VoteStore
from demo.arena.systems import systems_from_config

PROXY = ["10.0.0.0/8"]


def test_the_peer_is_the_client_unless_it_is_a_trusted_proxy():
    forged = {"X-Forwarded-For": "198.51.100.9"}
    assert client_address("203.0.113.5", forged, PROXY) == "203.0.113.5"  # an untrusted header is ignored
    assert client_address("203.0.113.5", forged, []) == "203.0.113.5"
    assert client_address("10.1.2.3", {"x-forwarded-for": "198.51.100.9"}, PROXY) == "198.51.100.9"
    # A client may prepend anything; the proxy appends what it saw: the rightmost untrusted hop counts.
    chain = {"X-Forwarded-For": "1.2.3.4, 198.51.100.9, 10.0.0.7"}
    assert client_address("10.1.2.3", chain, PROXY) == "198.51.100.9"
    assert client_address("10.1.2.3", {}, PROXY) == "10.1.2.3"  # the proxy itself, no header
    assert client_address(None, forged, PROXY) == "unknown"


def test_many_sessions_from_one_address_are_limited_and_told_when_to_retry(tiny_config):
    now = [0.0]
    registry = BattleRegistry(max_votes_per_minute=10, max_votes_per_minute_per_address=3, clock=lambda: now[0])
    systems = tuple(systems_from_config(tiny_config)[:2])

    def vote(session, address):
        battle = registry.issue(session, "p", "typed", systems, ("base", "aligned"), address)
        registry.finish(battle.id, object())
        registry.claim(session, battle.id, address)
        registry.confirm(battle.id)

    for number in range(3):
        vote(f"fresh-session-{number}", "198.51.100.9")  # a script: a new session per vote
    now[0] = 20.0
    with pytest.raises(VoteRefused, match=r"at most 3 a minute from one address\. Try again in 40 s"):
        vote("fresh-session-3", "198.51.100.9")
    vote("fresh-session-4", "198.51.100.10")  # another address (e.g. behind the trusted proxy) counts apart
    now[0] = 61.0
    vote("fresh-session-5", "198.51.100.9")


def test_battles_are_limited_per_session_and_per_address(tiny_config):
    now = [0.0]
    registry = BattleRegistry(max_battles_per_minute=2, max_battles_per_minute_per_address=3, clock=lambda: now[0])
    systems = tuple(systems_from_config(tiny_config)[:2])
    issue = lambda session, address: registry.issue(session, "p", "typed", systems, ("base", "aligned"), address)  # noqa: E731
    issue("s1", "a1"), issue("s1", "a1")
    with pytest.raises(RateLimited, match="from this browser session"):
        issue("s1", "a1")
    issue("s2", "a1")
    with pytest.raises(RateLimited, match="from one address") as limited:
        issue("s3", "a1")
    assert limited.value.retry_after == 60


def test_the_limiter_forgets_the_least_recent_keys_beyond_its_bound():
    window = SlidingWindow(limit=1, max_keys=100)
    for number in range(10_000):
        window.record(f"198.51.{number // 256}.{number % 256}")
    assert len(window) == 100
    assert window.wait_seconds("198.51.39.15") > 0  # the most recent are kept


def test_reading_time_grows_with_the_answers():
    assert reading_seconds(["", ""], 12, 2) == 2
    assert reading_seconds(["word " * 120, "word " * 120], 12, 2) == 20


@pytest.fixture
def arena(tiny_config, tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite")
    now = [0.0]
    arena = Arena(tiny_config, fake_comparator(tiny_config), store, rng=random.Random(0))
    arena.registry.clock = lambda: now[0]
    arena.now = now
    yield arena
    store.close()


def _finished(arena, session):
    battle = arena.new_battle(session, "Name three colours.")
    for _ in arena.stream(battle):
        pass
    return battle


def test_a_vote_faster_than_reading_is_stored_marked_and_left_out_of_the_ratings(arena):
    quick = _finished(arena, "s1")
    arena.now[0] += 0.5  # half a second after both answers finished
    assert arena.vote("s1", quick.id, "A").too_fast
    read = _finished(arena, "s2")
    arena.now[0] += 60.0
    assert not arena.vote("s2", read.id, "B").too_fast
    rows = {row.battle_id: row for row in arena.store.votes()}
    assert rows[quick.id].too_fast and rows[quick.id].seconds_to_vote == 0.5
    assert not rows[read.id].too_fast and rows[read.id].seconds_to_vote == 60.0
    board = leaderboard(arena.store.votes(), arena.is_aligned, rounds=10)
    assert (board.votes, board.rated_votes, board.too_fast) == (2, 1, 1)


def test_a_vote_wakes_the_leaderboard_which_says_updating_until_it_counts_it(tmp_path):
    import time

    from arena_fakes import vote_record

    from demo.arena.service import LeaderboardCache

    store = VoteStore(tmp_path / "votes.sqlite")
    cache = LeaderboardCache(store, lambda system: system.endswith(":chat"), interval=3600, rounds=10).start()
    try:
        deadline = time.monotonic() + 10
        while cache.computed_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cache.snapshot.votes == 0 and not cache.updating
        store.record(vote_record("b1"))
        cache.poke()
        assert cache.updating  # the page says so at once, not after the hour-long interval
        while cache.updating and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cache.snapshot.votes == 1 and not cache.updating
    finally:
        cache.stop()
        store.close()


def test_a_rating_shows_an_interval_only_with_enough_battles():
    from demo.arena.ratings import MIN_BATTLES_FOR_INTERVAL, Rating

    assert Rating("s", 1185, 1185, 1185, 1).interval_text() == f"too few battles (< {MIN_BATTLES_FOR_INTERVAL})"
    assert Rating("s", 1000, 940, 1061, 40).interval_text() == "940 – 1061"


def test_the_ratings_chart_draws_an_interval_only_where_the_table_gives_one():
    """The table said "too few battles" while the chart drew a bar from one battle's bootstrap."""
    from demo.arena.ratings import Leaderboard, Rating
    from demo.ui.tabs.leaderboard import ratings_chart

    board = Leaderboard(ratings=[Rating("a", 1230, 1200, 1284, 1), Rating("b", 1000, 940, 1061, 40)])
    rows = {row["system"]: row for row in ratings_chart(board, {}).to_dict()["datasets"].popitem()[1]}
    assert rows["a"]["lower"] is None and rows["a"]["upper"] is None and rows["a"]["rating"] == 1230
    assert (rows["b"]["lower"], rows["b"]["upper"]) == (940, 1061)
