"""The questions of `llm-docker init`, asked with `rich` prompts (`cli/init.py` runs them).

Each question shows its setting's name and its current value (secrets masked): Enter keeps
it, `-` clears it; an answer is validated as it is typed and asked again until valid. Without
a console (`--yes`) the same questions take their defaults, so both ways answer — and write —
the same keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from launch.errors import ConfigError, LlmDockerError
from launch.init_plan import (
    DEVPACKS,
    TMUX_HELPERS,
    default_text,
    enabled_names,
    group_answers,
    mask,
    parse_choices,
    truthy,
)
from launch.ssh import parse_authorized_keys

if TYPE_CHECKING:
    from rich.console import Console

MAX_PUBLIC_KEY_BYTES = 16 * 1024


def public_key_files(user_home: Path) -> list[tuple[str, str]]:
    """(file name, key) of each valid `~/.ssh/*.pub` (yours: read as they are, bounded)."""
    keys = []
    for path in sorted((user_home / ".ssh").glob("*.pub")):
        try:
            if path.stat().st_size > MAX_PUBLIC_KEY_BYTES:
                continue
            parsed = parse_authorized_keys(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        keys += [(path.name, key) for key in parsed]
    return keys


def key_body(key: str) -> str:
    """A key without its comment: two lines with the same body are the same key."""
    return " ".join(key.split()[:2])


def _keys_of(value: str) -> list[str]:
    try:
        return list(parse_authorized_keys(value))
    except ValueError:
        return []


#: The questions, in the order they are asked (`Wizard.run`).
STEPS = ("Workspace", "Model providers", "SSH", "builder-api", "Network policy", "tmux helpers", "Devpacks")


class Wizard:
    """Asks every question its flag did not answer; each answer is validated as it is typed
    (and asked again until valid). With `console=None` (`--yes`) nothing is asked: every
    question takes its default — the same questions, so both ways write the same keys."""

    def __init__(self, console: Console | None, validate: Callable[[str, str], str], current: Mapping[str, str],
                 given: Mapping[str, str], generated: frozenset[str] = frozenset()) -> None:
        self.console = console
        self.validate = validate  # the value as written, or LlmDockerError
        self.current = current  # the files' values, then the defaults of `_wizard_defaults`
        self.given = given
        self.generated = generated  # keys whose current value was generated just now
        self.answers: dict[str, str] = {}

    def value(self, key: str) -> str:
        """The answer so far: given, asked, else current, else the default."""
        for source in (self.given, self.answers, self.current):
            if key in source:
                return source[key]
        return default_text(key)

    def _step(self, number: int) -> None:
        if self.console is not None:
            self.console.rule(f"{number}/{len(STEPS)}  {STEPS[number - 1]}")

    def _settled(self, *keys: str) -> bool:
        """Without a console, or when flags gave every key: record the values, ask nothing."""
        if self.console is not None and not all(key in self.given for key in keys):
            return False
        for key in keys:
            self.answers[key] = self.given[key] if key in self.given else self.validate(key, self.value(key))
        return True

    def _valid(self, key: str, value: str) -> str | None:
        try:
            return self.validate(key, value)
        except LlmDockerError as error:
            assert self.console is not None
            self.console.print(f"  {error}", style="red", markup=False, highlight=False)
            return None

    def _ask(self, label: str, default: str, *, password: bool = False, show_default: bool = True) -> str:
        from rich.prompt import Prompt
        from rich.text import Text

        return Prompt.ask(Text(label), console=self.console, default=default, password=password,
                          show_default=show_default)

    def text(self, key: str, label: str) -> None:
        """A plain value: Enter keeps the current one, `-` clears it."""
        if self._settled(key):
            return
        while True:
            answer = self._ask(f"{label} ({key}; - = none)", default=self.value(key) or "-")
            valid = self._valid(key, "" if answer.strip() == "-" else answer)
            if valid is not None:
                self.answers[key] = valid
                return

    def secret(self, key: str, label: str) -> None:
        """A secret, typed hidden: Enter keeps the current (or a generated) one, `-` clears."""
        if self._settled(key):
            return
        current = self.value(key)
        hint = f"Enter keeps {mask(current)}" if current else "Enter skips"
        if key in self.generated and current == self.current.get(key):
            hint = "Enter keeps a newly generated one"
        while True:
            answer = self._ask(f"{label} ({key}; {hint}; - = none)", password=True, default="", show_default=False)
            answer = current if not answer.strip() else "" if answer.strip() == "-" else answer
            valid = self._valid(key, answer)
            if valid is not None:
                self.answers[key] = valid
                return

    def boolean(self, key: str, label: str) -> None:
        from rich.prompt import Confirm
        from rich.text import Text

        if self._settled(key):
            return
        yes = Confirm.ask(Text(f"{label} ({key})"), console=self.console, default=truthy(self.value(key)))
        self.answers[key] = "true" if yes else "false"

    def choices(self, table: Mapping[str, str], label: str) -> None:
        if self._settled(*table.values()):
            return
        current = ", ".join(enabled_names({key: self.value(key) for key in table.values()}, table)) or "none"
        while True:
            answer = self._ask(f"{label} — from: {', '.join(table)}; or none", default=current)
            try:
                self.answers.update(group_answers(parse_choices(answer), table))
                return
            except ConfigError as error:
                assert self.console is not None
                self.console.print(f"  {error}", style="red", markup=False, highlight=False)

    def ssh_keys(self, user_home: Path) -> None:
        key = "LLM_DOCKER_SSH_AUTHORIZED_KEYS"
        if self._settled(key):
            return
        assert self.console is not None
        trusted = _keys_of(self.value(key))
        files = public_key_files(user_home)
        in_files = {key_body(item) for _, item in files}
        candidates = [(f"({name})", item) for name, item in files]
        candidates += [("(trusted now)", item) for item in trusted if key_body(item) not in in_files]
        ticked = {key_body(item) for item in trusted}
        chosen = [str(number) for number, (_, item) in enumerate(candidates, 1) if key_body(item) in ticked]
        picked: list[str] = []
        if candidates:
            self.console.print("Public keys that may log in to your slots (besides llm-docker's own):")
            for number, (origin, item) in enumerate(candidates, 1):
                kind, data, *comment = item.split(None, 2)
                self.console.print(f"  {number}) {kind} …{data[-12:]} {' '.join(comment)} {origin}",
                                   markup=False, highlight=False)
            while True:
                words = parse_choices(self._ask("Trust which? (numbers like 1,2; none)",
                                                default=",".join(chosen) or "none"))
                if all(word.isdigit() and 1 <= int(word) <= len(candidates) for word in words):
                    picked = [candidates[int(word) - 1][1] for word in words]
                    break
                self.console.print("  numbers from the list, separated by commas, or none", style="red")
        while True:
            pasted = self._ask("Paste another public key (Enter = none)", default="", show_default=False).strip()
            if not pasted:
                break
            if self._valid(key, pasted) is not None:
                picked += [item for item in _keys_of(pasted) if key_body(item) not in map(key_body, picked)]
                break
        self.answers[key] = "\n".join(picked)

    def run(self, user_home: Path) -> dict[str, str]:
        """Every question in order; the answers (given ones included), in that order."""
        self._step(1)
        self.text("WORKSPACE_DIR", "Workspace folder, mirrored read-only into every project's container")
        self._step(2)
        self.secret("ANTHROPIC_API_KEY", "Anthropic API key (skip if you use /login)")
        self.text("ANTHROPIC_BASE_URL", "Anthropic endpoint (a proxy, or z.ai's Anthropic API)")
        self.secret("OPENAI_API_KEY", "OpenAI API key")
        self.text("OPENAI_BASE_URL", "OpenAI endpoint")
        self.secret("ZAI_API_KEY", "Z.AI API key")
        self._step(3)
        self.boolean("LLM_DOCKER_SSH_ENABLED", "Run sshd in every slot (key-only)?")
        if truthy(self.value("LLM_DOCKER_SSH_ENABLED")):
            self.ssh_keys(user_home)
            self.text("LLM_DOCKER_SSH_HOST_PORT", "Host port of slot 1 (slot N uses +N-1)")
        self._step(4)
        self.secret("BUILDER_API_PASSWORD", "builder-api password")
        self.boolean("BUILDER_API_AUTOSTART", "Serve builder-api with every launch?")
        self._step(5)
        self.boolean("INTERNET_ACCESS", "May the agent reach the internet?")
        self.boolean("LAN_ACCESS", "May the agent reach your LAN?")
        self.text("EGRESS_ALLOW", "Reach only these (domains, IPs, @presets)")
        self.text("HOST_PORTS", "Host ports the agent may reach")
        self._step(6)
        self.choices(TMUX_HELPERS, "tmux helpers")
        if truthy(self.value("INSTALL_TMUX_CODEMAN")):
            self.text("CODEMAN_USERNAME", "Codeman user name")
            self.secret("CODEMAN_PASSWORD", "Codeman password")
        self._step(7)
        self.choices(DEVPACKS, "Devpacks")
        return {**self.answers, **{key: value for key, value in self.given.items() if key not in self.answers}}
