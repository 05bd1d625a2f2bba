"""The Docker Engine adapter: the only package that talks to the engine (through aiodocker).

* `client` — `Engine` (one client: `.containers`, `.images`, `.networks`, `.events()`),
  `connect`, `run_with_engine`;
* `containers` — `Container`, a typed handle (inspect, start, stop, kill, wait, delete,
  resize, attach, exec, stats) with what the engine's list said about it;
* `images` — inspect, find, pull, build, delete;
* `networks` — a network made on demand;
* `events` — the filtered event stream;
* `streams` — the attach connection, with a half-close;
* `errors` — `EngineError` (`status`: the HTTP status), the only error that leaves the adapter;
* `kind` — which engine answers (Docker Engine, Docker Desktop, Podman, remote);
* `desktop` — a launch's connection, starting Docker Desktop when it is the engine and is down.
"""
