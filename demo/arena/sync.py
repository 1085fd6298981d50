"""Optional: push the votes to a Hugging Face dataset repo from a Space, with huggingface_hub's
`CommitScheduler` (a background thread that commits a folder every few minutes).

Off unless models.yaml names `arena.sync_repo`; needs a token with write access (HF_TOKEN, a
Space secret). The live SQLite file is never uploaded as it is being written: before each
commit the scheduler takes a consistent copy with sqlite's backup API, plus a JSONL dump, into
its own folder. A failed push is logged by the scheduler and retried at the next interval; the
database on disk stays the source of truth.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from ..config import ArenaSpec
from .store import VoteStore

log = logging.getLogger(__name__)


def write_snapshot(store: VoteStore, folder: Path) -> list[Path]:
    """votes.sqlite (a consistent copy) and votes.jsonl (one vote per line) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    database = store.backup(folder / "votes.sqlite")
    lines = folder / "votes.jsonl"
    with lines.open("w", encoding="utf-8", newline="\n") as handle:
        for vote in store.votes():
            handle.write(json.dumps(asdict(vote), ensure_ascii=False) + "\n")
    return [database, lines]


def start_sync(arena: ArenaSpec, store: VoteStore, folder: Path | None = None, scheduler_class=None, **kwargs):
    """A running CommitScheduler for the configured repo, or None when sync is off."""
    if not arena.sync_repo:
        return None
    if scheduler_class is None:
        from huggingface_hub import CommitScheduler as scheduler_class  # noqa: N813
    folder = folder or store.path.parent / "sync"

    class VoteSync(scheduler_class):  # type: ignore[misc, valid-type]
        def push_to_hub(self):
            with self.lock:  # the scheduler's own lock: no upload reads half-written files
                write_snapshot(store, folder)
            return super().push_to_hub()

    log.info("syncing votes to the dataset %s every %.0f min", arena.sync_repo, arena.sync_every_minutes)
    return VoteSync(
        repo_id=arena.sync_repo,
        repo_type="dataset",
        folder_path=folder,
        path_in_repo="votes",
        every=arena.sync_every_minutes,
        private=True,
        **kwargs,
    )
