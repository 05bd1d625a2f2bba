"""The one parser for `llm-docker.conf` and `.env`.

Upstream parsed these files four different ways (bash `source`, grep, Docker's
`--env-file`, awk), so quoting and `~` meant different things in different places. Here
there is one format, documented in the README:

* `KEY=VALUE` per line, optionally prefixed by `export `; blank lines and `#` comments;
* a value may be wrapped in single quotes (literal) or double quotes (`\\n`, `\\t`, `\\"`
  and `\\\\` are escapes); after a closing quote only a `# comment` may follow;
* an unquoted value ends at ` #` (an inline comment) and is stripped of surrounding blanks;
* a value that is `~` or starts with `~/` has the home directory expanded.

Each entry remembers its line number so every error can name file, line and key.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from launch.errors import ConfigError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOUBLE_QUOTE_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "$": "$"}


@dataclasses.dataclass(frozen=True)
class Entry:
    key: str
    value: str
    line: int


class EnvFileError(ConfigError, ValueError):
    """A line that is not `KEY=VALUE`; the message names file and line (exit 2). Also a
    `ValueError`, as every parser's refusal of a malformed text."""


def parse_env_text(text: str, *, origin: str, home: Path) -> list[Entry]:
    """Parse the text of a config file; `origin` is the file name used in error messages."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        where = f"{origin}:{number}"
        if not sep or not _KEY.match(key):
            raise EnvFileError(f"{where}: expected KEY=VALUE, got '{raw.strip()}'")
        value = _parse_value(rest.strip(), where=f"{where}: {key}")
        entries.append(Entry(key, _expand_home(value, home), number))
    return entries


def _parse_value(text: str, *, where: str) -> str:
    if not text or text[0] not in "\"'":
        return re.split(r"\s#", text, maxsplit=1)[0].strip()
    quote = text[0]
    chars: list[str] = []
    index = 1
    while index < len(text):
        char = text[index]
        if char == quote:
            trailer = text[index + 1:].strip()
            if trailer and not trailer.startswith("#"):
                raise EnvFileError(f"{where}: unexpected text after the closing quote: '{trailer}'")
            return "".join(chars)
        if quote == '"' and char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            chars.append(_DOUBLE_QUOTE_ESCAPES.get(following, "\\" + following))
            index += 2
            continue
        chars.append(char)
        index += 1
    raise EnvFileError(f"{where}: missing closing {quote}")


def _expand_home(value: str, home: Path) -> str:
    if value == "~":
        return str(home)
    if value.startswith("~/"):
        return str(home / value[2:])
    return value
