"""The host's own addresses, read the portable way (psutil, what macOS runs) and the
Linux way (procfs): the same set, so the network policy closes the same addresses."""

from __future__ import annotations

import pytest

from launch.hostfacts import addresses_from_psutil, host_addresses
from launch.portability import PORTABLE_ONLY_VARIABLE


def test_psutil_finds_the_same_addresses_as_procfs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORTABLE_ONLY_VARIABLE, raising=False)  # this run may have it
    from_procfs = host_addresses()
    assert "127.0.0.1" in from_procfs
    monkeypatch.setenv(PORTABLE_ONLY_VARIABLE, "1")
    from_psutil = host_addresses()
    assert from_psutil == addresses_from_psutil()
    assert set(from_psutil) == set(from_procfs)
    assert all("%" not in address for address in from_psutil)  # link-local, without its zone
