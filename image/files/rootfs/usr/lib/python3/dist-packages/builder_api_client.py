"""builder_api_client — the agent's client for the host's builder-api (stdlib only, typed).

Import it from the image's python3 (it lives in /usr/lib/python3/dist-packages; from a
virtual environment add that folder to PYTHONPATH or copy this one file)::

    from builder_api_client import Client

    api = Client()                                  # BUILDER_API_HOST/PORT/PASSWORD, BUILDER_AGENT_ID
    entry = api.run("test", {"selector": "tests/unit"})   # queue it and wait for the result
    print(entry["status"], entry["log_tail"])
    print(api.logs("app", n=50))

The `builder-api` command is this module's `main()`. Every endpoint but `GET /` needs the
password; `Client` sends it as the `X-Builder-API-Password` header (never in the URL, where
it would end up in logs), and every body as `Content-Type: application/json`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["ApiError", "Client", "main"]

JSON = dict[str, Any]


class ApiError(Exception):
    """The API answered an error (`status` is the HTTP status, `detail` its JSON body) or
    could not be reached (`status` is None)."""

    def __init__(self, message: str, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class Client:
    """One builder-api endpoint. Arguments left out come from the environment the launcher
    gives the container (`BUILDER_API_HOST` = host.docker.internal, `BUILDER_API_PORT` =
    6666, `BUILDER_API_PASSWORD`, `BUILDER_AGENT_ID`)."""

    def __init__(self, host: str | None = None, port: int | str | None = None, password: str | None = None,
                 agent_id: str | None = None, timeout: float = 70.0) -> None:
        self.host = host or os.environ.get("BUILDER_API_HOST") or "host.docker.internal"
        self.port = int(port or os.environ.get("BUILDER_API_PORT") or 6666)
        self.password = password if password is not None else os.environ.get("BUILDER_API_PASSWORD", "")
        self.agent_id = agent_id if agent_id is not None else os.environ.get("BUILDER_AGENT_ID", "")
        self.timeout = timeout

    # -- the wire ------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: JSON | None = None, headers: dict[str, str] | None = None,
                timeout: float | None = None) -> JSON:
        """One call; the decoded JSON answer, or `ApiError`."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://{self.host}:{self.port}{path}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.password:
            request.add_header("X-Builder-API-Password", self.password)
        if self.agent_id:
            request.add_header("X-Agent-ID", self.agent_id)
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                detail: Any = json.loads(text)
            except ValueError:
                detail = text
            shown = detail if isinstance(detail, str) else json.dumps(detail)
            raise ApiError(f"HTTP {error.code}: {shown}", error.code, detail) from None
        except (urllib.error.URLError, OSError) as error:
            raise ApiError(f"cannot reach builder-api at {self.host}:{self.port}: "
                           f"{getattr(error, 'reason', error)}") from None
        return json.loads(text) if text.strip() else {}

    # -- endpoints -----------------------------------------------------------------------------
    def identity(self) -> JSON:
        """`GET /`: name, version, port (the one call that needs no password)."""
        return self.request("GET", "/")

    def jobs(self) -> JSON:
        """The job catalogue: `{"jobs": {name: {...}}, "verbs": {...}, ...}`."""
        return self.request("GET", "/jobs")

    def submit(self, name: str, params: dict[str, str] | None = None, *, platform: str | None = None,
               confirm: bool = False, dry_run: bool = False) -> JSON:
        """Queue job `name` (or dry-run it); the queue entry, without waiting."""
        query = {**({"platform": platform} if platform else {}), **({"dryrun": "1"} if dry_run else {})}
        path = f"/job/{urllib.parse.quote(name, safe='')}" + ("?" + urllib.parse.urlencode(query) if query else "")
        body: JSON = {"params": dict(params or {})}
        if self.agent_id:
            body["agent_id"] = self.agent_id
        return self.request("POST", path, body, {"X-Mutation-Confirmed": "yes"} if confirm else None)

    def wait(self, job_id: str, poll_s: float = 30.0) -> JSON:
        """Long-poll `/build_status` until the entry is finished; the final entry."""
        while True:
            entry = self.request("GET", f"/build_status?id={urllib.parse.quote(job_id)}&wait={poll_s:g}",
                                 timeout=poll_s + 30)
            if not entry.get("poll_timed_out"):  # finished (or gone); a timed-out poll polls again
                return entry

    def run(self, name: str, params: dict[str, str] | None = None, *, platform: str | None = None,
            confirm: bool = False) -> JSON:
        """Queue job `name`, wait for it; the finished entry (`status`, `returncode`, `log_tail`)."""
        return self.wait(self.submit(name, params, platform=platform, confirm=confirm)["id"])

    def status(self) -> JSON:
        return self.request("GET", "/status")

    def queue(self) -> JSON:
        return self.request("GET", "/queue")

    def cancel(self, job_id: str | None = None) -> JSON:
        """Cancel pending job `job_id`, or the running one when None."""
        return self.request("DELETE", f"/queue/{urllib.parse.quote(job_id)}" if job_id else "/current/cancel")

    def logs(self, alias: str, n: int = 200) -> str:
        """The last `n` lines of log `alias`."""
        return str(self.request("GET", f"/logs?file={urllib.parse.quote(alias)}&n={int(n)}")["text"])

    def events(self, type: str | None = None, n: int = 50, since: float | None = None) -> list[JSON]:  # noqa: A002 - `type` is the wire name of the query parameter
        query = {"n": str(n), **({"type": type} if type else {}), **({"since": repr(since)} if since else {})}
        return list(self.request("GET", "/events?" + urllib.parse.urlencode(query))["events"])

    def log(self, message: str, level: str = "log", source: str = "agent") -> None:
        """Add a line to the project's event feed (`POST /log`)."""
        self.request("POST", "/log", {"message": message, "level": level, "source": source, "timestamp": time.time()})

    def start(self) -> JSON:
        """Start (or restart) the project's runtime process."""
        return self.request("POST", "/run")

    def stop(self) -> JSON:
        return self.request("POST", "/stop")


# -- the `builder-api` command ---------------------------------------------------------------
def _show(value: Any) -> int:
    print(json.dumps(value, indent=2))
    return 0


def _command_jobs(api: Client, args: argparse.Namespace) -> int:
    for name, job in api.jobs()["jobs"].items():
        if "platforms" in job:
            print(f"{name}  (platforms: {', '.join(job['platforms'])})  {job.get('description', '')}")
            continue
        params = ", ".join(f"{p}{'' if spec['required'] else '?'}=/{spec['regex']}/"
                           for p, spec in job["placeholders"].items())
        flags = " [mutates files: --confirm]" if job["mutates_filesystem"] else ""
        print(f"{name}({params}){flags}  {job.get('description', '')}")
    return 0


def _command_run(api: Client, args: argparse.Namespace) -> int:
    params = {}
    for pair in args.params:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ApiError(f"parameters are key=value, got {pair!r}")
        params[key] = value
    entry = api.submit(args.name, params, platform=args.platform, confirm=args.confirm, dry_run=args.dry_run)
    if args.dry_run or args.no_wait:
        return _show(entry)
    entry = api.wait(entry["id"])
    print(entry.get("log_tail", ""))
    print(f"[builder-api] {args.name}: {entry['status']} (rc={entry.get('returncode')}, "
          f"{entry.get('elapsed_s')} s)", file=sys.stderr)
    return 0 if entry["status"] == "done" else 1


def _command_events(api: Client, args: argparse.Namespace) -> int:
    since: float | None = None
    while True:
        records = api.events(args.type, args.n, since)
        for record in records:
            if since is None or record.get("ts", 0) > since:
                print(json.dumps(record), flush=True)
        if records:
            since = max(since or 0, max(r.get("ts", 0) for r in records))
        if not args.follow:
            return 0
        since = since if since is not None else time.time()
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    """builder-api jobs | run NAME [key=value ...] | status | queue | cancel [ID] | logs ALIAS
    | events [--follow] | start | stop. Exit 0 ok, 1 the job failed, 2 usage or API error."""
    parser = argparse.ArgumentParser(prog="builder-api", description="client for the host's builder-api")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("jobs").set_defaults(run=_command_jobs)
    run = sub.add_parser("run")
    run.add_argument("name")
    run.add_argument("params", nargs="*", metavar="key=value")
    run.add_argument("--platform")
    run.add_argument("--confirm", action="store_true", help="confirm a job that mutates files")
    run.add_argument("--dry-run", action="store_true")
    run.add_argument("--no-wait", action="store_true")
    run.set_defaults(run=_command_run)
    sub.add_parser("status").set_defaults(run=lambda api, a: _show(api.status()))
    sub.add_parser("queue").set_defaults(run=lambda api, a: _show(api.queue()))
    cancel = sub.add_parser("cancel")
    cancel.add_argument("id", nargs="?")
    cancel.set_defaults(run=lambda api, a: _show(api.cancel(a.id)))
    logs = sub.add_parser("logs")
    logs.add_argument("alias")
    logs.add_argument("-n", type=int, default=200)
    logs.set_defaults(run=lambda api, a: print(api.logs(a.alias, a.n)) or 0)
    events = sub.add_parser("events")
    events.add_argument("--type")
    events.add_argument("-n", type=int, default=50)
    events.add_argument("--follow", action="store_true")
    events.set_defaults(run=_command_events)
    sub.add_parser("start").set_defaults(run=lambda api, a: _show(api.start()))
    sub.add_parser("stop").set_defaults(run=lambda api, a: _show(api.stop()))
    args = parser.parse_args(argv)
    try:
        return int(args.run(Client(), args))
    except ApiError as error:
        print(f"builder-api: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
