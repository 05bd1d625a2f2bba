"""Which extra CA certificates the image trusts (`EXTRA_CA_CERTS`).

Behind a TLS-inspecting proxy every HTTPS download of the build (npm, PyPI) and the
agent's own API calls fail unless the proxy's CA is trusted. The common case is a host
that already trusts it through `/usr/local/share/ca-certificates/`, so the default
`auto` takes exactly those; `none` turns this off; a path names a `.crt` file or a
folder of them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from launch.errors import ConfigError

HOST_CA_FOLDER = Path("/usr/local/share/ca-certificates")
PEM_MARKER = b"-----BEGIN CERTIFICATE-----"


class CertificateError(ConfigError):
    """`EXTRA_CA_CERTS` names something that is not a usable certificate (a setting: exit 2)."""


@dataclasses.dataclass(frozen=True)
class ExtraCertificates:
    """The certificates to trust, by file name and content, and where they came from."""

    files: tuple[tuple[str, bytes], ...]
    origin: str

    def describe(self) -> str:
        if not self.files:
            return f"no extra CA certificates ({self.origin})"
        return f"{len(self.files)} extra CA certificate(s) from {self.origin}"


def _certificates_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.crt") if path.is_file())


def _read(path: Path) -> bytes:
    try:
        content = path.read_bytes()
    except OSError as error:
        raise CertificateError(f"EXTRA_CA_CERTS: cannot read {path}: {error.strerror}") from None
    if PEM_MARKER not in content:
        raise CertificateError(f"EXTRA_CA_CERTS: {path} is not a PEM certificate (no '{PEM_MARKER.decode()}')")
    return content


def _named(paths: list[Path]) -> tuple[tuple[str, bytes], ...]:
    # update-ca-certificates only reads *.crt; keep names unique and ordered.
    return tuple((f"{index:02d}-{path.stem}.crt", _read(path)) for index, path in enumerate(paths, 1))


def select_extra_certificates(setting: str, host_folder: Path = HOST_CA_FOLDER) -> ExtraCertificates:
    """Resolve the `EXTRA_CA_CERTS` setting; raise `CertificateError` on a bad path."""
    value = setting.strip()
    if value.lower() in ("", "none", "off", "false"):
        return ExtraCertificates((), "EXTRA_CA_CERTS=none")
    if value.lower() == "auto":
        paths = _certificates_in(host_folder) if host_folder.is_dir() else []
        return ExtraCertificates(_named(paths), f"the host's {host_folder} (EXTRA_CA_CERTS=auto)")
    path = Path(value).expanduser()
    if path.is_file():
        return ExtraCertificates(_named([path]), str(path))
    if path.is_dir():
        paths = _certificates_in(path)
        if not paths:
            raise CertificateError(f"EXTRA_CA_CERTS: {path} has no .crt file")
        return ExtraCertificates(_named(paths), str(path))
    raise CertificateError(f"EXTRA_CA_CERTS: {path}: no such file or folder")
