"""`llm-docker init`: the setup wizard — and the same decisions as flags, for scripts.

Upstream's installer asked eleven steps in bash; this asks the decisions that are still
decisions here (workspace, provider keys and endpoints, SSH keys to trust, the builder-api
password, the network policy, tmux helpers and devpacks, building the images) with `rich`
prompts, and writes `llm-docker.conf` and `.env` in `$LLM_DOCKER_HOME`.

* **Defaults are the current values.** Re-running shows what is set and keeps it on Enter;
  secrets are shown masked (`mask`), Enter keeps them, `-` clears a value.
* **Flags answer questions.** A question whose flag was given is not asked; `--yes` asks
  nothing (current values, else the defaults; a fresh builder-api password). Secrets can come
  from the environment (`--secrets-from-env`) so they never appear in argv or `ps`.
* **Validated before anything is written.** Every value goes through `launch.config`'s own
  validation (plus the folder guards of a launch); the new files are then loaded once more,
  whole, exactly as a launch will load them. A bad value is one line and exit 2, with nothing
  written. Without a terminal and without `--yes`: one line, exit 2.
* **The user's files are edited, not rewritten.** Comments and unrelated lines are kept
  (`launch.init_plan`); both files are written atomically with mode 0600, never through a
  symlink.
* `--from-upstream DIR` imports an upstream install: its settings (mapped, with what was
  dropped and why) become the current values, and its slot files become slots of the state
  store (`supervisor.upstream_import`), each mapped to its project or reported.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cli.init_wizard import MAX_PUBLIC_KEY_BYTES, Wizard, key_body, public_key_files
from launch.config import CONF_FILE, SECRETS_FILE, default_home, load_config, settings
from launch.errors import ConfigError, LlmDockerError, StateError, UsageError
from launch.guards import check_docker_dir, check_host_folder
from launch.init_plan import (
    DEVPACKS,
    TMUX_HELPERS,
    InitPlan,
    check_base_url,
    default_text,
    describe,
    file_values,
    group_answers,
    is_boolean,
    is_known,
    lenient_entries,
    looks_like_placeholder,
    map_upstream_settings,
    parse_choices,
    plan_init,
    truthy,
)
from launch.secrets import is_secret
from launch.ssh import parse_authorized_keys

if TYPE_CHECKING:
    from rich.console import Console

    from supervisor.upstream_import import SlotImport, UpstreamLayout

SECRET_SETTINGS = tuple(info.key for info in settings() if info.secret)
#: What a fresh install trusts without being asked (upstream pre-ticked the same file).
DEFAULT_PUBLIC_KEY = "id_ed25519.pub"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `llm-docker init`: one per wizard question, plus `--set` for any setting."""
    parser.description = (
        "Write llm-docker.conf and .env in $LLM_DOCKER_HOME: asked question by question (current values are the "
        "defaults; Enter keeps them, - clears), or with --yes from the flags and the current values. Every value "
        "is checked before anything is written; both files are 0600, your comments and other lines are kept. "
        "Keys can come from the environment (--secrets-from-env) instead of argv.")
    parser.add_argument("-y", "--yes", action="store_true",
                        help="ask nothing: current values (else defaults) for every unanswered question")
    parser.add_argument("--build", action=argparse.BooleanOptionalAction, default=None,
                        help="build the images at the end (default: yes with --yes, asked otherwise)")
    parser.add_argument("--workspace", metavar="DIR", help="WORKSPACE_DIR: host folder mirrored read-only into "
                                                           "every project's container ('none' = off)")
    parser.add_argument("--anthropic-key", metavar="KEY", help="ANTHROPIC_API_KEY (visible in ps: prefer "
                                                               "--secrets-from-env)")
    parser.add_argument("--openai-key", metavar="KEY", help="OPENAI_API_KEY")
    parser.add_argument("--zai-key", metavar="KEY", help="ZAI_API_KEY")
    parser.add_argument("--anthropic-base-url", metavar="URL", help="ANTHROPIC_BASE_URL ('none' = the default)")
    parser.add_argument("--openai-base-url", metavar="URL", help="OPENAI_BASE_URL ('none' = the default)")
    parser.add_argument("--secrets-from-env", action="store_true",
                        help=f"take every secret set in the environment: {', '.join(SECRET_SETTINGS)}")
    parser.add_argument("--ssh", action=argparse.BooleanOptionalAction, default=None,
                        help="LLM_DOCKER_SSH_ENABLED: run sshd in every slot")
    parser.add_argument("--ssh-key", action="append", metavar="FILE",
                        help="a public key file to trust (repeat for more; 'none' = none of yours)")
    parser.add_argument("--ssh-host-port", metavar="PORT", help="LLM_DOCKER_SSH_HOST_PORT (slot 1's host port)")
    parser.add_argument("--builder-api-password", metavar="PASSWORD",
                        help="BUILDER_API_PASSWORD (default: the current one, else a generated one)")
    parser.add_argument("--builder-api-autostart", action=argparse.BooleanOptionalAction, default=None,
                        help="BUILDER_API_AUTOSTART: serve builder-api with every launch")
    parser.add_argument("--internet", action=argparse.BooleanOptionalAction, default=None, help="INTERNET_ACCESS")
    parser.add_argument("--lan", action=argparse.BooleanOptionalAction, default=None, help="LAN_ACCESS")
    parser.add_argument("--egress-allow", metavar="LIST", help="EGRESS_ALLOW ('none' = no allow-list)")
    parser.add_argument("--host-ports", metavar="PORTS", help="HOST_PORTS ('none' = no host port)")
    parser.add_argument("--tmux-helpers", metavar="LIST",
                        help=f"tmux helpers to build in: {', '.join(TMUX_HELPERS)}, or none")
    parser.add_argument("--devpacks", metavar="LIST", help=f"devpacks to build in: {', '.join(DEVPACKS)}, or none")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other setting (repeatable; an empty VALUE removes the key)")
    parser.add_argument("--from-upstream", type=Path, metavar="DIR",
                        help="import an upstream (bash) llm-docker install: DIR is its checkout")
    parser.add_argument("--upstream-state", type=Path, metavar="DIR",
                        help="upstream's state folder with the slot files (default: ~/.llm-docker)")


# -- validation ---------------------------------------------------------------------------


class Checker:
    """Validates one value the way a launch will: `launch.config`'s conversion of the key,
    the folder guards, an http(s) URL for endpoints, no placeholders."""

    def __init__(self, *, scratch: Path, state_home: Path, user_home: Path) -> None:
        self._scratch = scratch  # an empty folder: load_config reads no file there
        self.state_home = state_home
        self.user_home = user_home

    def normalise(self, key: str, value: str) -> str:
        """The value as it will be written (a folder with `~` expanded); `ConfigError` if bad."""
        value = value.strip()
        if not value:
            return ""
        if not is_known(key):
            raise ConfigError(f"unknown setting {key} (see `llm-docker config` for every setting)")
        if (is_secret(key) or key.endswith("_BASE_URL")) and looks_like_placeholder(value):
            raise ConfigError(f"{key}: that looks like a placeholder, not a real value")
        if key == "WORKSPACE_DIR":
            return self._workspace(value)
        if key == "DOCKER_DIR":
            check_docker_dir(value)
        if key.endswith("_BASE_URL"):
            try:
                check_base_url(value)
            except ValueError as error:
                raise ConfigError(f"{key}: {error}") from None
            return value
        if key == "LLM_DOCKER_SSH_AUTHORIZED_KEYS":
            value = value.replace("\\n", "\n")
        try:
            load_config(self._scratch, {key: value}, self.user_home)
        except ConfigError as error:
            raise ConfigError(str(error).removeprefix("environment variable ")) from None
        if is_boolean(key):
            return "true" if truthy(value) else "false"
        return value

    def _workspace(self, value: str) -> str:
        folder = Path(os.path.expanduser(value))
        check_host_folder(folder, role="WORKSPACE_DIR", user_home=self.user_home, state_home=self.state_home)
        if not folder.is_dir():
            raise ConfigError(f"WORKSPACE_DIR '{value}' is not an existing folder — create it first, or choose none")
        return str(folder)

    def whole(self, plan: InitPlan) -> None:
        """Load the planned files exactly as a launch will; `ConfigError` naming the line."""
        with tempfile.TemporaryDirectory(prefix="llm-docker-init-") as folder:
            for name, text in ((CONF_FILE, plan.conf_text), (SECRETS_FILE, plan.env_text)):
                path = Path(folder) / name
                path.write_text(text, encoding="utf-8")
                path.chmod(0o600)
            try:
                load_config(Path(folder), {}, self.user_home)
            except ConfigError as error:
                raise ConfigError(f"the new files would not load: {str(error).replace(folder + '/', '')}") from None


# -- current state ------------------------------------------------------------------------


def read_own(path: Path) -> str:
    """The text of one of our own files ("" if missing); a symlink there is refused (init
    replaces the file whole, which would silently turn your link into a file)."""
    if path.is_symlink():
        raise ConfigError(f"{path} is a symlink — init writes the file whole; replace the link by the file or edit "
                          "it by hand")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None


def read_key_files(names: Sequence[str]) -> str:
    """`--ssh-key FILE ...` → the value of LLM_DOCKER_SSH_AUTHORIZED_KEYS ('none' = "")."""
    if [name.lower() for name in names] == ["none"]:
        return ""
    keys: list[str] = []
    for name in names:
        path = Path(os.path.expanduser(name))
        try:
            if path.stat().st_size > MAX_PUBLIC_KEY_BYTES:
                raise ConfigError(f"--ssh-key {name}: larger than a public key")
            parsed = parse_authorized_keys(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"--ssh-key {name}: cannot read: {getattr(error, 'strerror', error)}") from None
        except ValueError as error:
            raise ConfigError(f"--ssh-key {name}: {error}") from None
        if not parsed:
            raise ConfigError(f"--ssh-key {name}: no public key in it")
        keys += [key for key in parsed if key_body(key) not in map(key_body, keys)]
    return "\n".join(keys)


def new_password() -> str:
    """A fresh shared password (192 random bits, URL-safe)."""
    while True:
        password = secrets.token_urlsafe(24)
        if not looks_like_placeholder(password):
            return password


# -- answers from flags -------------------------------------------------------------------

_TEXT_FLAGS = {"workspace": "WORKSPACE_DIR", "anthropic_key": "ANTHROPIC_API_KEY", "openai_key": "OPENAI_API_KEY",
               "zai_key": "ZAI_API_KEY", "anthropic_base_url": "ANTHROPIC_BASE_URL",
               "openai_base_url": "OPENAI_BASE_URL", "ssh_host_port": "LLM_DOCKER_SSH_HOST_PORT",
               "builder_api_password": "BUILDER_API_PASSWORD", "egress_allow": "EGRESS_ALLOW",
               "host_ports": "HOST_PORTS"}
_BOOLEAN_FLAGS = {"ssh": "LLM_DOCKER_SSH_ENABLED", "builder_api_autostart": "BUILDER_API_AUTOSTART",
                  "internet": "INTERNET_ACCESS", "lan": "LAN_ACCESS"}


def flag_answers(arguments: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """What the command line (and, with --secrets-from-env, the environment) answers."""
    answers: dict[str, str] = {}
    if arguments.secrets_from_env:
        answers.update({key: environ[key] for key in SECRET_SETTINGS if environ.get(key, "").strip()})
    for item in arguments.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        answers[key.strip()] = value
    for flag, key in _TEXT_FLAGS.items():
        value = getattr(arguments, flag)
        if value is not None:
            answers[key] = "" if value.strip().lower() == "none" and not is_secret(key) else value
    for flag, key in _BOOLEAN_FLAGS.items():
        value = getattr(arguments, flag)
        if value is not None:
            answers[key] = "true" if value else "false"
    if arguments.ssh_key:
        answers["LLM_DOCKER_SSH_AUTHORIZED_KEYS"] = read_key_files(arguments.ssh_key)
    for flag, table in (("tmux_helpers", TMUX_HELPERS), ("devpacks", DEVPACKS)):
        value = getattr(arguments, flag)
        if value is not None:
            answers.update(group_answers(parse_choices(value), table))
    return answers


# -- the command --------------------------------------------------------------------------


def _wizard_defaults(current: Mapping[str, str], user_home: Path) -> dict[str, str]:
    """What a question defaults to beyond the current values: a fresh builder-api password
    (and Codeman's), and on a fresh install the ed25519 key of `~/.ssh` (as upstream)."""
    defaults: dict[str, str] = {}
    for key in ("BUILDER_API_PASSWORD", "CODEMAN_PASSWORD"):
        if not current.get(key):
            defaults[key] = new_password()
    if "LLM_DOCKER_SSH_AUTHORIZED_KEYS" not in current:
        keys = [key for name, key in public_key_files(user_home) if name == DEFAULT_PUBLIC_KEY]
        if keys:
            defaults["LLM_DOCKER_SSH_AUTHORIZED_KEYS"] = "\n".join(keys)
    return defaults


def _upstream(arguments: argparse.Namespace, checker: Checker, out: TextIO) -> tuple[dict[str, str], UpstreamLayout]:
    """Upstream's settings (each validated; what fails is dropped, and said) and its layout."""
    from supervisor.upstream_import import UpstreamLayout, checkout_files

    checkout = arguments.from_upstream.expanduser().absolute()
    files = checkout_files(checkout)
    conf, skipped = lenient_entries(files.conf_text, origin="src/llm-docker.conf", user_home=checker.user_home)
    env, skipped_env = lenient_entries(files.env_text, origin="src/.env", user_home=checker.user_home)
    mapped = map_upstream_settings(conf, env)
    for problem in files.problems:
        print(f"upstream: {problem}", file=out)
    for where, reason in skipped + skipped_env:
        print(f"upstream: {where}: {reason}", file=out)
    for key, reason in mapped.dropped:
        print(f"upstream: dropped {key}: {reason}", file=out)
    for note in mapped.notes:
        print(f"upstream: {note}", file=out)
    values: dict[str, str] = {}
    for key, value in mapped.values.items():
        try:
            values[key] = checker.normalise(key, value)
        except LlmDockerError as error:
            print(f"upstream: dropped {key}: {error}", file=out)
    workspace = Path(mapped.workspace) if mapped.workspace.startswith("/") else None
    state = (arguments.upstream_state or checker.user_home / ".llm-docker").expanduser().absolute()
    return values, UpstreamLayout(state, workspace, mapped.docker_dir)


def _write(state_home: Path, plan: InitPlan) -> list[Path]:
    """Both files, each atomically with mode 0600 (the secrets first)."""
    from supervisor.atomic import replace_atomically

    written = []
    path = state_home
    try:
        state_home.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, text in ((SECRETS_FILE, plan.env_text), (CONF_FILE, plan.conf_text)):
            path = state_home / name
            if text or path.exists():
                replace_atomically(path, text.encode("utf-8"), 0o600)
                written.append(path)
    except OSError as error:
        raise StateError(f"{path}: cannot write: {error.strerror or error}") from None
    return written


def _report_slots(result: SlotImport, out: TextIO) -> None:
    for item in result.saved:
        note = "" if item.workdir == item.upstream_workdir else (
            f" (upstream ran it in {item.upstream_workdir}, this install works in {item.workdir}: "
            "the tool will not find it there)")
        print(f"imported {item.slot.label}: {item.project} session {item.slot.session_id}{note}", file=out)
    for item in result.kept:
        print(f"kept {item.slot.label} of {item.project}: this install already saved a session for it", file=out)
    for unmapped in result.unmapped:
        print(f"could not map {unmapped.label}: {unmapped.reason}", file=out)
    for note in result.notes:
        print(f"note: {note}", file=out)


def plan_answers(arguments: argparse.Namespace, *, environ: Mapping[str, str], stdout: TextIO,
                 state_home: Path, user_home: Path) -> tuple[InitPlan, UpstreamLayout | None]:
    """Everything before the first write: current files, upstream, flags, questions, the
    plan — every value validated, the planned files loaded once as a launch will."""
    conf_path, env_path = state_home / CONF_FILE, state_home / SECRETS_FILE
    conf_text, env_text = read_own(conf_path), read_own(env_path)
    current = {**file_values(conf_text, origin=str(conf_path), user_home=user_home),
               **file_values(env_text, origin=str(env_path), user_home=user_home)}
    with tempfile.TemporaryDirectory(prefix="llm-docker-init-") as scratch:
        checker = Checker(scratch=Path(scratch), state_home=state_home, user_home=user_home)
        given = {key: checker.normalise(key, value) for key, value in flag_answers(arguments, environ).items()}
        imported: dict[str, str] = {}
        layout = None
        if arguments.from_upstream is not None:
            imported, layout = _upstream(arguments, checker, stdout)
            # what upstream had beyond our defaults (or already set here) becomes the current value
            imported = {key: value for key, value in imported.items() if value != default_text(key) or key in current}
        current.update(imported)
        defaults = _wizard_defaults(current, user_home)
        wizard = Wizard(None if arguments.yes else _console(stdout), checker.normalise, {**defaults, **current}, given,
                        generated=frozenset(defaults))
        answers = wizard.run(user_home)
        answers = {**answers, **{key: value for key, value in imported.items() if key not in answers}}
        if truthy(answers.get("LLM_DOCKER_SSH_ENABLED", "false")) and not truthy(current.get("INSTALL_SSH", "true")):
            answers["INSTALL_SSH"] = "true"  # sshd must be in the image
        plan = plan_init(conf_text, env_text, answers, user_home=user_home)
        checker.whole(plan)
    return plan, layout


def run_init(arguments: argparse.Namespace, *, environ: Mapping[str, str] | None = None,
             stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """`llm-docker init`: ask (or take the flags), validate, write, import, build."""
    environ = os.environ if environ is None else environ
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    user_home = Path.home()
    state_home = default_home(environ, user_home)
    if not arguments.yes and not (stdin.isatty() and stdout.isatty()):
        raise UsageError("init asks questions and needs a terminal — run it with --yes (and flags) from a script")
    plan, layout = plan_answers(arguments, environ=environ, stdout=stdout, state_home=state_home,
                                user_home=user_home)
    build = arguments.build
    if not arguments.yes:
        from rich.prompt import Confirm
        from rich.text import Text

        console = _console(stdout)
        _summary(console, plan)
        if not Confirm.ask(Text(f"Write {state_home / CONF_FILE} and {SECRETS_FILE}?"), console=console, default=True):
            print("nothing written", file=stdout)
            return 1
        if build is None:
            build = Confirm.ask("Build the images now (a few minutes)?", console=console, default=True)
    for path in _write(state_home, plan):
        print(f"wrote {path}", file=stdout)
    _warn_environment(plan, environ, arguments, stdout)
    if layout is not None:
        from supervisor.upstream_import import import_slots, our_location

        _report_slots(import_slots(state_home, layout, our_location(environ, user_home)), stdout)
    if build is False:
        print("images not built: `llm-docker image build` builds them (or the first launch does)", file=stdout)
        return 0
    from image import commands

    return commands.build(load_config(state_home, environ, user_home).config, state_home, tool="both",
                          no_cache=False, verbose=False)


def _console(stdout: TextIO) -> Console:
    from rich.console import Console

    return Console(file=stdout, highlight=False)


def _summary(console: Console, plan: InitPlan) -> None:
    console.rule("Summary")
    if not plan.changes:
        console.print("nothing changes", markup=False)
    for change in plan.changes:
        console.print(f"  {describe(change)}", markup=False)


def _warn_environment(plan: InitPlan, environ: Mapping[str, str], arguments: argparse.Namespace,
                      out: TextIO) -> None:
    """A value in the environment wins over the files: say so for what was just written."""
    for change in plan.changes:
        if change.key in environ and not (arguments.secrets_from_env and change.key in SECRET_SETTINGS):
            print(f"note: {change.key} is also set in your environment, which wins over the files", file=out)


def command_init(arguments: argparse.Namespace) -> int:
    """The `llm-docker init` handler: one line and its exit code for every refusal."""
    try:
        return run_init(arguments)
    except LlmDockerError as error:
        print(f"llm-docker init: {error}", file=sys.stderr)
        return error.exit_code
    except (KeyboardInterrupt, EOFError):
        print("\nllm-docker init: interrupted", file=sys.stderr)
        return 130
