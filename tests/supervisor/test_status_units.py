"""`llm-docker status`'s text table (`supervisor.status.status_lines`), without an engine; the
engine side — whose slots are listed — is in test_supervise_docker.py."""

from __future__ import annotations

import dataclasses

from supervisor.status import RunningSlot, status_lines


def slot(user: str, project: str, number: int | None, ports: tuple[str, ...] = ()) -> RunningSlot:
    return RunningSlot(tool="claude", project=project, slot=number, container=f"llm-docker-claude-{number}",
                       uptime_seconds=42, ports=list(ports), health="running", network="no internet", uid=0,
                       user=user)


def test_a_header_row_then_one_aligned_row_per_slot() -> None:
    lines = status_lines([slot("root", "/p/app", 1), slot("root", "/p/a-longer-project", 12,
                                                           ports=("127.0.0.1:2222->22/tcp",))])
    assert lines[0].split() == ["TOOL", "SLOT", "PROJECT", "CONTAINER", "UPTIME", "PORTS", "HEALTH"]
    rows = [line for line in lines[1:] if not line.startswith(" ")]
    assert [row.split()[:3] for row in rows] == [["claude", "1", "/p/app"], ["claude", "12", "/p/a-longer-project"]]
    assert len({line.index("llm-docker-claude-") for line in [*rows]}) == 1  # one column
    assert lines[0].index("CONTAINER") == rows[0].index("llm-docker-claude-")
    assert "127.0.0.1:2222->22/tcp" in rows[1]
    network = [line for line in lines if line.strip().startswith("network:")]
    assert len(network) == 2 and all(line.index("network:") == lines[0].index("PROJECT") for line in network)


def test_all_users_adds_a_user_column() -> None:
    lines = status_lines([slot("root", "/p/app", 1), slot("64101", "/q/app", None)], all_users=True)
    assert lines[0].split()[:3] == ["USER", "TOOL", "SLOT"]
    rows = [line.split() for line in lines[1:] if not line.startswith(" ")]
    assert [row[:4] for row in rows] == [["root", "claude", "1", "/p/app"], ["64101", "claude", "-", "/q/app"]]
    assert "USER" not in status_lines([slot("root", "/p/app", 1)])[0]


def test_the_cages_words_are_printed_printable() -> None:
    """The SSH line quotes the probe's last error — the cage's sshd chose its text."""
    import asyncssh

    from supervisor.tasks.ssh_probe import MAX_REASON_CHARS, _describe

    reason = _describe(asyncssh.DisconnectError(asyncssh.DISC_BY_APPLICATION, "\x1b]52;c;QUFBQQ==\x07" + "x" * 500))
    assert reason.startswith("?]52;c;QUFBQQ==?") and len(reason) == MAX_REASON_CHARS
    row = dataclasses.replace(slot("root", "/p/app", 1),
                              ssh={"port": 2222, "reachable": False, "error": "\x1b[2K\rforged", "checked_at": "now"})
    text = "\n".join(status_lines([row]))
    assert "\x1b" not in text and "\r" not in text and "?[2K?forged" in text
