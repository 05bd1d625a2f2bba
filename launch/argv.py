"""The `cld` / `ocd` flag grammar: argv in, an immutable `LaunchRequest` out.

Parsing happens before any side effect, so `-h` answers instantly and a typo can never
start Docker, build an image or touch a file. The grammar is the upstream one with its
bugs fixed (see `docs/upstream.md#flag-grammar` and the entries after it):

* everything after `--` reaches the tool, for both launchers;
* `-c` takes the next token as a session id only when it is not an existing directory,
  not a number and not a flag; for `cld` the id must be a UUID;
* `--slot` takes an integer 1..99, `--delay` a number of seconds;
* an unknown flag (or a word that is neither a directory nor a count) is an error that names
  it and shows the whole command line corrected: it and every argument after it moved behind
  `--`, shell-quoted, so that copying it runs what was meant (`cld -p hello` -> `cld -- -p hello`);
* the tmux modes are mutually exclusive and `cld`-only flags are refused by `ocd`.

The only thing the parser asks of the outside world is "is this an existing directory?",
through the `is_dir` callable, so tests can drive it with a fake file system.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import re
import shlex
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from launch.errors import UsageError
from launch.layout import Layout
from launch.tools import Tool

MAX_SLOT = 99
MAX_WINDOWS = 99
MAX_DELAY_SECONDS = 60.0
TEAM_SIZES = (2, 3, 4)
DEFAULT_DELAY_SECONDS = 0.5

_NUMBER = re.compile(r"^[0-9]+$")
_OPENCODE_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True,
               "false": False, "no": False, "off": False, "0": False}


class TmuxMode(enum.Enum):
    """How the tool is wrapped in tmux inside the container (`-t`, `-tt`, ...)."""

    NONE = "none"
    PLAIN = "tmux"
    TEAM = "team"
    RECON = "recon"
    CODEMAN = "codeman"
    CLAUDE_TMUX = "claude-tmux"


@dataclasses.dataclass(frozen=True)
class HelpRequest:
    tool: Tool


@dataclasses.dataclass(frozen=True)
class VersionRequest:
    tool: Tool


@dataclasses.dataclass(frozen=True)
class LaunchRequest:
    """What the user asked for, fully parsed and validated, before anything happens."""

    tool: Tool
    directory: Path | None = None
    windows: int = 1
    continue_session: bool = False
    resume_id: str | None = None
    slot: int | None = None  # with windows > 1: the first of the windows' slots
    delay: float = DEFAULT_DELAY_SECONDS
    tmux: TmuxMode = TmuxMode.NONE
    team_size: int | None = None
    api: bool | None = None
    api_background: bool = False
    danger: bool | None = None
    clean: bool = False
    build: bool = False
    rebuild_force: bool = False
    dry_run: bool = False
    #: with --dry-run: print the secrets instead of `***`
    show_secrets: bool = False
    passthrough: tuple[str, ...] = ()
    #: `llm-docker supervise --layout`; None = `cld`/`ocd` (the default layout when N > 1).
    layout: Layout | None = None

    @property
    def supervised(self) -> bool:
        """Slots run headless under one supervisor and are attached to from windows."""
        return self.windows > 1 or self.layout is not None

    def window_slots(self) -> tuple[int | None, ...]:
        """The slot of each window: `N` windows take slots 1..N (or S..S+N-1 with --slot S)."""
        if not self.supervised:
            return (self.slot,)
        first = self.slot or 1
        return tuple(range(first, first + self.windows))


ParseResult = LaunchRequest | HelpRequest | VersionRequest


@dataclasses.dataclass(frozen=True)
class _Flag:
    field: str
    takes: str = "none"  # none | value | optional-bool | optional-team-size | optional-session
    value: object = True
    cld_only: bool = False
    tmux: TmuxMode | None = None


_FLAGS: dict[str, _Flag] = {}


def _register(names: Sequence[str], flag: _Flag) -> None:
    for name in names:
        _FLAGS[name] = flag


_register(("-c", "--continue"), _Flag("continue_session", takes="optional-session"))
_register(("--slot",), _Flag("slot", takes="value"))
_register(("-d", "--delay"), _Flag("delay", takes="value"))
_register(("-t", "--tmux"), _Flag("tmux", tmux=TmuxMode.PLAIN))
_register(("-tt", "--tmux-team"), _Flag("tmux", takes="optional-team-size", tmux=TmuxMode.TEAM))
_register(("-tr", "--tmux-recon"), _Flag("tmux", tmux=TmuxMode.RECON, cld_only=True))
_register(("-tc", "--tmux-codeman"), _Flag("tmux", tmux=TmuxMode.CODEMAN))
_register(("-tcl", "--tmux-claude"), _Flag("tmux", tmux=TmuxMode.CLAUDE_TMUX, cld_only=True))
_register(("-a", "--api"), _Flag("api", takes="optional-bool"))
_register(("-ab", "--api-bg"), _Flag("api_background"))
_register(("--danger", "--dg"), _Flag("danger", value=True, cld_only=True))
_register(("--safe", "--no-danger", "--no-dg"), _Flag("danger", value=False, cld_only=True))
_register(("--clean",), _Flag("clean"))
_register(("--build",), _Flag("build"))
_register(("--rebuild-force",), _Flag("rebuild_force"))
_register(("--dry-run",), _Flag("dry_run"))
_register(("--show-secrets",), _Flag("show_secrets"))
_register(("-h", "--help"), _Flag("help"))
_register(("--version",), _Flag("version"))

_TMUX_FLAG_NAMES = "-t / -tt / -tr / -tc / -tcl"


def parse_argv(
    tool: Tool,
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    is_dir: Callable[[str], bool] = os.path.isdir,
) -> ParseResult:
    """Parse a launcher's argv (without the program name) into a request.

    `-h`/`--help` and `--version` anywhere before `--` win over everything else, so help is
    always available even on an otherwise broken command line. Raises `UsageError`.
    """
    options, passthrough = _split_passthrough(argv)
    if any(_flag_name(a) in ("-h", "--help") for a in options):
        return HelpRequest(tool)
    if any(_flag_name(a) == "--version" for a in options):
        return VersionRequest(tool)
    return _Parser(tool, cwd or Path.cwd(), is_dir).parse(options, passthrough)


def _split_passthrough(argv: Sequence[str]) -> tuple[list[str], tuple[str, ...]]:
    if "--" in argv:
        cut = list(argv).index("--")
        return list(argv[:cut]), tuple(argv[cut + 1:])
    return list(argv), ()


def _flag_name(arg: str) -> str:
    return _split_inline_value(arg)[0]


class _Parser:
    def __init__(self, tool: Tool, cwd: Path, is_dir: Callable[[str], bool]) -> None:
        self.tool = tool
        self.cwd = cwd
        self.is_dir = is_dir
        self.values: dict[str, object] = {}
        self.tmux_flags: dict[TmuxMode, str] = {}
        self.tokens: list[str] = []
        self.passthrough: tuple[str, ...] = ()

    def parse(self, options: list[str], passthrough: tuple[str, ...]) -> LaunchRequest:
        tokens = list(options)
        self.tokens, self.passthrough = tokens, passthrough
        index = 0
        while index < len(tokens):
            arg = tokens[index]
            index += 1
            if arg.startswith("-") and arg != "-":
                index = self._flag(arg, tokens, index)
            else:
                self._positional(arg, index - 1)
        self._check_combinations()
        return LaunchRequest(tool=self.tool, passthrough=passthrough, **self.values)  # type: ignore[arg-type]  # values: typed per flag

    # -- flags -------------------------------------------------------------------------

    def _flag(self, arg: str, tokens: list[str], index: int) -> int:
        name, inline = _split_inline_value(arg)
        flag = _FLAGS.get(name)
        if flag is None:
            raise UsageError(
                f"unknown flag '{arg}' — to pass it to {self.tool.value}, put it after --: "
                f"{self._moved_behind_dashes(index - 1)}"
            )
        if flag.cld_only and self.tool is not Tool.CLAUDE:
            raise UsageError(f"{name} is only available in cld (OpenCode has no such mode)")
        following = tokens[index] if index < len(tokens) else None
        if inline is not None and flag.takes == "none":
            raise UsageError(f"{name} takes no value (got '{arg}')")

        if flag.takes == "value":
            if inline is None:
                if following is None or following.startswith("-") and not _is_number(following):
                    raise UsageError(self._missing_value(name))
                inline, index = following, index + 1
            self._set_value(name, flag.field, inline)
        elif flag.takes == "optional-bool":
            word = inline if inline is not None else following
            if word is not None and word.lower() in _BOOL_WORDS:
                self.values[flag.field] = _BOOL_WORDS[word.lower()]
                index += inline is None
            elif inline is not None:
                raise UsageError(f"{name} expects true/false/yes/no/on/off/1/0, got '{inline}'")
            else:
                self.values[flag.field] = True
        elif flag.takes == "optional-team-size":
            if following is not None and _is_number(following):
                if int(following) not in TEAM_SIZES:
                    raise UsageError(
                        f"-tt supports sizes 2, 3 or 4 (got '{following}'); "
                        "omit the number for the default 1+3 layout"
                    )
                self.values["team_size"] = int(following)
                index += 1
            self._set_tmux(flag, name)
        elif flag.takes == "optional-session":
            self.values["continue_session"] = True
            candidate = inline if inline is not None else following
            if candidate is not None and self._is_session_id_candidate(candidate, inline is not None):
                self.values["resume_id"] = self._validate_session_id(candidate)
                self.values["continue_session"] = False
                index += inline is None
        elif flag.tmux is not None:
            self._set_tmux(flag, name)
        else:
            self.values[flag.field] = flag.value
        return index

    def _missing_value(self, name: str) -> str:
        if name == "--slot":
            return f"--slot needs a slot number 1..{MAX_SLOT} (e.g. {self.tool.launcher} --slot 2)"
        return f"{name} needs a number of seconds (e.g. {self.tool.launcher} 4 {name} 0.5)"

    def _set_value(self, name: str, field: str, raw: str) -> None:
        if field == "slot":
            if not _is_number(raw) or not 1 <= int(raw) <= MAX_SLOT:
                raise UsageError(f"--slot takes a whole number 1..{MAX_SLOT}, got '{raw}'")
            self.values["slot"] = int(raw)
            return
        try:
            seconds = float(raw)
        except ValueError:
            seconds = math.nan
        if not 0 <= seconds <= MAX_DELAY_SECONDS:
            raise UsageError(f"{name} takes seconds between 0 and {MAX_DELAY_SECONDS:g}, got '{raw}'")
        self.values["delay"] = seconds

    def _set_tmux(self, flag: _Flag, name: str) -> None:
        assert flag.tmux is not None
        self.tmux_flags.setdefault(flag.tmux, name)
        self.values["tmux"] = flag.tmux

    def _is_session_id_candidate(self, token: str, inline: bool) -> bool:
        if inline:
            return True
        return not (token.startswith("-") or _is_number(token) or self.is_dir(self._path(token)))

    def _validate_session_id(self, token: str) -> str:
        if self.tool is Tool.CLAUDE:
            try:
                return str(uuid.UUID(token))
            except ValueError:
                raise UsageError(
                    f"-c: '{token}' is neither a session UUID nor an existing directory"
                ) from None
        if not _OPENCODE_SESSION_ID.match(token):
            raise UsageError(
                f"-c: '{token}' is neither an OpenCode session id (letters, digits, _ and -) "
                "nor an existing directory"
            )
        return token

    # -- positionals -------------------------------------------------------------------

    def _moved_behind_dashes(self, position: int) -> str:
        """The command line as typed, with the token at `position` and everything after it
        (the rest of the options and what already followed `--`) behind one `--`, quoted for
        a POSIX shell: the suggestion keeps the tool's arguments (`-p hello`) together."""
        words = [self.tool.launcher, *self.tokens[:position], "--", *self.tokens[position:], *self.passthrough]
        return " ".join(_shell_quote(word) for word in words)

    def _positional(self, arg: str, position: int) -> None:
        if _is_number(arg):
            if "windows" in self.values:
                raise UsageError(f"window count given twice ({self.values['windows']} and {arg})")
            count = int(arg)
            if not 1 <= count <= MAX_WINDOWS:
                raise UsageError(f"window count must be 1..{MAX_WINDOWS}, got '{arg}'")
            self.values["windows"] = count
        elif self.is_dir(self._path(arg)):
            if "directory" in self.values:
                raise UsageError(f"two project directories given ('{self.values['directory']}' and '{arg}')")
            self.values["directory"] = Path(os.path.abspath(self._path(arg)))
        else:
            raise UsageError(
                f"'{arg}' is not an existing directory, a window count or a flag — to pass it to "
                f"{self.tool.value}, put it after --: {self._moved_behind_dashes(position)}"
            )

    def _path(self, token: str) -> str:
        return os.path.join(self.cwd, os.path.expanduser(token))

    def _check_combinations(self) -> None:
        if len(self.tmux_flags) > 1:
            given = " and ".join(self.tmux_flags.values())
            raise UsageError(f"{_TMUX_FLAG_NAMES} are mutually exclusive — pick one (got {given})")
        windows = self.values.get("windows", 1)
        assert isinstance(windows, int)
        first_slot = self.values.get("slot")
        if windows > 1 and isinstance(first_slot, int) and first_slot + windows - 1 > MAX_SLOT:
            raise UsageError(
                f"{windows} windows from --slot {first_slot} would need slots up to "
                f"{first_slot + windows - 1}; the last slot is {MAX_SLOT}"
            )
        if self.values.get("show_secrets") and not self.values.get("dry_run"):
            raise UsageError("--show-secrets only goes with --dry-run (it prints the secrets instead of ***)")
        if windows > 1 and "resume_id" in self.values:
            raise UsageError("one session id cannot be resumed in several windows — drop the window count")


def _split_inline_value(arg: str) -> tuple[str, str | None]:
    """`--slot=3` -> (`--slot`, `3`); short flags never carry an inline value."""
    if arg.startswith("--") and "=" in arg:
        name, value = arg.split("=", 1)
        return name, value
    return arg, None


def _shell_quote(word: str) -> str:
    """`shlex.quote`, except that a word with a control character (a newline) is written as
    bash's `$'...'`, so the error stays one line and the suggestion still runs as typed."""
    if word.isprintable():
        return shlex.quote(word)
    escaped = "".join("\\" + char if char in "\\'" else char if char.isprintable()
                      else char.encode("unicode_escape").decode("ascii") for char in word)
    return f"$'{escaped}'"


def _is_number(token: str) -> bool:
    return bool(_NUMBER.match(token))
