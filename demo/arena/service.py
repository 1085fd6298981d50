"""The blind vote as the page uses it: draw a battle, stream it, take the vote, reveal.

`Arena` ties the battle registry, the vote store and the comparator together; the tab only lays
out and wires. `LeaderboardCache` recomputes the leaderboard on a background timer (only when
the database changed) and the Leaderboard tab shows its last snapshot: a page view never runs
a Bradley–Terry fit.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ..compare import Comparator, InvalidPrompt, validate_prompt
from ..config import AppConfig
from ..errors import public_message
from ..paths import REPO_ROOT
from ..scoring.scorer import preference
from ..session import Comparison
from ..settings import SamplingSettings, clamp_settings
from .battles import ATTRIBUTE_KEYS, OUTCOMES, Battle, BattleRegistry, VoteRefused
from .limits import RateLimited, reading_seconds
from .ratings import Leaderboard, leaderboard
from .store import StoreUnavailable, VoteRecord, VoteStore, open_store, voter_key
from .systems import System, draw_pair, identity_words, names_a_model, roles_for, systems_from_config

log = logging.getLogger(__name__)
TYPED = "typed"


@dataclass(frozen=True)
class Example:
    prompt: str
    category: str


def load_example_prompts(root: Path = REPO_ROOT) -> list[Example]:
    """The shipped prompts: examples/*.yaml (category = file name) and the instruction suite."""
    import yaml

    examples = []
    for path in sorted((root / "examples").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        examples += [Example(str(p), path.stem) for p in data.get("prompts", [])]
    suite = root / "evaluation" / "instructions.jsonl"
    if suite.is_file():
        for line in suite.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                examples.append(Example(str(row["prompt"]), str(row.get("category") or TYPED)))
    return examples


@dataclass(frozen=True)
class Reveal:
    """What the page shows after a vote."""

    battle_id: str
    systems: tuple[System, System]
    rewards: tuple[float | None, float | None]
    winner: str
    judge: str | None
    agreed: bool | None  # None: the voter or the judge called it a tie, or no rewards
    self_identified: bool
    stored: bool  # False: the same battle had been stored already (a retried request)
    too_fast: bool = False  # cast before the answers could be read: kept, left out of the ratings


def judge_verdict(reward_a: float | None, reward_b: float | None, tie_tolerance: float) -> str | None:
    """The reward model's pick by screen position, with the Compare tab's tie tolerance."""
    if reward_a is None or reward_b is None:
        return None
    preferred, _ = preference(reward_a, reward_b, tie_tolerance)
    return {"base": "A", "aligned": "B", "tie": "tie"}[preferred]


class Arena:
    def __init__(
        self,
        config: AppConfig,
        comparator: Comparator,
        store: VoteStore | None,
        store_error: str | None = None,
        rng: random.Random | None = None,
    ):
        self.config = config
        self.comparator = comparator
        self.store = store
        self.store_error = store_error
        self.systems = [s for s in systems_from_config(config) if s.model_id in comparator.workers]
        arena = config.arena
        self.registry = BattleRegistry(
            max_votes_per_minute=arena.max_votes_per_minute,
            max_votes_per_minute_per_address=arena.max_votes_per_minute_per_address,
            max_battles_per_minute=arena.max_battles_per_minute,
            max_battles_per_minute_per_address=arena.max_battles_per_minute_per_address,
        )
        self.examples = load_example_prompts()
        self._rng = rng or random.SystemRandom()
        self._words = identity_words(config)
        self._secret = secrets.token_bytes(32)  # voter keys cannot be linked across restarts
        self.sync = None  # the hub CommitScheduler, when models.yaml names arena.sync_repo

    @classmethod
    def start(cls, config: AppConfig, comparator: Comparator) -> Arena:
        store, error = open_store(config)
        if error:
            log.error("voting unavailable: %s", error)
        return cls(config, comparator, store, error)

    @property
    def voting_error(self) -> str | None:
        if self.store is None:
            return self.store_error or "no vote database"
        return None

    def random_example(self) -> Example:
        return self._rng.choice(self.examples)

    def settings(self, battle: Battle | None = None, position: int = 0) -> SamplingSettings:
        """The configured sampling, with the secret seed of the battle's side at `position`."""
        settings = clamp_settings(SamplingSettings(**dict(self.config.generation)), self.config.limits)
        return settings if battle is None else dataclasses.replace(settings, seed=battle.seeds[position])

    def new_battle(self, session: str, prompt: str, category: str = TYPED, address: str | None = None) -> Battle:
        """Check the prompt (characters, and tokens as every system would read it) and issue a
        battle of two random systems in random order; InvalidPrompt or RateLimited otherwise.
        `address` is the client's (None: counted as the session's own)."""
        validate_prompt(prompt, self.config.limits)
        limit = self.config.limits.max_prompt_tokens
        tokens = self.comparator.prompt_tokens(prompt, [(s.model_id, s.base_mode) for s in self.systems])
        if tokens > limit:
            # The longest reading over every system, so the message names no model (it would unblind).
            raise InvalidPrompt(f"The prompt is {tokens:,} tokens; the limit is {limit:,} tokens. Please shorten it.")
        a, b = draw_pair(self.systems, self._rng)
        return self.registry.issue(session, prompt, category, (a, b), roles_for(a, b), address)

    def stream(self, battle: Battle, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Comparison]:
        """Both answers as they stream; once both are finished and scored, the battle is open
        to a vote (not before, and never when an answer failed)."""
        sides = {role: (system.model_id, system.base_mode) for role, system in zip(battle.roles, battle.systems)}
        settings = {role: self.settings(battle, position) for position, role in enumerate(battle.roles)}
        last = None
        for last in self.comparator.stream_models(battle.prompt, settings, sides, should_stop):
            yield last
        if last is not None:
            ok = (
                last.done
                and last.error is None
                and all(last.side(r).error is None for r in battle.roles)
                and all(last.side(r).stop_reason != "cancelled" for r in battle.roles)
            )
            self.registry.finish(battle.id, last, ok=ok)

    def vote(
        self,
        session: str,
        battle_id: str | None,
        winner: str,
        attributes: dict | None = None,
        ratings: tuple[int | None, int | None] = (None, None),
        address: str | None = None,
    ) -> Reveal:
        """Store the vote (committed before this returns) and say who was who; VoteRefused with
        the reason otherwise (the battle stays open if only the store failed). `address`: the
        voter's client address (None: the address the battle was issued to)."""
        if winner not in OUTCOMES:
            raise VoteRefused(f"Unknown vote {winner!r}.")
        if self.store is None:
            raise VoteRefused(f"Voting is unavailable: {self.voting_error}")
        battle = self.registry.claim(session, battle_id, address)
        try:
            record = self.record_for(battle, session, winner, attributes or {}, ratings)
            stored = self.store.record(record)
        except StoreUnavailable as error:
            self.registry.release(battle.id)
            detail = public_message(error, "storing a vote")  # the path and SQL error: server log only
            raise VoteRefused(f"Voting is unavailable right now, your vote was not recorded. {detail}") from None
        except BaseException:
            self.registry.release(battle.id)
            raise
        self.registry.confirm(battle.id)
        agreed = None if winner not in ("A", "B") or record.judge not in ("A", "B") else winner == record.judge
        return Reveal(
            battle.id,
            battle.systems,
            (record.reward_a, record.reward_b),
            winner,
            record.judge,
            agreed,
            record.self_identified,
            stored,
            record.too_fast,
        )

    def record_for(self, battle: Battle, session: str, winner: str, attributes: dict, ratings) -> VoteRecord:
        a, b = battle.answer(0), battle.answer(1)
        settings = self.settings(battle)
        waited = None if battle.finished_at is None else max(0.0, self.registry.clock() - battle.finished_at)
        arena = self.config.arena
        needed = reading_seconds((a.text, b.text), arena.reading_words_per_second, arena.min_reading_seconds)
        clean = {pos: sorted(k for k in attributes.get(pos, ()) if k in ATTRIBUTE_KEYS) for pos in ("A", "B")}
        rating_a, rating_b = (_rating(r) for r in ratings)
        return VoteRecord(
            battle_id=battle.id,
            prompt=battle.prompt,
            category=battle.category,
            model_a=battle.systems[0].model_id,
            format_a=battle.systems[0].format,
            config_hash_a=battle.systems[0].config_hash,
            model_b=battle.systems[1].model_id,
            format_b=battle.systems[1].format,
            config_hash_b=battle.systems[1].config_hash,
            settings=asdict(settings),
            seed=battle.seeds[0],
            seed_b=battle.seeds[1],
            seconds_to_vote=None if waited is None else round(waited, 2),
            too_fast=waited is not None and waited < needed,
            input_a=a.input_text,
            input_b=b.input_text,
            answer_a=a.text,
            answer_b=b.text,
            reward_a=a.reward,
            reward_b=b.reward,
            positions={"A": battle.roles[0], "B": battle.roles[1]},
            winner=winner,
            judge=judge_verdict(a.reward, b.reward, self.config.scoring.tie_tolerance),
            attributes=clean,
            self_identified=names_a_model(a.text, self._words) or names_a_model(b.text, self._words),
            rating_a=rating_a,
            rating_b=rating_b,
            voter=voter_key(session, self._secret),
        )

    def is_aligned(self, system_id: str) -> bool:
        for system in self.systems:
            if system.id == system_id:
                return system.is_aligned
        return system_id.endswith(":chat")  # a system no longer configured


def _rating(value) -> int | None:
    if value in (None, ""):
        return None
    number = int(value)
    if not 1 <= number <= 7:
        raise VoteRefused(f"A rating is 1 to 7; got {value!r}.")
    return number


class LeaderboardCache:
    """The last computed leaderboard; a daemon thread recomputes it every `interval` seconds
    when the vote count changed (votes from any process count)."""

    def __init__(self, store: VoteStore | None, is_aligned, interval: float, rounds: int = 200):
        self.store, self.is_aligned, self.interval, self.rounds = store, is_aligned, interval, rounds
        self.snapshot: Leaderboard = Leaderboard()
        self.version = 0  # bumps when the snapshot changes
        self.error: str | None = None
        self.computed_at: float | None = None
        self._seen: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.updating = False  # a vote was cast and is not yet in the snapshot
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Recompute if the database changed; True when the snapshot is new."""
        if self.store is None:
            return False
        try:
            state = self.store.state()
            if state == self._seen:
                return False
            board = leaderboard(self.store.votes(), self.is_aligned, rounds=self.rounds)
        except Exception as error:  # the page keeps the last snapshot and says why (no detail)
            self.error = public_message(error, "recomputing the leaderboard")
            return False
        self.snapshot, self._seen, self.error = board, state, None
        self.computed_at = time.time()
        self.version += 1
        return True

    def poke(self) -> None:
        """A vote was just stored: recompute now rather than at the next interval."""
        self.updating = True
        self._wake.set()

    def start(self) -> LeaderboardCache:
        def loop():
            while not self._stop.is_set():
                self._wake.clear()
                self.refresh()
                self.updating = self._wake.is_set()  # a vote that came during the fit waits for the next
                self._wake.wait(self.interval)

        self._thread = threading.Thread(target=loop, name="leaderboard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()


def start_services(config: AppConfig, comparator: Comparator) -> tuple[Arena, LeaderboardCache]:
    """A page's Arena and LeaderboardCache, started (and the votes' sync, when configured)."""
    arena = Arena.start(config, comparator)
    cache = LeaderboardCache(
        arena.store,
        arena.is_aligned,
        config.arena.leaderboard_refresh_seconds,
        config.arena.bootstrap_rounds,
    ).start()
    if arena.store is not None and config.arena.sync_repo:
        from .sync import start_sync

        try:
            arena.sync = start_sync(config.arena, arena.store)
        except Exception as error:  # votes are still stored locally; the log says why
            log.error("votes will not be synced to %s: %s", config.arena.sync_repo, error)
    return arena, cache


__all__ = [
    "Arena",
    "Example",
    "InvalidPrompt",
    "LeaderboardCache",
    "RateLimited",
    "Reveal",
    "VoteRefused",
    "start_services",
]
