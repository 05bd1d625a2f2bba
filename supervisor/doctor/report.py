"""`llm-docker doctor`'s findings and how they are shown — pure: no engine, no file, no clock.

A check group (engine, disk, images, ...) yields one `Finding` per thing it looked at: one
line each, so every problem is ONE line that carries its own fix. The exit code is decided
here and only here, so the command's help, the README and `--json` readers agree:

* 0 — no check failed (warnings may have been printed: the install works, but look);
* 1 — at least one check failed, or, with `--strict`, at least one warned.

`skip` marks a check that did not run because another one already reports the cause (the
engine is unreachable, the config does not load): never counted a second time.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence

from launch.errors import EXIT_FAILURE

#: Every check group, in the order they are shown.
GROUPS = ("config", "api-keys", "state", "engine", "disk", "images", "network", "ssh", "leftovers")


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclasses.dataclass(frozen=True)
class Finding:
    """One line of the report: which group, how it went, what was seen, how to fix it."""

    name: str
    status: Status
    message: str
    fix: str = ""


def ok(name: str, message: str) -> Finding:
    return Finding(name, Status.OK, message)


def warn(name: str, message: str, fix: str) -> Finding:
    return Finding(name, Status.WARN, message, fix)


def fail(name: str, message: str, fix: str) -> Finding:
    return Finding(name, Status.FAIL, message, fix)


def skip(name: str, message: str) -> Finding:
    return Finding(name, Status.SKIP, message)


def split_fix(text: str) -> tuple[str, str]:
    """The product's one-line errors read "what — how to fix it": (what, fix)."""
    message, _, fix = text.partition(" — ")
    return message.strip(), fix.strip()


def exit_code(findings: Iterable[Finding], *, strict: bool = False) -> int:
    statuses = {finding.status for finding in findings}
    if Status.FAIL in statuses or (strict and Status.WARN in statuses):
        return EXIT_FAILURE
    return 0


def _one_line(text: str) -> str:
    """Whatever a message quotes (an engine's answer, a file name) stays on its line and
    cannot drive the terminal."""
    return "".join(ch if ch.isprintable() else " " for ch in text.replace("\n", " ")).strip()


def text_lines(findings: Sequence[Finding], *, strict: bool = False) -> list[str]:
    """One line per finding (problems carry their fix), then one summary line."""
    width = max((len(finding.name) for finding in findings), default=0)
    lines = []
    for finding in findings:
        label = finding.status.value.upper() if finding.status in (Status.WARN, Status.FAIL) else finding.status.value
        line = f"{label:<5} {finding.name:<{width}}  {_one_line(finding.message)}"
        if finding.fix and finding.status in (Status.WARN, Status.FAIL):
            line += f" — fix: {_one_line(finding.fix)}"
        lines.append(line)
    lines.append(summary(findings, strict=strict))
    return lines


def summary(findings: Sequence[Finding], *, strict: bool = False) -> str:
    failed = sum(finding.status is Status.FAIL for finding in findings)
    warned = sum(finding.status is Status.WARN for finding in findings)
    if not failed and not warned:
        return "OK: every check passed"
    counted = ", ".join(part for part in (f"{failed} failed" if failed else "",
                                          f"{warned} warning{'s' if warned != 1 else ''}" if warned else "") if part)
    if exit_code(findings, strict=strict) == 0:
        return f"OK with {counted} (exit 0: warnings do not fail; --strict makes them)"
    return f"PROBLEMS: {counted} (exit {EXIT_FAILURE})"


def json_rows(findings: Sequence[Finding]) -> list[dict[str, str]]:
    """`--json`: a list of {name, status, message, fix} (fix "" when there is nothing to do)."""
    return [{"name": f.name, "status": f.status.value, "message": _one_line(f.message), "fix": _one_line(f.fix)}
            for f in findings]
