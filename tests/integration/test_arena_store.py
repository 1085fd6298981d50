"""The vote store: WAL, migrations, exactly-once under 8 concurrent writers, nothing lost when
the writing process is killed with SIGKILL, and an unwritable or locked database refused with
a message (while battles keep running)."""

from __future__ import annotations

import logging
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from arena_fakes import fake_comparator, vote_record
from conftest import TESTS_DIR, subprocess_env

from demo.arena.battles import VoteRefused
from demo.arena.service import Arena
from demo.arena.store import MIGRATIONS, SCHEMA_VERSION, StoreUnavailable, VoteStore, open_store

pytestmark = pytest.mark.timeout(300)
CLIENTS, VOTES_EACH = 8, 20


def test_new_database_is_wal_at_the_latest_schema(tmp_path):
    store = VoteStore(tmp_path / "a" / "votes.sqlite")
    assert store.journal_mode == "wal" and store.version == SCHEMA_VERSION == len(MIGRATIONS)
    assert store.record(vote_record("b1"))
    assert not store.record(vote_record("b1"))  # the same battle twice: stored once
    [row] = store.votes()
    assert row == vote_record("b1", created_at=row.created_at, voter="")
    store.close()


def test_a_version_1_database_is_migrated_and_keeps_its_votes(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute(
        "INSERT INTO votes (battle_id, created_at, prompt, category, model_a, format_a, config_hash_a, model_b, "
        "format_b, config_hash_b, settings, seed, input_a, input_b, answer_a, answer_b, reward_a, reward_b, "
        "positions, winner, judge, attributes, self_identified) VALUES ('old', '2026-01-01', 'p', 'typed', 'm1', "
        "'raw', 'h', 'm2', 'chat', 'h', '{}', 1, 'i', 'j', 'x', 'y', 0.1, 0.2, '{}', 'A', 'B', '{}', 0)"
    )
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    store = VoteStore(path)
    assert store.version == SCHEMA_VERSION
    [row] = store.votes()
    assert row.battle_id == "old" and row.rating_a is None and row.voter == ""
    key = sqlite3.connect(path).execute("SELECT answers_key FROM votes").fetchone()[0]
    assert key == row.answers_key  # filled in by the migration
    store.close()
    assert VoteStore(path).version == SCHEMA_VERSION  # reopening migrates nothing more


def test_a_database_from_newer_code_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreUnavailable, match="newer"):
        VoteStore(path)


def test_eight_clients_voting_at_once_are_each_stored_exactly_once(tiny_config, tmp_path):
    """8 sessions × 20 battles through the Arena (issue, stream, vote), all at once; each client
    also retries every vote once, as a flaky network would."""
    store = VoteStore(tmp_path / "votes.sqlite")
    config = tiny_config.model_copy(
        update={
            "arena": tiny_config.arena.model_copy(update={"max_votes_per_minute": 1000, "max_battles_per_minute": 1000})
        }
    )
    arena = Arena(config, fake_comparator(config), store, rng=random.Random(0))
    accepted: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(number: int):
        try:
            start.wait()
            for i in range(VOTES_EACH):
                battle = arena.new_battle(f"session-{number}", f"prompt {number}-{i}")
                for _ in arena.stream(battle):
                    pass
                arena.vote(f"session-{number}", battle.id, random.choice(["A", "B", "tie", "bad"]))
                with lock:
                    accepted.append(battle.id)
                with pytest.raises(VoteRefused):
                    arena.vote(f"session-{number}", battle.id, "A")
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    assert not errors, errors
    rows = store.votes()
    assert len(accepted) == CLIENTS * VOTES_EACH
    assert sorted(r.battle_id for r in rows) == sorted(accepted)  # every vote, once
    assert len({r.voter for r in rows}) == CLIENTS
    print(f"\n{len(rows)} votes from {CLIENTS} concurrent clients stored exactly once in {seconds:.2f} s")


WRITER = r"""
import os, sys
sys.path.insert(0, os.environ["TESTS_DIR"])
from arena_fakes import vote_record
from demo.arena.store import VoteStore

path, client, count, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
store = VoteStore(path, timeout=30)
with open(log, "a", encoding="utf-8") as acks:
    for i in range(count):
        battle = f"{client}-{i}"
        # True: committed now; False: committed by an earlier run (killed before it could ack).
        store.record(vote_record(battle, prompt=f"prompt {battle}"))
        acks.write(battle + "\n")  # the acknowledgement, only after the commit
        acks.flush()
        os.fsync(acks.fileno())
"""


def _writers(path: Path, tmp_path: Path) -> list[tuple[subprocess.Popen, Path]]:
    env = subprocess_env(TESTS_DIR=str(TESTS_DIR))
    writers = []
    for client in range(CLIENTS):
        log = tmp_path / f"acks-{client}.log"
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"c{client}", str(VOTES_EACH), str(log)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        writers.append((process, log))
    return writers


def _acked(tmp_path: Path) -> list[str]:
    return [line for log in sorted(tmp_path.glob("acks-*.log")) for line in log.read_text().splitlines() if line]


def test_kill_9_mid_burst_loses_no_acknowledged_vote_and_stores_none_twice(tmp_path):
    path = tmp_path / "votes.sqlite"
    VoteStore(path).close()  # created and migrated before the burst
    writers = _writers(path, tmp_path)
    deadline = time.monotonic() + 120
    while len(_acked(tmp_path)) < CLIENTS * VOTES_EACH // 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    for process, _ in writers:
        os.kill(process.pid, signal.SIGKILL)
    for process, _ in writers:
        process.wait(30)
    acked_before = _acked(tmp_path)
    assert 0 < len(acked_before) < CLIENTS * VOTES_EACH, "the kill did not land mid-burst"
    after_kill = {r.battle_id for r in VoteStore(path).votes()}
    assert set(acked_before) <= after_kill  # every acknowledged vote survived the kill
    assert len(after_kill) - len(set(acked_before)) <= CLIENTS  # at most one unacked commit per writer
    # Restart: every writer retries its whole burst; nothing is stored twice.
    for process, _ in _writers(path, tmp_path):
        assert process.wait(120) == 0, process.stderr.read().decode()[-2000:]
    rows = [r.battle_id for r in VoteStore(path).votes()]
    assert len(rows) == len(set(rows)) == CLIENTS * VOTES_EACH
    print(
        f"\nkilled {CLIENTS} writers after {len(acked_before)} acknowledged votes; {len(after_kill)} were in "
        f"the database; after the restart {len(rows)} votes, each once"
    )


def test_an_unwritable_folder_makes_voting_unavailable_with_a_message(tiny_config, tmp_path, caplog):
    if os.geteuid() == 0:
        # root ignores permission bits: a path under a regular file cannot be created by anyone.
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        target = blocker / "votes.sqlite"
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        target = folder / "votes.sqlite"
    config = tiny_config.model_copy(update={"arena": tiny_config.arena.model_copy(update={"database": target})})
    with caplog.at_level(logging.ERROR, logger="demo.errors"):
        store, error = open_store(config)
    # The page reads a sentence with an id; the path is in the server log under that id only.
    assert store is None and str(target) not in error and "not-a-folder" not in error
    error_id = re.search(r"error id (\w+)", error).group(1)
    assert any(error_id in r.getMessage() and str(target) in r.getMessage() for r in caplog.records)
    arena = Arena(config, fake_comparator(config), store, error)
    battle = arena.new_battle("s1", "Name three colours.")
    *_, last = arena.stream(battle)
    assert last.done and all(last.side(r).text for r in battle.roles)  # comparing still works
    with pytest.raises(VoteRefused, match="Voting is unavailable"):
        arena.vote("s1", battle.id, "A")


def test_a_locked_database_refuses_the_vote_and_keeps_the_battle_open(tiny_config, tmp_path, caplog):
    path = tmp_path / "votes.sqlite"
    store = VoteStore(path, timeout=0.3)
    arena = Arena(tiny_config, fake_comparator(tiny_config), store, rng=random.Random(0))
    battle = arena.new_battle("s1", "Name three colours.")
    for _ in arena.stream(battle):
        pass
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        with caplog.at_level(logging.ERROR, logger="demo.errors"):
            with pytest.raises(VoteRefused, match="unavailable right now.*error id") as refused:
                arena.vote("s1", battle.id, "A")
        assert str(path) not in str(refused.value) and "locked" not in str(refused.value)
        error_id = re.search(r"error id (\w+)", str(refused.value)).group(1)
        assert any(error_id in r.getMessage() and "locked" in r.getMessage() for r in caplog.records)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert arena.vote("s1", battle.id, "A").stored  # the same battle, once the lock is gone
    assert store.count() == 1
