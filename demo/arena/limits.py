"""Limits a script cannot sidestep: battles and votes per browser session *and* per client
address, and the reading time a vote must leave after the answers finished.

A session id is chosen by the browser, so a per-session limit alone stops only honest clients;
the client address is the proxy's forwarded address when the direct peer is a trusted proxy (a
Space runs behind one), the peer's own address otherwise. An untrusted `X-Forwarded-For` is
ignored: anyone can write that header. Memory is bounded: each limiter keeps at most `max_keys`
keys (the least recently seen are forgotten first).
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import UserFacingError


class RateLimited(UserFacingError):
    """Too many requests; `retry_after` seconds until the next one is allowed."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


def _networks(trusted: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def _is_trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str | None, headers: Mapping[str, str], trusted_proxies: Iterable[str]) -> str:
    """The address a request came from. Only when the direct `peer` is a trusted proxy is the
    `X-Forwarded-For` chain read, from the right, skipping further trusted proxies: the first
    address no trusted proxy vouches for is the client."""
    networks = _networks(trusted_proxies)
    address = (peer or "unknown").strip()
    if not _is_trusted(address, networks):
        return address
    forwarded = next((v for k, v in headers.items() if k.lower() == "x-forwarded-for"), "")
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        if not _is_trusted(hop, networks):
            return hop
        address = hop
    return address


@dataclass
class SlidingWindow:
    """At most `limit` events per `window` seconds per key, for at most `max_keys` keys."""

    limit: int
    window: float = 60.0
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _events: OrderedDict[str, deque] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_seconds(self, key: str) -> float:
        """0 when `key` may act now, else the seconds until it may."""
        with self._lock:
            recent = self._recent(key)
            if len(recent) < self.limit:
                return 0.0
            return max(0.0, recent[0] + self.window - self.clock())

    def record(self, key: str) -> None:
        with self._lock:
            recent = self._recent(key)
            recent.append(self.clock())
            self._events[key] = recent
            self._events.move_to_end(key)
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)

    def __len__(self) -> int:
        return len(self._events)

    def _recent(self, key: str) -> deque:
        recent = self._events.get(key)
        if recent is None:
            recent = deque()
        now = self.clock()
        while recent and now - recent[0] >= self.window:
            recent.popleft()
        if recent:
            self._events[key] = recent
        else:
            self._events.pop(key, None)
        return recent


@dataclass
class ClientLimits:
    """One kind of action (starting a battle, voting) limited per session and per address."""

    what: str  # "battles", "votes": for the message
    per_session: SlidingWindow
    per_address: SlidingWindow

    def check(self, session: str, address: str) -> None:
        """RateLimited (saying when to try again) if either limit is reached; nothing recorded."""
        waits = [
            (self.per_session.wait_seconds(session), "this browser session", self.per_session.limit),
            (self.per_address.wait_seconds(address), "one address", self.per_address.limit),
        ]
        wait, who, limit = max(waits)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(
                f"Too many {self.what}: at most {limit} a minute from {who}. Try again in {seconds} s.", seconds
            )

    def record(self, session: str, address: str) -> None:
        self.per_session.record(session)
        self.per_address.record(address)


def client_limits(what: str, per_session: int, per_address: int, clock: Callable[[], float] = time.monotonic):
    return ClientLimits(what, SlidingWindow(per_session, clock=clock), SlidingWindow(per_address, clock=clock))


def reading_seconds(texts: Iterable[str], words_per_second: float, minimum: float) -> float:
    """How long reading these answers takes at least: a fast skim of every word, or `minimum`."""
    words = sum(len(text.split()) for text in texts)
    return max(minimum, words / words_per_second) if words_per_second > 0 else minimum
