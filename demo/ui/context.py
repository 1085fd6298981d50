"""What every tab is built with: the config, the running comparator, per-session stop flags."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

import gradio as gr

from ..arena.service import Arena, LeaderboardCache, start_services
from ..compare import Comparator
from ..config import AppConfig


class StopFlags:
    """One stop flag per browser session, so one user's Stop never stops another's answer."""

    def __init__(self):
        self._flags: dict[str, threading.Event] = {}
        # Flags of runs whose output must no longer reach the screen (the visitor switched the
        # pair or the format while they ran): their last snapshots would refill cleared answers.
        self._abandoned: weakref.WeakSet[threading.Event] = weakref.WeakSet()
        self._lock = threading.Lock()

    def fresh(self, session: str) -> threading.Event:
        with self._lock:
            flag = self._flags[session] = threading.Event()
            return flag

    def stop(self, session: str) -> None:
        with self._lock:
            flag = self._flags.get(session)
        if flag is not None:
            flag.set()

    def abandon(self, session: str) -> None:
        """Stop the session's run and keep its remaining output off the screen."""
        with self._lock:
            flag = self._flags.get(session)
            if flag is not None:
                self._abandoned.add(flag)
        if flag is not None:
            flag.set()

    def latest_abandoned(self, session: str) -> bool:
        """Whether the session's latest run (if any) was abandoned: False once a new run started."""
        with self._lock:
            flag = self._flags.get(session)
            return flag is None or flag in self._abandoned

    def abandoned(self, flag: threading.Event) -> bool:
        with self._lock:
            return flag in self._abandoned


@dataclass
class UIContext:
    """Everything a tab is built with. The arena's services start on first use (by the Blind vote
    or the Leaderboard tab, whichever is built first) and are then the page's one pair."""

    config: AppConfig
    comparator: Comparator
    stops: StopFlags = field(default_factory=StopFlags)
    page: gr.Blocks | None = None  # the page being built, for tabs that act on its load (a shared link)
    _arena: tuple[Arena, LeaderboardCache] | None = field(default=None, init=False, repr=False)
    _arena_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def arena_services(self) -> tuple[Arena, LeaderboardCache]:
        with self._arena_lock:
            if self._arena is None:
                self._arena = start_services(self.config, self.comparator)
            return self._arena

    def loaded_info(self) -> dict:
        """What each worker loaded (back end, precision, device), by model id."""
        return {model_id: worker.info for model_id, worker in self.comparator.workers.items()}
