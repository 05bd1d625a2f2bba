"""The job model of builder-api: parsing job tables, validating a request's parameters,
resolving the command and checking its sha256 pin.

Jobs are argv templates — never shell lines — whose `{placeholder}` elements are filled
with values that passed a regex (`fullmatch`) and a length cap. The shapes of the 400/412
error bodies are part of the wire protocol (docs/upstream.md#wire-protocol).

A pinned file (`command_hash`) is read once through a no-follow descriptor (`read_pinned`):
the bytes hashed are the bytes the queue then runs from a private copy (see `pins.py`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from builder_api.safefs import READ, FileRefused, open_beneath, read_all

JOB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
PLATFORM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
PLACEHOLDER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_TOKEN = re.compile(r"^\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}$")
STANDALONE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
EMBEDDED = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
SHA256_PIN = re.compile(r"sha256:[0-9a-f]{64}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A pinned file larger than this is refused (it is read into memory to be hashed and copied).
MAX_PINNED_BYTES = 64 << 20
RESERVED_TOKENS = ("container",)
LEAF_FIELDS = ("command", "args", "placeholders", "timeout_s", "kill_after_s", "cwd", "command_hash",
               "mutates_filesystem", "description", "env", "env_passthrough")
DEFAULT_TIMEOUT_S = 60
DEFAULT_MAX_LEN = 200


class JobConfigError(ValueError):
    """A job table that cannot work; the message names the job."""


@dataclasses.dataclass(frozen=True)
class Placeholder:
    name: str
    regex: str
    max_len: int = DEFAULT_MAX_LEN
    required: bool = True
    description: str = ""

    def public(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"regex": self.regex, "max_len": self.max_len, "required": self.required}
        if self.description:
            shown["description"] = self.description
        return shown


@dataclasses.dataclass(frozen=True)
class CommandHash:
    path: str
    sha256: str  # 64 lowercase hex, without the "sha256:" prefix


@dataclasses.dataclass(frozen=True)
class LeafJob:
    name: str
    command: str
    args: tuple[str, ...] = ()
    placeholders: tuple[Placeholder, ...] = ()
    timeout_s: int = DEFAULT_TIMEOUT_S
    kill_after_s: int = 0
    cwd: str = "."
    command_hash: CommandHash | None = None
    mutates_filesystem: bool = False
    description: str = ""
    #: Variables set for this job (on top of the allow-listed ones).
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Names of the API's own variables this job may see besides the allow-list (DOCKER_HOST…).
    env_passthrough: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "command": self.command, "args_template": list(self.args), "timeout_s": self.timeout_s,
            "kill_after_s": self.kill_after_s, "cwd": self.cwd,
            "command_hash_pinned": self.command_hash is not None,
            "command_hash_path": self.command_hash.path if self.command_hash else None,
            "mutates_filesystem": self.mutates_filesystem,
            "placeholders": {p.name: p.public() for p in self.placeholders},
        }
        if self.description:
            shown["description"] = self.description
        return shown


@dataclasses.dataclass(frozen=True)
class HubJob:
    """A job with one leaf per platform (`POST /job/<hub>?platform=<p>`)."""

    name: str
    platforms: Mapping[str, LeafJob]
    description: str = ""

    def public(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"platforms": {name: leaf.public() for name, leaf in self.platforms.items()}}
        if self.description:
            shown["description"] = self.description
        return shown


Job = LeafJob | HubJob


@dataclasses.dataclass(frozen=True)
class Verb:
    name: str
    platforms: tuple[str, ...]
    required_param: str | None = None
    description: str = ""


# -- parsing -------------------------------------------------------------------------------

def _relative_path(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise JobConfigError(f"{where} must be a non-empty string")
    if value.startswith("/") or ".." in Path(value).parts:
        raise JobConfigError(f"{where} must be relative to the project root, without '..': {value!r}")
    return value


def parse_passthrough(value: object, where: str) -> tuple[str, ...]:
    """`env_passthrough`: a list of variable names (no patterns: every name is a decision)."""
    if not isinstance(value, list) or not all(isinstance(name, str) and ENV_NAME.fullmatch(name) for name in value):
        raise JobConfigError(f"{where}.env_passthrough must be a list of variable names like \"DOCKER_HOST\", "
                             f"got {value!r}")
    return tuple(dict.fromkeys(value))


def _env_table(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and ENV_NAME.fullmatch(k) and isinstance(v, str)
                                              for k, v in value.items()):
        raise JobConfigError(f"{where}.env must be a table of NAME = \"value\" strings, got {value!r}")
    return dict(value)


def _int(value: object, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise JobConfigError(f"{where} must be a whole number, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise JobConfigError(f"{where} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise JobConfigError(f"{where} must be >= {minimum}, got {number}")
    return number


def _placeholder(job: str, name: str, table: object) -> Placeholder:
    where = f"[jobs.{job}.placeholders.{name}]"
    if not PLACEHOLDER_NAME.match(name):
        raise JobConfigError(f"{where}: placeholder name must match {PLACEHOLDER_NAME.pattern}")
    if not isinstance(table, dict):
        raise JobConfigError(f"{where} must be a table")
    regex = table.get("regex")
    if not isinstance(regex, str) or not regex:
        raise JobConfigError(f"{where}.regex must be a non-empty string")
    try:
        re.compile(regex)
    except re.error as error:
        raise JobConfigError(f"{where}.regex does not compile: {error}") from None
    required = table.get("required", True)
    if not isinstance(required, bool):  # upstream took bool("false") == True; we refuse the ambiguity
        raise JobConfigError(f"{where}.required must be true or false, got {required!r}")
    description = table.get("description", "")
    return Placeholder(name=name, regex=regex, max_len=_int(table.get("max_len", DEFAULT_MAX_LEN),
                                                            f"{where}.max_len", 1),
                       required=required, description=str(description or ""))


def parse_leaf(name: str, table: Mapping[str, Any], warnings: list[str]) -> LeafJob:
    where = f"[jobs.{name}]"
    command = table.get("command")
    if not isinstance(command, str) or not command:
        raise JobConfigError(f"{where}.command must be a non-empty string")
    args = table.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise JobConfigError(f"{where}.args must be a list of strings")
    raw_placeholders = table.get("placeholders", {})
    if not isinstance(raw_placeholders, dict):
        raise JobConfigError(f"{where}.placeholders must be a table")
    placeholders = tuple(_placeholder(name, key, value) for key, value in raw_placeholders.items())
    declared = {p.name for p in placeholders}
    referenced: set[str] = set()
    for element in args:
        reserved = RESERVED_TOKEN.match(element)
        if reserved:
            if reserved.group(1) not in RESERVED_TOKENS:
                raise JobConfigError(f"{where}.args: unknown reserved token {element!r} (known: {{{{container}}}})")
            continue
        standalone = STANDALONE.match(element)
        if standalone:
            if standalone.group(1) not in declared:
                raise JobConfigError(f"{where}.args: {element!r} references an undeclared placeholder")
            referenced.add(standalone.group(1))
            continue
        if EMBEDDED.search(element):
            raise JobConfigError(f"{where}.args: {element!r} embeds a placeholder — a placeholder must be a whole "
                                 "argument")
    unreferenced = sorted(declared - referenced)
    if unreferenced:
        raise JobConfigError(f"{where} declares placeholder(s) {unreferenced} that aren't referenced in args")
    command_hash = None
    if "command_hash" in table:
        pin = table["command_hash"]
        if not isinstance(pin, dict):
            raise JobConfigError(f"{where}.command_hash must be {{ path = \"...\", sha256 = \"sha256:...\" }}")
        digest = pin.get("sha256")
        if not isinstance(digest, str) or not SHA256_PIN.fullmatch(digest.strip().lower()):
            raise JobConfigError(f"{where}.command_hash.sha256 must be 'sha256:' + 64 hex digits")
        command_hash = CommandHash(_relative_path(pin.get("path"), f"{where}.command_hash.path"),
                                   digest.strip().lower().removeprefix("sha256:"))
    mutates = table.get("mutates_filesystem", False)
    if not isinstance(mutates, bool):
        raise JobConfigError(f"{where}.mutates_filesystem must be true or false")
    cwd = table.get("cwd", ".")
    if not isinstance(cwd, str) or cwd.startswith("/") or ".." in Path(cwd).parts:
        raise JobConfigError(f"{where}.cwd must be relative to the project root, without '..': {cwd!r}")
    for key in table:
        if key not in LEAF_FIELDS:
            warnings.append(f"{where}.{key} = {table[key]!r} — unknown field, ignored. "
                            f"Known fields: {list(LEAF_FIELDS)}")
    leaf = LeafJob(name=name, command=command, args=tuple(args), placeholders=placeholders,
                   timeout_s=_int(table.get("timeout_s", DEFAULT_TIMEOUT_S), f"{where}.timeout_s", 1),
                   kill_after_s=_int(table.get("kill_after_s", 0), f"{where}.kill_after_s", 0),
                   cwd=cwd or ".", command_hash=command_hash, mutates_filesystem=mutates,
                   description=str(table.get("description", "") or ""),
                   env=_env_table(table.get("env", {}), where),
                   env_passthrough=parse_passthrough(table.get("env_passthrough", []), where))
    if command_hash is not None and not pin_is_named(leaf):
        warnings.append(f"{where}.command_hash.path {command_hash.path!r} is neither the command nor one of its "
                        "args: it is checked before the run but cannot be run from a verified copy — name it in "
                        "args (e.g. make -f FILE) so that the pin holds during the run")
    return leaf


def parse_job(name: str, table: object, warnings: list[str]) -> Job:
    if not JOB_NAME.fullmatch(name):
        raise JobConfigError(f"job name {name!r} must match {JOB_NAME.pattern}")
    if not isinstance(table, dict):
        raise JobConfigError(f"[jobs.{name}] must be a table")
    platforms = table.get("platforms")
    if not isinstance(platforms, dict):
        return parse_leaf(name, table, warnings)
    extra = sorted(set(table) - {"platforms", "description"})
    if extra:
        raise JobConfigError(f"[jobs.{name}] is a hub (it has platforms): it may not also set {extra}")
    if not platforms:
        raise JobConfigError(f"[jobs.{name}].platforms is empty")
    leaves = {}
    for platform, leaf in platforms.items():
        if not PLATFORM_NAME.fullmatch(platform):
            raise JobConfigError(f"[jobs.{name}.platforms.{platform}]: platform name must match "
                                 f"{PLATFORM_NAME.pattern}")
        if not isinstance(leaf, dict) or isinstance(leaf.get("platforms"), dict):
            raise JobConfigError(f"[jobs.{name}.platforms.{platform}] must be a leaf job table (no nested hubs)")
        leaves[platform] = parse_leaf(f"{name}@{platform}", leaf, warnings)
    return HubJob(name=name, platforms=leaves, description=str(table.get("description", "") or ""))


def parse_jobs(table: Mapping[str, Any], warnings: list[str]) -> dict[str, Job]:
    return {name: parse_job(name, value, warnings) for name, value in table.items()}


def parse_verbs(table: object) -> dict[str, Verb]:
    if not isinstance(table, dict):
        raise JobConfigError("[verb] must be a table of tables")
    verbs = {}
    for name, value in table.items():
        if not PLATFORM_NAME.fullmatch(name) or not isinstance(value, dict):
            raise JobConfigError(f"[verb.{name}]: name must match {PLATFORM_NAME.pattern} and be a table")
        platforms = value.get("platforms", [])
        if (not isinstance(platforms, list) or len(set(platforms)) != len(platforms)
                or not all(isinstance(p, str) and PLATFORM_NAME.fullmatch(p) for p in platforms)):
            raise JobConfigError(f"[verb.{name}].platforms must be a list of unique platform names")
        required = value.get("required_param")
        if required is not None and not isinstance(required, str):
            raise JobConfigError(f"[verb.{name}].required_param must be a string")
        verbs[name] = Verb(name=name, platforms=tuple(platforms), required_param=required,
                           description=str(value.get("description", "") or ""))
    return verbs


# -- a request -------------------------------------------------------------------------------

class ValidationFailed(Exception):
    """A 400 `validation_failed`; `body()` is the locked wire shape."""

    def __init__(self, endpoint: str, field: str, reason: str, expected: object = None,
                 value: object = None, has_value: bool = False) -> None:
        super().__init__(reason)
        self.endpoint, self.field, self.reason, self.expected = endpoint, field, reason, expected
        self.value, self.has_value = value, has_value

    def body(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"error": "validation_failed", "endpoint": self.endpoint, "field": self.field,
                                 "reason": self.reason}
        if self.expected is not None:
            shown["expected"] = self.expected
        if self.has_value and self.value is not None:
            shown["value_preview"] = value_preview(self.value)
        return shown


def value_preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."


def validate_and_substitute(job: LeafJob, params: object, endpoint: str) -> tuple[list[str], dict[str, str]]:
    """(argv tail, the supplied values) or `ValidationFailed`, in upstream's exact order."""
    if not isinstance(params, dict):
        raise ValidationFailed(endpoint, "params", "wrong_type", "object", params, True)
    declared = {p.name: p for p in job.placeholders}
    for key in params:
        if key not in declared:
            raise ValidationFailed(endpoint, str(key), "unknown_param", sorted(declared), params[key], True)
    for placeholder in job.placeholders:
        if placeholder.name not in params:
            if placeholder.required:
                raise ValidationFailed(endpoint, placeholder.name, "missing_required")
            continue
        value = params[placeholder.name]
        if not isinstance(value, str):
            raise ValidationFailed(endpoint, placeholder.name, "wrong_type", "string", value, True)
        if len(value) > placeholder.max_len:
            raise ValidationFailed(endpoint, placeholder.name, "max_len_exceeded", placeholder.max_len, value, True)
        if not re.fullmatch(placeholder.regex, value):
            raise ValidationFailed(endpoint, placeholder.name, "regex_mismatch", placeholder.regex, value, True)
    argv = []
    for element in job.args:
        standalone = STANDALONE.match(element)
        if standalone and not RESERVED_TOKEN.match(element):
            if standalone.group(1) in params:
                argv.append(params[standalone.group(1)])
            continue
        argv.append(element)
    return argv, {p.name: params[p.name] for p in job.placeholders if p.name in params}


class CommandRefused(Exception):
    """A 412: the command is missing or does not match its pin; `body` is the wire shape."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body["error"])
        self.body = body


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_command(job: LeafJob, root: Path) -> Path:
    """The absolute executable: absolute as is; with a slash inside the project root
    (job cwd first); a bare name on PATH. 412 `command_not_found` otherwise."""
    command = job.command
    candidates: list[Path] = []
    if command.startswith("/"):
        candidates = [Path(command)]
    elif "/" in command:
        if job.cwd not in (".", ""):
            candidates.append((root / job.cwd / command).resolve())
        candidates.append((root / command).resolve())
        candidates = [c for c in candidates if _inside(c, root.resolve())]
    else:
        found = shutil.which(command)
        candidates = [Path(found)] if found else []
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CommandRefused({"error": "command_not_found", "job": job.name, "command": command})


def read_pinned(root: Path, relative: str) -> tuple[bytes | None, str]:
    """(the file's bytes, their sha256) — read ONCE through a descriptor reached from `root`
    without following any symlink; (None, "<reason>") when it cannot be read that way."""
    try:
        descriptor = open_beneath(root, relative, READ)
    except FileNotFoundError:
        return None, f"<file not found: {relative}>"
    except FileRefused:
        return None, f"<refused: {relative} is a symlink, runs through one, or is not a regular file>"
    try:
        data = read_all(descriptor, MAX_PINNED_BYTES)
    except FileRefused:
        return None, f"<refused: {relative} is larger than {MAX_PINNED_BYTES} bytes>"
    finally:
        os.close(descriptor)
    return data, hashlib.sha256(data).hexdigest()


def _same_file(element: str, pin: str, cwd: str) -> bool:
    if "{" in element:
        return False
    normal = os.path.normpath
    return normal(element) == normal(pin) or normal(os.path.join(cwd, element)) == normal(pin)


def pin_is_named(job: LeafJob) -> bool:
    """Whether the pinned file is the job's command or one of its fixed args — the cases in
    which the queue can hand the program a verified private copy instead of the path."""
    if job.command_hash is None:
        return False
    pin = job.command_hash.path
    command = job.command if "/" in job.command and not job.command.startswith("/") else ""
    return bool(command and _same_file(command, pin, job.cwd)) or any(
        _same_file(arg, pin, job.cwd) for arg in job.args)


def verify_command_hash(job: LeafJob, root: Path, resolved: Path) -> None:
    """412 `command_hash_mismatch` unless the pinned file hashes to the pin. (The queue
    checks again, on the very bytes it runs: this early answer only saves a queue slot.)"""
    if job.command_hash is None:
        return
    if ".." in PurePosixPath(job.command_hash.path).parts:
        actual = f"<path escapes project_root: {job.command_hash.path}>"
    else:
        _, actual = read_pinned(root, job.command_hash.path)
        if actual == job.command_hash.sha256:
            return
    raise CommandRefused({"error": "command_hash_mismatch", "job": job.name, "command": str(resolved),
                          "expected_hash": job.command_hash.sha256, "actual_hash": actual})
