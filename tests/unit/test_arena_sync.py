"""The optional hub sync, as far as it can be tested without the hub: off unless configured,
the scheduler gets the configured repo and interval, and each push first writes a consistent
snapshot (sqlite backup + JSONL) that the real CommitScheduler then uploads."""

from __future__ import annotations

import json
import sqlite3

from arena_fakes import vote_record

from demo.arena.store import VoteStore
from demo.arena.sync import start_sync, write_snapshot
from demo.config import ArenaSpec


def test_sync_is_off_unless_a_repo_is_configured(tmp_path):
    assert start_sync(ArenaSpec(), VoteStore(tmp_path / "v.sqlite")) is None


def test_snapshot_is_a_consistent_copy_and_a_jsonl(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite")
    store.record(vote_record("b1"))
    store.record(vote_record("b2", winner="tie"))
    database, lines = write_snapshot(store, tmp_path / "sync")
    assert sqlite3.connect(database).execute("SELECT count(*) FROM votes").fetchone()[0] == 2
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [r["battle_id"] for r in rows] == ["b1", "b2"]


class FakeApi:
    """The parts of HfApi a CommitScheduler calls, recording what it would upload."""

    def __init__(self):
        self.repos, self.commits = [], []

    def create_repo(self, **kwargs):
        self.repos.append(kwargs)
        return type("RepoUrl", (), {"repo_id": kwargs["repo_id"]})()

    def preupload_lfs_files(self, **kwargs):
        pass

    def run_as_future(self, fn, *args, **kwargs):
        from concurrent.futures import Future

        future: Future = Future()
        future.set_result(None)  # the scheduler's background pushes are not run in the test
        return future

    def create_commit(self, **kwargs):
        self.commits.append(kwargs)
        return "commit"


def test_the_real_commit_scheduler_uploads_the_snapshot(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite")
    store.record(vote_record("b1"))
    api = FakeApi()
    arena = ArenaSpec(sync_repo="someone/arena-votes", sync_every_minutes=60)
    scheduler = start_sync(arena, store, folder=tmp_path / "sync", hf_api=api)
    try:
        assert api.repos[0]["repo_id"] == "someone/arena-votes" and api.repos[0]["repo_type"] == "dataset"
        assert api.repos[0]["private"] is True
        scheduler.push_to_hub()
    finally:
        scheduler.stop()
    [commit] = api.commits
    uploaded = sorted(op.path_in_repo for op in commit["operations"])
    assert uploaded == ["votes/votes.jsonl", "votes/votes.sqlite"]
    assert commit["repo_id"] == "someone/arena-votes" and commit["repo_type"] == "dataset"
