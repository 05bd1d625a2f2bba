"""Keep web pages out: the Host allow-list, the Origin check, CORS and content types.

A page the user visits can make the browser send requests to 127.0.0.1: simple requests
(`text/plain` or form bodies, no custom header) go out without a preflight, and DNS
rebinding makes `evil.example` resolve to 127.0.0.1 so the page even reads the answers.
Every defence here is a refusal before routing, so no endpoint can forget one:

* **Host** must name this server: a loopback name or address, `host.docker.internal` (what
  the cage's own client sends), or a configured `allowed_hosts` name — with the server's
  port. A rebinding page's requests carry its own name and get 403.
* **Origin** (and `Sec-Fetch-Site`, which browsers add even where they omit Origin): any
  cross-origin request gets 403 — except `POST /log` (and its preflight) from an origin
  listed in `log_origins`, the user's own app in development posting its console logs.
* **CORS**: never a wildcard; only those origins, only on `/log`, never with credentials.
* **Content-Type**: a body must be `application/json` (else 415), so a simple request can
  never be parsed as JSON; only `/log` from a listed origin may send `text/plain` (what
  `navigator.sendBeacon` sends, with no preflight).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "host.docker.internal"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
CROSS_SITE = frozenset({"cross-site", "same-site"})
LOG_PATH = "/log"
PREFLIGHT_MAX_AGE = b"600"


@dataclasses.dataclass(frozen=True)
class Refusal:
    status: int
    body: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class BrowserVerdict:
    """`origin` is the listed origin a `/log` request came from (answered with CORS headers,
    no password needed); `refusal` ends the request."""

    origin: str | None = None
    refusal: Refusal | None = None


def split_host(value: str) -> tuple[str, int | None]:
    """`name[:port]` / `[v6][:port]` → (lower-case name, port or None); port -1 if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value.partition("]")
        name += "]"
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else "x")
    else:
        name, _, port_text = value.partition(":")
    if not port_text:
        return name, None
    return name, int(port_text) if port_text.isdigit() and len(port_text) <= 5 else -1


def host_allowed(host: str | None, *, port: int, bind: str, extra: tuple[str, ...]) -> bool:
    """Whether the Host header names this server (the DNS-rebinding defence)."""
    if not host:
        return False
    name, given = split_host(host)
    names = set(LOOPBACK_NAMES) | set(extra) | ({bind.lower()} if bind not in WILDCARD_BINDS else set())
    if ":" in bind and bind not in WILDCARD_BINDS:
        names.add(f"[{bind.lower()}]")
    return name in names and (given == port or (given is None and port == 80))


def judge(headers: Mapping[str, str], *, method: str, path: str, port: int, bind: str,
          allowed_hosts: tuple[str, ...], log_origins: tuple[str, ...]) -> BrowserVerdict:
    """Host, then Origin / Sec-Fetch-Site, then Content-Type — the first refusal wins."""
    if not host_allowed(headers.get("host"), port=port, bind=bind, extra=allowed_hosts):
        return BrowserVerdict(refusal=Refusal(403, {"error": "host not allowed",
                                                    "hint": "use 127.0.0.1, localhost or a name in allowed_hosts"}))
    origin = headers.get("origin")
    listed = None
    if origin is not None:
        if path == LOG_PATH and method in ("POST", "OPTIONS") and origin.lower() in log_origins:
            listed = origin
        else:
            return BrowserVerdict(refusal=Refusal(403, {"error": "cross-origin request refused",
                                                         "origin": origin[:200]}))
    elif headers.get("sec-fetch-site", "").lower() in CROSS_SITE:
        return BrowserVerdict(refusal=Refusal(403, {"error": "cross-origin request refused"}))
    refusal = _content_type(headers, method, simple_allowed=listed is not None)
    return BrowserVerdict(listed, refusal)


def _content_type(headers: Mapping[str, str], method: str, *, simple_allowed: bool) -> Refusal | None:
    if method not in ("POST", "DELETE", "PUT", "PATCH"):
        return None
    declared = headers.get("content-type")
    media = (declared or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (simple_allowed and media == "text/plain"):
        return None
    has_body = headers.get("content-length", "").strip() not in ("", "0") or "transfer-encoding" in headers
    if declared is None and not has_body:
        return None  # `POST /run` and friends carry no body at all
    return Refusal(415, {"error": "unsupported media type: send Content-Type: application/json",
                         "content_type": (declared or "")[:100]})


def cors_headers(origin: str | None) -> list[tuple[bytes, bytes]]:
    """The answer's CORS headers: the listed origin itself (never `*`, never credentials)."""
    if origin is None:
        return []
    return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]


def preflight_headers(origin: str | None, headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """A preflight's grant for `POST /log` from a listed origin: Content-Type only — the
    password header is never granted to a page."""
    if origin is None:
        return [(b"allow", b"GET, POST, DELETE, OPTIONS")]
    granted = [*cors_headers(origin), (b"access-control-allow-methods", b"POST"),
               (b"access-control-allow-headers", b"Content-Type"), (b"access-control-max-age", PREFLIGHT_MAX_AGE)]
    if headers.get("access-control-request-private-network", "").lower() == "true":
        granted.append((b"access-control-allow-private-network", b"true"))
    return granted
