"""Authentication: a shared password by header or `?key=`, constant-time compared, and a
back-off that slows a guessing source down without ever locking anybody out.

Upstream locked an address out for `lockout_s` after N failures. The cage connects from the
same 127.0.0.1 as the user, so ten wrong passwords sent by a hostile agent locked the *user*
out. Here:

* the correct password always passes at once — no counter, lock or delay is consulted first;
* a source's first `auth_failures_per_min` failures within 60 s are answered at once (typos);
  each further one waits 0.25 s, 0.5 s, 1 s, ... up to `auth_backoff_max_s` before its 401;
* a source's failing requests wait one at a time (a per-source lock held during the delay),
  so opening more connections does not buy more guesses: at most one per
  `auth_backoff_max_s` seconds, while everyone else — the same address with the right
  password included — is answered immediately.

The map of sources is bounded (oldest forgotten first).
"""

from __future__ import annotations

import collections
import dataclasses
import hmac
import time
from collections.abc import Callable

import anyio

WINDOW_S = 60.0
FIRST_DELAY_S = 0.25
MAX_TRACKED_ADDRESSES = 10_000


@dataclasses.dataclass
class _Source:
    failures: collections.deque[float] = dataclasses.field(default_factory=collections.deque)
    lock: anyio.Lock = dataclasses.field(default_factory=anyio.Lock)


@dataclasses.dataclass(frozen=True)
class Verdict:
    status: int  # 0 = pass, 401
    error: str = ""
    #: Seconds this failure was held back before its answer.
    delay_s: float = 0.0
    #: This failure was the first of its window to be slowed down (worth one event).
    backoff_started: bool = False
    failures: int = 0


PASS = Verdict(0)


def backoff_delay(failures: int, threshold: int, max_delay_s: float) -> float:
    """The wait before answering the `failures`-th failure of a window: none up to
    `threshold`, then doubling from FIRST_DELAY_S, capped at `max_delay_s`."""
    excess = failures - max(threshold, 0)
    if excess <= 0:
        return 0.0
    return float(min(max_delay_s, FIRST_DELAY_S * 2 ** min(excess - 1, 32)))


class AuthGate:
    def __init__(self, password: Callable[[], str], threshold: int, max_delay_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._password = password
        self.threshold = threshold
        self.max_delay_s = max_delay_s
        self._clock = clock
        self._sources: collections.OrderedDict[str, _Source] = collections.OrderedDict()

    def accepts(self, credential: str | None) -> bool:
        """Whether `credential` is the password (constant time); False when there is none."""
        password = self._password()
        return bool(password) and credential is not None and hmac.compare_digest(
            credential.encode("utf-8", "surrogateescape"), password.encode("utf-8", "surrogateescape"))

    async def check(self, ip: str, credential: str | None, *, required: bool) -> Verdict:
        """Pass, or a 401 answered after this source's back-off delay."""
        if not required or not self._password() or self.accepts(credential):
            return PASS  # an empty password only exists with an explicit `auth = "none"`
        source = self._source(ip)
        async with source.lock:
            now = self._clock()
            while source.failures and source.failures[0] < now - WINDOW_S:
                source.failures.popleft()
            source.failures.append(now)
            count = len(source.failures)
            delay = backoff_delay(count, self.threshold, self.max_delay_s)
            if delay:
                await anyio.sleep(delay)
        return Verdict(401, "authentication required", delay, delay > 0 and count == self.threshold + 1, count)

    def _source(self, ip: str) -> _Source:
        source = self._sources.get(ip)
        if source is None:
            source = self._sources[ip] = _Source()
            while len(self._sources) > MAX_TRACKED_ADDRESSES:
                self._sources.popitem(last=False)
        self._sources.move_to_end(ip)
        return source
