"""The image's errors are `LlmDockerError`s: a failed build exits 1, a bad build setting 2."""

from __future__ import annotations

import pytest

from image.base import BaseImageError
from image.build import BuildError
from image.certs import CertificateError
from image.gateway import GatewayImageError
from image.plan import BuildInputError
from launch.errors import ConfigError, ImageError, LlmDockerError


@pytest.mark.parametrize(("error", "parent", "code"), [
    (BaseImageError, ImageError, 1), (BuildError, ImageError, 1), (GatewayImageError, ImageError, 1),
    (CertificateError, ConfigError, 2), (BuildInputError, ConfigError, 2),
])
def test_image_errors(error: type[LlmDockerError], parent: type[LlmDockerError], code: int) -> None:
    assert issubclass(error, parent) and issubclass(error, LlmDockerError)
    assert error("one line").exit_code == code
