"""Authentication and the per-IP lock-out (§3): a shared password by header or `?key=`,
constant-time compared; N failures within 60 s lock the address out for `lockout_s`.

The failure map is bounded (oldest addresses forgotten first), unlike upstream's.
"""

from __future__ import annotations

import collections
import dataclasses
import hmac
import time
from collections.abc import Callable

WINDOW_S = 60.0
MAX_TRACKED_ADDRESSES = 10_000


@dataclasses.dataclass
class _Address:
    failures: collections.deque[float] = dataclasses.field(default_factory=collections.deque)
    locked_until: float = 0.0


@dataclasses.dataclass(frozen=True)
class Verdict:
    status: int  # 0 = pass, 401, 429
    error: str = ""
    retry_after: int | None = None
    locked_out: bool = False


class AuthGate:
    def __init__(self, password: Callable[[], str], threshold: int, lockout_s: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._password = password
        self.threshold = threshold
        self.lockout_s = lockout_s
        self._clock = clock
        self._addresses: collections.OrderedDict[str, _Address] = collections.OrderedDict()

    def check(self, ip: str, credential: str | None, *, required: bool) -> Verdict:
        now = self._clock()
        state = self._addresses.get(ip)
        if state is not None and state.locked_until > now:
            remaining = int(state.locked_until - now)
            return Verdict(429, f"rate limited: {remaining}s remaining", remaining or None)
        password = self._password()
        if not required or not password:
            return Verdict(0)
        if credential is not None and hmac.compare_digest(credential.encode(), password.encode()):
            return Verdict(0)
        if state is None:
            state = self._addresses[ip] = _Address()
            while len(self._addresses) > MAX_TRACKED_ADDRESSES:
                self._addresses.popitem(last=False)
        self._addresses.move_to_end(ip)
        while state.failures and state.failures[0] < now - WINDOW_S:
            state.failures.popleft()
        state.failures.append(now)
        locked = len(state.failures) >= self.threshold
        if locked:
            state.locked_until = now + self.lockout_s
            state.failures.clear()
        return Verdict(401, "authentication required", locked_out=locked)
