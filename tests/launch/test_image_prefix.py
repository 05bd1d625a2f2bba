"""LLM_DOCKER_IMAGE_PREFIX: the names of llm-docker's own images (the tests use their own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.config import Config, ConfigError, load_config
from launch.tools import Tool
from testbed.isolation import TEST_GATEWAY_IMAGE, TEST_IMAGE_PREFIX, suite_image_tag


def test_the_default_names_are_the_products() -> None:
    config = Config()
    assert config.llm_docker_image_prefix == "llm-docker"
    assert [config.image_for(tool) for tool in Tool] == ["llm-docker-claude:latest", "llm-docker-opencode:latest"]
    assert config.gateway_image_tag == config.own_gateway_image == "llm-docker-gateway:latest"


def test_a_prefix_renames_every_own_image_but_not_an_explicit_one(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, {"LLM_DOCKER_IMAGE_PREFIX": TEST_IMAGE_PREFIX}, tmp_path).config
    assert [loaded.image_for(tool) for tool in Tool] == [suite_image_tag(tool) for tool in Tool] == [
        "llm-docker-test-claude:latest", "llm-docker-test-opencode:latest"]
    assert loaded.gateway_image_tag == loaded.own_gateway_image == TEST_GATEWAY_IMAGE
    assert TEST_GATEWAY_IMAGE == "llm-docker-test-gateway:latest"
    explicit = load_config(tmp_path, {"LLM_DOCKER_IMAGE_PREFIX": "x", "LLM_DOCKER_IMAGE": "mine:1",
                                      "GATEWAY_IMAGE": "gw:1"}, tmp_path).config
    assert (explicit.image_for(Tool.CLAUDE), explicit.gateway_image_tag, explicit.own_gateway_image) == (
        "mine:1", "gw:1", "x-gateway:latest")
    registry = load_config(tmp_path, {"LLM_DOCKER_IMAGE_PREFIX": "registry.example:5000/team/llm"}, tmp_path).config
    assert registry.image_for(Tool.OPENCODE) == "registry.example:5000/team/llm-opencode:latest"


@pytest.mark.parametrize("value", ["LLM-Docker", "llm-docker:1", "llm docker", "-llm", "llm-", ""])
def test_a_prefix_that_is_no_repository_name_is_a_config_error(tmp_path: Path, value: str) -> None:
    (tmp_path / "llm-docker.conf").write_text(f"LLM_DOCKER_IMAGE_PREFIX={value}\n")
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path, {}, tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'llm-docker.conf'}:1: LLM_DOCKER_IMAGE_PREFIX: expected a Docker repository name like "
        f"llm-docker (lowercase letters, digits, and . _ - / between them; no tag), got '{value}'")
    assert error.value.exit_code == 2
