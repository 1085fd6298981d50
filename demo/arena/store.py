"""Votes in SQLite: WAL mode, a versioned schema, one transaction per vote, committed before the
voter is told it counted.

The schema version is `PRAGMA user_version`; `MIGRATIONS[i]` takes a database from version i to
i + 1 and runs in the transaction that bumps the version, so a half-applied migration never
stays. The battle id is UNIQUE: a vote can never be stored twice, even by a retried request.
No IP address, user agent or other personal data is stored; `voter` is a keyed hash of the
browser session's random id (it only tells two sessions apart, for human-human agreement).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..cache import cache_dir
from ..config import LEGACY_PATH_STYLES, AppConfig
from ..errors import public_message
from .systems import config_hash, systems_from_config

MIGRATIONS: tuple[str, ...] = (
    # 1: one row per vote, everything needed to re-read the battle without the app.
    """
    CREATE TABLE votes (
        id INTEGER PRIMARY KEY,
        battle_id TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        prompt TEXT NOT NULL,
        category TEXT NOT NULL,
        model_a TEXT NOT NULL, format_a TEXT NOT NULL, config_hash_a TEXT NOT NULL,
        model_b TEXT NOT NULL, format_b TEXT NOT NULL, config_hash_b TEXT NOT NULL,
        settings TEXT NOT NULL,
        seed INTEGER,
        input_a TEXT NOT NULL, input_b TEXT NOT NULL,
        answer_a TEXT NOT NULL, answer_b TEXT NOT NULL,
        reward_a REAL, reward_b REAL,
        positions TEXT NOT NULL,
        winner TEXT NOT NULL CHECK (winner IN ('A', 'B', 'tie', 'bad')),
        judge TEXT,
        attributes TEXT NOT NULL,
        self_identified INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 2: per-answer 1-7 ratings; the voter key and a key of the two answers, for agreement
    # between sessions that voted on the same answers.
    """
    ALTER TABLE votes ADD COLUMN rating_a INTEGER CHECK (rating_a BETWEEN 1 AND 7);
    ALTER TABLE votes ADD COLUMN rating_b INTEGER CHECK (rating_b BETWEEN 1 AND 7);
    ALTER TABLE votes ADD COLUMN voter TEXT NOT NULL DEFAULT '';
    ALTER TABLE votes ADD COLUMN answers_key TEXT NOT NULL DEFAULT '';
    CREATE INDEX votes_answers_key ON votes (answers_key);
    """,
    # 3: a secret seed per side (`seed` is A's), and the reading check: how long after both
    # answers finished the vote came, and whether that was too fast to have read them (such a
    # vote is kept, but left out of the ratings).
    """
    ALTER TABLE votes ADD COLUMN seed_b INTEGER;
    ALTER TABLE votes ADD COLUMN seconds_to_vote REAL;
    ALTER TABLE votes ADD COLUMN too_fast INTEGER NOT NULL DEFAULT 0;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreUnavailable(RuntimeError):
    """The vote database cannot be opened or written; the message says which file and why."""


@dataclass(frozen=True)
class VoteRecord:
    """One vote, by screen position: `_a` is what was shown as A."""

    battle_id: str
    prompt: str
    category: str
    model_a: str
    format_a: str
    config_hash_a: str
    model_b: str
    format_b: str
    config_hash_b: str
    settings: dict
    seed: int | None
    input_a: str
    input_b: str
    answer_a: str
    answer_b: str
    reward_a: float | None
    reward_b: float | None
    positions: dict  # {"A": role, "B": role}: the Comparator role each position ran as
    winner: str
    judge: str | None  # "A", "B", "tie" by the reward model; None when it had no score
    attributes: dict = field(default_factory=dict)  # {"A": [keys], "B": [keys]}
    self_identified: bool = False
    rating_a: int | None = None
    rating_b: int | None = None
    voter: str = ""
    created_at: str = ""
    seed_b: int | None = None  # B's seed (`seed` is A's); None for votes before seeds per side
    seconds_to_vote: float | None = None  # from both answers finished to the vote
    too_fast: bool = False  # voted before the answers could be read: kept, not rated

    @property
    def system_a(self) -> str:
        return f"{self.model_a}:{self.format_a}"

    @property
    def system_b(self) -> str:
        return f"{self.model_b}:{self.format_b}"

    @property
    def answers_key(self) -> str:
        """The same two answers from the same two systems, in either screen order."""
        sides = sorted([(self.system_a, self.answer_a), (self.system_b, self.answer_b)])
        blob = json.dumps([self.prompt, sides], ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:24]


_JSON_FIELDS = ("settings", "positions", "attributes")


def voter_key(session: str, secret: bytes) -> str:
    """A per-process keyed hash of the browser session id: not reversible, not linkable later."""
    return hashlib.blake2b(session.encode("utf-8"), key=secret[:64], digest_size=8).hexdigest()


def default_database(config: AppConfig) -> Path:
    return config.arena.database or cache_dir() / "arena" / "votes.sqlite"


class VoteStore:
    """The vote database. One connection, used under a lock (gradio handlers run on threads);
    other processes may write the same file (WAL plus a busy timeout)."""

    def __init__(self, path: str | Path, *, timeout: float = 5.0):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # committed means on disk
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self._migrate()
        except (sqlite3.Error, OSError) as error:
            raise StoreUnavailable(f"{self.path}: cannot open the vote database: {error}") from None
        self._lock = threading.Lock()

    @property
    def journal_mode(self) -> str:
        return self._conn.execute("PRAGMA journal_mode").fetchone()[0]

    @property
    def version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.version
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version} is newer than this code knows ({SCHEMA_VERSION})")
        for number in range(version, SCHEMA_VERSION):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if self.version != number:  # another process migrated meanwhile
                    self._conn.execute("ROLLBACK")
                    continue
                for statement in filter(str.strip, MIGRATIONS[number].split(";")):
                    self._conn.execute(statement)
                if number == 1:  # fill the new key for rows written before it existed
                    cursor = self._conn.execute("SELECT * FROM votes")
                    names = [d[0] for d in cursor.description]
                    for row in cursor.fetchall():
                        key = _record(row, names).answers_key
                        self._conn.execute("UPDATE votes SET answers_key=? WHERE id=?", (key, row[0]))
                self._conn.execute(f"PRAGMA user_version={number + 1}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def rename_config_hashes(self, renames: dict[str, str]) -> int:
        """Replace stored system hashes (old -> new) in one transaction; how many cells changed.
        Hashes once read absolute paths: votes of the same config from another checkout folder
        get the folder-independent hash (see systems.config_hash)."""
        renames = {old: new for old, new in renames.items() if old != new}
        if not renames:
            return 0
        changed = 0
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for old, new in renames.items():
                    for column in ("config_hash_a", "config_hash_b"):
                        cursor = self._conn.execute(f"UPDATE votes SET {column}=? WHERE {column}=?", (new, old))
                        changed += cursor.rowcount
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return changed

    def record(self, vote: VoteRecord) -> bool:
        """Store the vote in its own transaction; True once committed, False if that battle was
        already stored (never twice). StoreUnavailable when the database cannot be written."""
        row = asdict(vote)
        row["created_at"] = vote.created_at or datetime.now(UTC).isoformat(timespec="milliseconds")
        for key in _JSON_FIELDS:
            row[key] = json.dumps(row[key], ensure_ascii=False, sort_keys=True)
        row["self_identified"] = int(vote.self_identified)
        row["too_fast"] = int(vote.too_fast)
        row["answers_key"] = vote.answers_key
        columns = ", ".join(row)
        placeholders = ", ".join(f":{key}" for key in row)
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.execute(f"INSERT INTO votes ({columns}) VALUES ({placeholders})", row)
                except sqlite3.IntegrityError as error:
                    self._conn.execute("ROLLBACK")
                    if "battle_id" in str(error):
                        return False
                    raise
                self._conn.execute("COMMIT")
                return True
            except sqlite3.Error as error:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreUnavailable(f"{self.path}: the vote could not be stored: {error}") from None

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM votes").fetchone()[0]

    def state(self) -> tuple[int, int]:
        """(number of votes, last row id): changes whenever a vote is added, by any process."""
        with self._lock:
            count, last = self._conn.execute("SELECT count(*), coalesce(max(id), 0) FROM votes").fetchone()
            return count, last

    def votes(self) -> list[VoteRecord]:
        with self._lock:
            cursor = self._conn.execute("SELECT * FROM votes ORDER BY id")
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        return [_record(row, names) for row in rows]

    def __iter__(self) -> Iterator[VoteRecord]:
        return iter(self.votes())

    def backup(self, target: str | Path) -> Path:
        """A consistent copy of the database (sqlite's online backup), e.g. for the hub sync."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        destination = sqlite3.connect(target)
        try:
            with self._lock:
                self._conn.backup(destination)
        finally:
            destination.close()
        return target

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _record(row, names: list[str]) -> VoteRecord:
    data = dict(zip(names, row))
    for key in _JSON_FIELDS:
        data[key] = json.loads(data[key])
    data["self_identified"] = bool(data["self_identified"])
    data["too_fast"] = bool(data.get("too_fast", 0))
    return VoteRecord(**{k: v for k, v in data.items() if k in VoteRecord.__dataclass_fields__})


def legacy_hash_renames(config: AppConfig) -> dict[str, str]:
    """{hash stored under a legacy path spelling: today's hash}, per system and spelling."""
    return {
        config_hash(config, s.model_id, s.format, path_style=style): s.config_hash
        for style in LEGACY_PATH_STYLES
        for s in systems_from_config(config)
    }


def open_store(config: AppConfig) -> tuple[VoteStore | None, str | None]:
    """The configured store, or None and the reason voting is unavailable (the app still compares)."""
    try:
        store = VoteStore(default_database(config))
        store.rename_config_hashes(legacy_hash_renames(config))
        return store, None
    except (StoreUnavailable, sqlite3.Error) as error:
        # The page reads a plain sentence with an id; the path and SQL error go to the log.
        return None, public_message(error, "opening the vote database")
