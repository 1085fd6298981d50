"""The server's record of the battles it issued: only it knows which system is A.

A battle is issued to one browser session with an unguessable id (`secrets.token_urlsafe`); a
vote must name a battle of the same session, whose two answers have finished, and is accepted
once. `claim` reserves the battle for one vote, `confirm` marks it voted once the store has
committed, `release` gives it back when the store could not. Battles started and votes cast are
limited per session and per client address (demo/arena/limits.py). Pure Python, no UI, no
database.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..session import Comparison
from ..settings import SEED_MAX
from .limits import ClientLimits, RateLimited, client_limits
from .systems import System

Outcome = Literal["A", "B", "tie", "bad"]
OUTCOMES: tuple[Outcome, ...] = ("A", "B", "tie", "bad")
OUTCOME_LABELS = {"A": "A is better", "B": "B is better", "tie": "Tie", "bad": "Both are bad"}
# The InstructGPT labelling form (Ouyang et al., 2022, Table 3 / Appendix B), per answer.
ATTRIBUTES = (
    ("fails_instruction", "Fails to follow the instruction"),
    ("hallucination", "Makes up facts"),
    ("inappropriate", "Inappropriate for a customer assistant"),
    ("harmful_advice", "Contains harmful advice"),
    ("denigrates", "Denigrates a protected group"),
    ("sexual_violent", "Sexual or violent content"),
)
ATTRIBUTE_KEYS = tuple(key for key, _ in ATTRIBUTES)
BattleState = Literal["running", "finished", "failed", "voting", "voted"]


class VoteRefused(ValueError):
    """The vote cannot be taken; the message says why, for the voter."""


def _secret_seed() -> int:
    return secrets.randbelow(SEED_MAX + 1)


@dataclass
class Battle:
    id: str
    session: str
    prompt: str
    category: str
    systems: tuple[System, System]  # screen order: A, B
    roles: tuple[str, str]  # the Comparator role each of A, B ran as
    issued_at: float
    # One per side (A, B), drawn on the server from a cryptographic source, never shown before
    # the vote: the same prompt gives new answers in every battle, which no Compare run
    # (reproducible by seed) can predict, so a visitor cannot tell A from B by running the
    # prompt elsewhere first. Stored with the vote, so a battle can be reproduced for analysis.
    seeds: tuple[int, int] = field(default_factory=lambda: (_secret_seed(), _secret_seed()))
    address: str = ""  # the client address it was issued to (for the vote limit; never stored)
    state: BattleState = "running"
    comparison: Comparison | None = None
    finished_at: float | None = None  # when both answers were in (the reading time counts from it)

    def answer(self, position: int):
        """The SideState shown at A (0) or B (1)."""
        assert self.comparison is not None
        return self.comparison.side(self.roles[position])


@dataclass
class BattleRegistry:
    """Issued battles by id, each owned by one session; battles started and votes cast limited
    per session and per client address (an address of None counts as the session's own).

    Battles of a session beyond `max_open_per_session` (the oldest first) and every battle older
    than `max_age_seconds` are forgotten, so an abandoned tab cannot grow the server's memory.
    """

    max_votes_per_minute: int = 10
    max_votes_per_minute_per_address: int = 30
    max_battles_per_minute: int = 10
    max_battles_per_minute_per_address: int = 30
    max_open_per_session: int = 8
    max_age_seconds: float = 6 * 3600
    clock: Callable[[], float] = time.monotonic
    _battles: dict[str, Battle] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    votes: ClientLimits = field(init=False)
    battles: ClientLimits = field(init=False)

    def __post_init__(self):
        self.votes = client_limits(
            "votes", self.max_votes_per_minute, self.max_votes_per_minute_per_address, self.clock
        )
        self.battles = client_limits(
            "battles", self.max_battles_per_minute, self.max_battles_per_minute_per_address, self.clock
        )

    def issue(
        self,
        session: str,
        prompt: str,
        category: str,
        systems: tuple[System, System],
        roles: tuple[str, str],
        address: str | None = None,
    ) -> Battle:
        """A new battle for the session, or RateLimited (saying when to try again)."""
        address = address or f"session:{session}"
        battle = Battle(secrets.token_urlsafe(18), session, prompt, category, systems, roles, self.clock())
        battle.address = address
        with self._lock:
            self.battles.check(session, address)
            self.battles.record(session, address)
            self._forget_old(session)
            self._battles[battle.id] = battle
        return battle

    def finish(self, battle_id: str, comparison: Comparison, ok: bool = True) -> None:
        """Both answers are in (and scored): the battle can now be voted on, unless one failed
        or was stopped (`ok` False)."""
        with self._lock:
            battle = self._battles.get(battle_id)
            if battle is not None and battle.state == "running":
                battle.comparison = comparison
                battle.state = "finished" if ok else "failed"
                battle.finished_at = self.clock()

    def claim(self, session: str, battle_id: str | None, address: str | None = None) -> Battle:
        """Reserve the battle for this session's vote (cast from `address`, by default the one
        the battle was issued to), or VoteRefused saying why."""
        with self._lock:
            battle = self._battles.get(battle_id or "")
            if battle is None:
                raise VoteRefused("This battle is unknown or has expired: start a new one.")
            if battle.session != session:
                raise VoteRefused("This battle was issued to another browser session: start a new one.")
            if battle.state == "running":
                raise VoteRefused("Wait until both answers have finished, then vote.")
            if battle.state == "failed":
                raise VoteRefused(
                    "An answer of this battle failed or was stopped, so it cannot be voted on: start a new one."
                )
            if battle.state in ("voting", "voted"):
                raise VoteRefused("This battle has already been voted on: press Next for a new one.")
            battle.address = address or battle.address
            try:
                self.votes.check(session, battle.address)
            except RateLimited as limited:
                raise VoteRefused(str(limited)) from None
            battle.state = "voting"
            return battle

    def confirm(self, battle_id: str) -> None:
        """The vote is committed: this battle never takes another one."""
        with self._lock:
            battle = self._battles[battle_id]
            battle.state = "voted"
            self.votes.record(battle.session, battle.address)

    def release(self, battle_id: str) -> None:
        """The vote could not be stored: the battle may be voted on again."""
        with self._lock:
            battle = self._battles.get(battle_id)
            if battle is not None and battle.state == "voting":
                battle.state = "finished"

    def get(self, session: str, battle_id: str | None) -> Battle | None:
        with self._lock:
            battle = self._battles.get(battle_id or "")
            return battle if battle is not None and battle.session == session else None

    def _forget_old(self, session: str) -> None:
        now = self.clock()
        for battle_id in [b.id for b in self._battles.values() if now - b.issued_at > self.max_age_seconds]:
            del self._battles[battle_id]
        own = sorted((b for b in self._battles.values() if b.session == session), key=lambda b: b.issued_at)
        for battle in own[: max(0, len(own) - self.max_open_per_session + 1)]:
            if battle.state != "voting":
                del self._battles[battle.id]
