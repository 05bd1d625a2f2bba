"""Execute a `BuildPlan` on the engine: stream the build, show progress, clean up.

The legacy builder behind the Engine API's `/build` caches layer by layer, so a rebuild
after flipping one `INSTALL_*` flag re-runs only that group's layer and the ones after it.
The image a rebuild replaced is removed when nothing uses it (upstream kept every stale
image, docs/upstream.md#image-selection).
"""

from __future__ import annotations

import dataclasses
import io
import re

from engine.client import Engine
from engine.errors import EngineError
from image.plan import BuildPlan
from image.progress import BuildProgress, format_duration, format_size
from image.timings import dockerfile_instructions, expected_seconds, step_key
from launch.errors import ImageError

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_CACHED = " ---> Using cache"


class BuildError(ImageError):
    """The build failed; the message names the step and the log file (exit 1)."""


@dataclasses.dataclass(frozen=True)
class BuildResult:
    tag: str
    image_id: str
    size: int
    seconds: float
    steps: int
    cached_steps: int
    replaced: str | None

    def summary(self) -> str:
        return (f"built {self.tag} ({format_size(self.size)}) in {format_duration(self.seconds)}; "
                f"{self.cached_steps}/{self.steps} steps from cache")


async def _image_id(docker: Engine, reference: str) -> str | None:
    info = await docker.images.find(reference)
    return None if info is None else str(info["Id"])


def step_keys(plan: BuildPlan) -> list[str]:
    """The names (`image.timings.step_key`) of the plan's Dockerfile steps, in order."""
    dockerfile = next(item.content for item in plan.files if item.path == "Dockerfile").decode()
    args = {**plan.build_args, "AGENT_REFRESH": plan.refresh}
    return [step_key(instruction, args) for instruction in dockerfile_instructions(dockerfile)]


def planned_steps(plan: BuildPlan, recorded: dict[str, float]) -> list[tuple[str, float]]:
    """The plan's steps with their expected seconds (recorded, else the first-build estimate)."""
    return [(key, expected_seconds(key, recorded)) for key in step_keys(plan)]


class _StreamParser:
    """Turns the builder's `stream` chunks into progress events and counts cached steps."""

    def __init__(self, progress: BuildProgress, args: dict[str, str] | None = None) -> None:
        self.progress = progress
        self.args = args or {}
        self.steps = 0
        self.cached = 0
        self.current = ""
        self._buffer = ""

    def feed(self, chunk: str) -> None:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._line(line)

    def flush(self) -> None:
        if self._buffer:
            self._line(self._buffer)
            self._buffer = ""

    def _line(self, line: str) -> None:
        step = _STEP.match(line.strip())
        if step:
            self.steps = int(step.group(2))
            self.current = f"[{step.group(1)}/{step.group(2)}] {step.group(3)}"
            self.progress.step(self.current, key=step_key(step.group(3), self.args))
        elif line.startswith(_CACHED):
            self.cached += 1
            self.progress.cached()
            self.progress.output(line.strip())
        else:
            self.progress.output(line)


async def _stream_build(docker: Engine, plan: BuildPlan, base: str,
                        parser: _StreamParser) -> str | None:
    """Run the build, feeding its output to `parser`; the built image's ID if reported."""
    built_id = None
    async for event in docker.images.build(
            context=io.BytesIO(plan.context_tar()), tag=plan.tag,
            buildargs=plan.docker_build_args(base), nocache=plan.no_cache, labels=plan.labels(base)):
        if event.get("stream"):
            parser.feed(event["stream"])
        if event.get("error"):
            raise EngineError(str(event["error"]), status=500)
        aux = event.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            built_id = str(aux["ID"])
    return built_id


async def remove_if_unnamed(docker: Engine, image_id: str) -> bool:
    """Remove the image a rebuild replaced, but only once nothing names it any more.

    Deleting by ID also removes the image's last remaining tag: when another install's
    prefix (or the user, by hand) still tags the very same image, that name must survive
    our rebuild. A container still using it refuses the removal too (409): leave it."""
    try:
        info = await docker.images.inspect(image_id)
    except EngineError:
        return False  # already gone
    if info.get("RepoTags"):
        return False
    try:
        await docker.images.delete(image_id)
    except EngineError:
        return False
    return True


async def build_tool_image(docker: Engine, plan: BuildPlan, base: str,
                           progress: BuildProgress) -> BuildResult:
    previous = await _image_id(docker, plan.tag)
    mode = "no cache" if plan.no_cache else "layer cache"
    progress.phase(f"building {plan.tag} FROM {base} ({mode})")
    parser = _StreamParser(progress, {**plan.build_args, "AGENT_REFRESH": plan.refresh})
    try:
        async with progress.ticking():
            built_id = await _stream_build(docker, plan, base, parser)
    except EngineError as error:  # the engine reports a failing step as a stream error
        parser.flush()
        raise BuildError(f"building {plan.tag} failed at {parser.current or 'the start'}: "
                         f"{error} (full log: {progress.log_path})") from None
    parser.flush()
    progress.finish_steps()
    progress.record_durations()
    info = await docker.images.inspect(plan.tag)
    replaced = None
    if previous and previous != info["Id"] and await remove_if_unnamed(docker, previous):
        replaced = previous
    # The progress's clock, so the summary's time is the one the live line showed.
    result = BuildResult(tag=plan.tag, image_id=built_id or info["Id"], size=int(info.get("Size", 0)),
                         seconds=progress.seconds(), steps=parser.steps,
                         cached_steps=parser.cached, replaced=replaced)
    progress.note(f"[green]✓[/green] {result.summary()}")
    return result
