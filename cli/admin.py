"""The `llm-docker` admin command (argparse): `config`, and more subcommands over time.

Every refusal is an `LlmDockerError`: one line after `llm-docker:` and its exit code, as
defined in `launch/errors.py` (argparse's own usage errors exit 2 as well).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cli import init as init_command
from launch import __version__
from launch.config import DEFAULT_SOURCE, Config, default_home, describe_value, load_config, settings
from launch.errors import EXIT_USAGE, LlmDockerError
from launch.layout import Layout, default_layout
from launch.tools import Tool


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-docker", description="Admin commands of llm-docker.")
    parser.add_argument("--version", action="version", version=f"llm-docker {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config = commands.add_parser("config", help="print the effective config and where each value came from")
    config.add_argument("--json", action="store_true", help="machine-readable output")
    config.set_defaults(handler=command_config)
    init = commands.add_parser("init", help="set up llm-docker: workspace, keys, SSH, network, devpacks, image "
                                            "(asked, or --yes with flags)")
    init_command.add_arguments(init)
    init.set_defaults(handler=init_command.command_init)
    slots = commands.add_parser("slots", help="list every saved slot (tool, project, slot, session, updated)")
    slots.add_argument("--json", action="store_true", help="machine-readable output")
    slots.set_defaults(handler=command_slots)
    gc = commands.add_parser("gc", help="remove containers of dead launchers and finish their slot saves")
    gc.set_defaults(handler=command_gc)
    supervise = commands.add_parser("supervise", help="run N slots at once under one supervisor (like `cld N`)")
    supervise.add_argument("directory", nargs="?", type=Path, help="project folder (default: the current one)")
    supervise.add_argument("-n", "--slots", type=_count, default=1, metavar="N", help="how many slots: 1..N (1..99)")
    supervise.add_argument("--tool", choices=("claude", "opencode"), default="claude")
    supervise.add_argument("-c", "--continue", dest="continue_session", action="store_true",
                           help="each slot resumes its saved session")
    supervise.add_argument("--layout", choices=[layout.value for layout in Layout], default=None,
                           help="tmux (default when installed), macos, or none (headless)")
    supervise.add_argument("-d", "--delay", type=_delay, default=None, metavar="SEC",
                           help="seconds between opening windows (0..60, default 0.5)")
    supervise.set_defaults(handler=command_supervise)
    attach = commands.add_parser("attach", help="attach this terminal to a running slot")
    attach.add_argument("tool", choices=("claude", "opencode"))
    attach.add_argument("slot", type=_slot)
    attach.add_argument("directory", nargs="?", type=Path, help="project folder (default: the current one)")
    attach.add_argument("--launch", help=argparse.SUPPRESS)
    attach.set_defaults(handler=command_attach)
    status = commands.add_parser("status", help="list your running slots: tool, project, slot, container, uptime, "
                                               "ports, health")
    status.add_argument("--all", dest="all_users", action="store_true",
                        help="every user's slots on this engine, with a USER column (default: only yours)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--check", action="store_true",
                        help="re-run each slot's network policy checks from inside its cage (exit 1 if any fails)")
    status.set_defaults(handler=command_status)
    ssh = commands.add_parser("ssh", help="open a shell in a running slot over SSH: [TOOL] [SLOT] [DIR] [-- ssh args]",
                              usage="llm-docker ssh [TOOL] [SLOT] [DIR] [-- ssh args]")
    ssh.add_argument("words", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    ssh.set_defaults(handler=command_ssh)
    ssh_config = commands.add_parser("ssh-config", help="print an OpenSSH config with one Host block per running "
                                                        "slot (for IDEs)")
    ssh_config.add_argument("--write", action="store_true",
                            help="write it to $LLM_DOCKER_HOME/ssh-client/config instead of printing it")
    ssh_config.set_defaults(handler=command_ssh_config)
    api = commands.add_parser("api", help="serve a project's builder-api (until Ctrl-C / SIGTERM)")
    api.add_argument("--project", help="project name in the builder-api config (default: this folder's name)")
    api.add_argument("--config", type=Path, help="base config (default: $BUILDER_API_CONFIG or "
                                                 "~/.llm-docker/api_config/builder-api.toml)")
    api.add_argument("--port", type=int, help=argparse.SUPPRESS)
    api.set_defaults(handler=command_api)
    quarantine = commands.add_parser("quarantine", help="what the tripwire took out of your projects: list, "
                                                        "or accept a reviewed change back")
    quarantine.add_argument("action", nargs="?", choices=("list", "accept"), default="list")
    quarantine.add_argument("quarantine_id", nargs="?", metavar="ID", help="the quarantine to accept")
    quarantine.set_defaults(handler=command_quarantine)
    image = commands.add_parser("image", help="build and inspect the agent images")
    image_commands = image.add_subparsers(dest="image_command", required=True, metavar="IMAGE_COMMAND")
    build = image_commands.add_parser("build", help="build the agent image(s), reusing unchanged layers")
    build.add_argument("--tool", choices=("claude", "opencode", "both", "gateway"), default="both",
                       help="which image to build (default: both agents and the network gateway)")
    build.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    build.add_argument("--verbose", action="store_true", help="stream the full build output")
    build.set_defaults(handler=command_image_build)
    base = image_commands.add_parser("base", help="build the local Debian base with debootstrap (no registry needed)")
    base.add_argument("--verbose", action="store_true", help="stream the full debootstrap output")
    base.set_defaults(handler=command_image_base)
    image_status = image_commands.add_parser("status", help="is each image built, and does it match the config?")
    image_status.add_argument("--json", action="store_true", help="machine-readable output")
    image_status.set_defaults(handler=command_image_status)
    doctor = commands.add_parser("doctor", help="check the install: one line per finding, each problem with its fix",
                                 description="Check the engine, disk space, images, config, provider keys, the network "
                                             "policy (a throw-away gateway), SSH, the state database and leftover "
                                             "containers; changes nothing. Exit codes: 0 = no check failed (warnings "
                                             "allowed), 1 = a check failed (with --strict: or warned), 2 = usage.")
    doctor.add_argument("--json", action="store_true", help="a list of {name, status, message, fix}")
    doctor.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    doctor.set_defaults(handler=command_doctor)
    return parser


def _load() -> Config | None:
    """The effective config, warnings printed; None (after a one-line error, exit 2) if invalid."""
    try:
        loaded = load_config(_state_home(), os.environ, Path.home())
    except LlmDockerError as error:
        print(f"llm-docker: {error}", file=sys.stderr)
        return None
    for warning in loaded.warnings:
        print(f"llm-docker: warning: {warning}", file=sys.stderr)
    return loaded.config


def _bounded(kind: Callable[[str], float], low: float, high: float, what: str) -> Callable[[str], float]:
    """An argparse `type=`: a number within [low, high], else argparse's one-line usage error (exit 2)."""
    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got '{text}'") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be between {low:g} and {high:g}, got {text}")
        return value

    return convert


_count = _bounded(int, 1, 99, "the number of slots")
_slot = _bounded(int, 1, 99, "the slot")
_delay = _bounded(float, 0, 60, "the delay")


def _directory(parser_name: str, directory: Path | None) -> Path | None:
    if directory is not None and not directory.is_dir():
        print(f"llm-docker {parser_name}: {directory}: not an existing directory", file=sys.stderr)
        return None
    return directory


def command_supervise(arguments: argparse.Namespace) -> int:
    from cli.launchers import run_request
    from launch.argv import DEFAULT_DELAY_SECONDS, LaunchRequest

    if arguments.directory is not None and _directory("supervise", arguments.directory) is None:
        return EXIT_USAGE
    request = LaunchRequest(
        tool=Tool.from_name(arguments.tool), directory=arguments.directory, windows=arguments.slots,
        continue_session=arguments.continue_session,
        delay=DEFAULT_DELAY_SECONDS if arguments.delay is None else arguments.delay,
        layout=Layout(arguments.layout) if arguments.layout else default_layout(
            platform=sys.platform, tmux_available=shutil.which("tmux") is not None, terminal=sys.stdin.isatty()),
    )
    return run_request(request, environ=os.environ, stdout=sys.stdout, stderr=sys.stderr)


def command_attach(arguments: argparse.Namespace) -> int:
    from supervisor.attach_command import attach_slot

    if arguments.directory is not None and _directory("attach", arguments.directory) is None:
        return EXIT_USAGE
    return attach_slot(Tool.from_name(arguments.tool), arguments.slot, arguments.directory, launch_id=arguments.launch)


def command_status(arguments: argparse.Namespace) -> int:
    from supervisor.admin import show_status

    return show_status(as_json=arguments.json, check=arguments.check, state_home=_state_home(),
                       all_users=arguments.all_users)


def command_ssh(arguments: argparse.Namespace) -> int:
    from supervisor.ssh_command import ssh_into

    return ssh_into(list(arguments.words), _state_home())


def command_ssh_config(arguments: argparse.Namespace) -> int:
    from supervisor.ssh_command import ssh_config

    return ssh_config(_state_home(), write=arguments.write)


def command_api(arguments: argparse.Namespace) -> int:
    from builder_api.standalone import run_standalone

    return run_standalone(arguments.project or Path.cwd().name, arguments.config, port=arguments.port)


def command_config(arguments: argparse.Namespace) -> int:
    home = _state_home()
    config = _load()
    if config is None:
        return EXIT_USAGE
    rows = []
    for info in settings():
        value = describe_value(config, info)
        if info.key == "LLM_DOCKER_IMAGE" and not value:
            value = ", ".join(f"{tool.value}: {config.image_for(tool)}" for tool in Tool)
        rows.append((info.key, value, config.sources.get(info.key, DEFAULT_SOURCE)))
    rows += [(key, "(set, masked)" if "KEY" in key or "TOKEN" in key or "SECRET" in key else value,
              config.sources[key]) for key, value in sorted(config.extra.items())]
    if arguments.json:
        json.dump({"home": str(home), "settings": [
            {"key": key, "value": value, "source": source} for key, value, source in rows
        ]}, sys.stdout, indent=2)
        print()
        return 0
    print(f"# LLM_DOCKER_HOME={home}")
    width = max(len(f"{key}={value}") for key, value, _ in rows)
    for key, value, source in rows:
        print(f"{key}={value}".ljust(width) + f"  # {source}")
    return 0


def _state_home() -> Path:
    return default_home(os.environ, Path.home())


def command_slots(arguments: argparse.Namespace) -> int:
    from supervisor.admin import list_slots

    return list_slots(_state_home(), as_json=arguments.json)


def command_gc(arguments: argparse.Namespace) -> int:
    from supervisor.admin import garbage_collect

    return garbage_collect(_state_home())


def command_quarantine(arguments: argparse.Namespace) -> int:
    from supervisor.printable import printable
    from supervisor.tripwire import accept, quarantined

    state_home = _state_home()
    if arguments.action == "list":
        if arguments.quarantine_id:
            print("llm-docker: quarantine list takes no ID", file=sys.stderr)
            return EXIT_USAGE
        for item in quarantined(state_home):
            print(printable(f"{item.quarantine_id}  {item.project}  {', '.join(item.paths)}"))
        return 0
    if not arguments.quarantine_id:
        print("llm-docker: quarantine accept needs an ID — `llm-docker quarantine` lists them", file=sys.stderr)
        return EXIT_USAGE
    try:
        item = accept(state_home, arguments.quarantine_id)
    except LlmDockerError as error:  # QuarantineError: the ID or the project's state refuses it (2)
        print(f"llm-docker: {error}", file=sys.stderr)
        return error.exit_code
    print(printable(f"accepted: {', '.join(item.paths)} back in {item.project}"))
    return 0


def command_image_build(arguments: argparse.Namespace) -> int:
    from image import commands

    config = _load()
    if config is None:
        return EXIT_USAGE
    return commands.build(config, _state_home(), tool=arguments.tool, no_cache=arguments.no_cache,
                          verbose=arguments.verbose)


def command_image_base(arguments: argparse.Namespace) -> int:
    from image import commands

    config = _load()
    return EXIT_USAGE if config is None else commands.base(config, _state_home(), verbose=arguments.verbose)


def command_doctor(arguments: argparse.Namespace) -> int:
    from supervisor.doctor.run import run_doctor

    return run_doctor(_state_home(), as_json=arguments.json, strict=arguments.strict)


def command_image_status(arguments: argparse.Namespace) -> int:
    from image import commands

    config = _load()
    return EXIT_USAGE if config is None else commands.status(config, as_json=arguments.json)


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        sys.exit(arguments.handler(arguments))
    except BrokenPipeError:
        sys.exit(0)
    except LlmDockerError as error:  # whatever a command did not turn into its own line: still one line
        print(f"llm-docker: {error}", file=sys.stderr)
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
