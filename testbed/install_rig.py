"""Stock machines for `install.sh`: a fresh Debian container with this checkout copied in.

The image (`llm-docker-test-install:latest`) is the local Debian base plus only what a
stock Debian 12 machine behind a corporate TLS-inspecting proxy has: `python3` (no pip, no
venv module), `sudo`, the host's CA certificates in the system store, and two users —
`alice` with passwordless sudo, `bob` without. The base has no python3 at all, so the image
adds it; it never adds python3-venv or pip: adding them is the installer's job.

A `Machine` is one container of that image (labelled `TEST_LABEL`, removed at the end) with
the checkout's files — tracked and untracked, never ignored ones — under `/src`, owned by
root (a copy, not a mount: the installer may write there, and an upgrade test edits it).
"""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from image.base import host_debian_source
from testbed.agent_images import BUILD_TIMEOUT, write_test_config
from testbed.isolation import TEST_IMAGE_PREFIX, TEST_LABEL, docker, image_id
from testbed.processes import REPO, run

INSTALL_IMAGE = f"{TEST_IMAGE_PREFIX}-install:latest"
HOST_CAS = Path("/usr/local/share/ca-certificates")
#: How long one `install.sh` may take: apt, PyPI, and the engine's 60 s start-up wait.
INSTALL_TIMEOUT = 600

_DOCKERFILE = """\
FROM {base}
{copy_cas}
RUN update-ca-certificates >/dev/null \\
 && apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
        python3 ca-certificates sudo >/dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && useradd -m -s /bin/bash alice && useradd -m -s /bin/bash bob \\
 && echo 'alice ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/alice
"""


def ensure_base_image() -> str:
    """The local Debian base (`llm-docker-base:<suite>`), built by the product's own
    `llm-docker image base` (debootstrap, as root) when this engine lacks it."""
    tag = host_debian_source().tag
    if not image_id(tag):
        with tempfile.TemporaryDirectory(prefix="llm-docker-test-base-") as folder:
            home = Path(folder)
            write_test_config(home)
            result = run("llm-docker", "image", "base", cwd=home, home=home, timeout=BUILD_TIMEOUT)
        if result.returncode != 0:
            raise RuntimeError(f"building {tag} failed:\n{result.stderr[-4000:]}")
    return tag


def ensure_install_image() -> str:
    """Build (or confirm from the layer cache) the stock machine image; its tag."""
    base = ensure_base_image()
    with tempfile.TemporaryDirectory(prefix="llm-docker-test-install-") as folder:
        context = Path(folder)
        cas = sorted(HOST_CAS.glob("*.crt"))
        for ca in cas:
            (context / ca.name).write_bytes(ca.read_bytes())
        copy_cas = "COPY *.crt /usr/local/share/ca-certificates/" if cas else ""
        (context / "Dockerfile").write_text(_DOCKERFILE.format(base=base, copy_cas=copy_cas))
        docker("build", "-q", "-t", INSTALL_IMAGE, "--label", f"{TEST_LABEL}=install", str(context))
    return INSTALL_IMAGE


def checkout_archive(prefix: str = "src") -> bytes:
    """This checkout as a tar (root-owned): what git tracks plus untracked, unignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in sorted(filter(None, listed)):
            path = REPO / name
            if path.is_file() and not path.is_symlink():  # (a file deleted but still in the index: skipped)
                info = archive.gettarinfo(str(path), arcname=f"{prefix}/{name}")
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
    return buffer.getvalue()


class Machine:
    """One stock machine (a container); commands run in it through `docker exec`."""

    def __init__(self, container: str) -> None:
        self.container = container

    def run(self, script: str, *, user: str = "root", login: bool = False,
            timeout: float = INSTALL_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run a bash script as `user` (no terminal: the installer cannot prompt), from the
        user's home; `login` reads the user's profile first, as a new terminal would."""
        shell = ["bash", "-lc" if login else "-c", f"cd ~ && {script}"]
        return subprocess.run(["docker", "exec", "-u", user, self.container, *shell],
                              capture_output=True, text=True, timeout=timeout)

    def check(self, script: str, *, user: str = "root", login: bool = False) -> str:
        """`run`, which must succeed; its standard output."""
        result = self.run(script, user=user, login=login)
        assert result.returncode == 0, f"{script!r} as {user} failed ({result.returncode}):\n{result.stderr}"
        return result.stdout

    def exists(self, path: str) -> bool:
        """Is there anything (even a dangling link) at `path`?"""
        return self.run(f"test -e {shlex.quote(path)} || test -L {shlex.quote(path)}").returncode == 0

    def give_checkout(self, user: str) -> str:
        """A copy of `/src` in `user`'s home, owned by them (as a clone would be); its path."""
        home = "/root" if user == "root" else f"/home/{user}"
        self.check(f"cp -R /src {home}/src && chown -R {user}: {home}/src")
        return f"{home}/src"


@contextmanager
def stock_machine(image: str) -> Iterator[Machine]:
    """A fresh container of `image` with the checkout in `/src`; removed afterwards."""
    name = f"{TEST_IMAGE_PREFIX}-install-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, "--label", f"{TEST_LABEL}=install", image, "sleep", "infinity")
    try:
        subprocess.run(["docker", "cp", "-", f"{name}:/"], input=checkout_archive(), capture_output=True,
                       check=True, timeout=120)
        yield Machine(name)
    finally:
        docker("rm", "-f", name, check=False)
