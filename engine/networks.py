"""Networks: the one llm-docker needs is made on demand (`ensure`)."""

from __future__ import annotations

import aiodocker

from engine.errors import EngineError, translated

#: The label every network llm-docker creates carries (its own name as the value).
LABEL_NETWORK = "io.llm-docker.network"


class Networks:
    """The engine's networks (`Engine.networks`)."""

    def __init__(self, docker: aiodocker.Docker) -> None:
        self._docker = docker

    async def ensure(self, name: str, *, internal: bool) -> None:
        """Create the named bridge network if it is missing (`internal` = no route out).
        A parallel launch creating it at the same moment (409) is fine."""
        try:
            with translated():
                await self._docker.networks.get(name)
            return
        except EngineError as error:
            if error.status != 404:
                raise
        try:
            with translated():
                await self._docker.networks.create({"Name": name, "Driver": "bridge", "Internal": internal,
                                                    "Labels": {LABEL_NETWORK: name}})
        except EngineError as error:
            if error.status != 409:  # created meanwhile by a parallel launch
                raise
