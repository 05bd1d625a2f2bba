"""How a build looks: steps, elapsed time, ETA and the current step's last output line.

On a terminal the display is one live status block (rich), not a wall of text; with
`--verbose` (or `DEBUG=true`) every output line is streamed; when stderr is not a
terminal only the step headers are printed. Whatever is shown, the full output always
goes to the build log file.

One clock: the elapsed time shown live, in the step lines and in the build's summary all
count from this object's creation (the start of the command). The ETA comes from the
planned steps' expected seconds (`image.timings`); the progress measures every step it
sees, so the build can record them for the next ETA.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import anyio
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from image.timings import STEP_TIMES_FILE, load_step_times, save_step_times


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB") else f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _does_work(step: str) -> bool:
    """Whether a step header is worth a line in a plain log (RUN/COPY/ADD, not ARG/ENV/LABEL)."""
    instruction = step.split("] ", 1)[-1].split(" ", 1)[0].upper()
    return instruction not in ("ARG", "ENV", "LABEL", "SHELL", "CMD", "ENTRYPOINT", "FROM")


class BuildProgress:
    """Receives build events; shows them on `stream` and logs all of them to `log_path`."""

    def __init__(self, stream: IO[str], log_path: Path, *, verbose: bool = False,
                 interactive: bool | None = None) -> None:
        self._console = Console(file=stream, highlight=False, soft_wrap=True, force_terminal=interactive)
        self._interactive = self._console.is_terminal if interactive is None else interactive
        self._verbose = verbose
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("a", encoding="utf-8")
        self.log_path = log_path
        self._started = time.monotonic()
        self._title = ""
        self._step = ""
        self._last_line = ""
        self._live: Live | None = None
        self._plan: list[tuple[str, float]] = []
        self._index = -1
        self._step_key: str | None = None
        self._step_started = self._started
        self._step_cached = False
        #: Seconds of every step that ran (not from the cache) since the last `finish_steps`.
        self.durations: dict[str, float] = {}

    # -- events --------------------------------------------------------------------------
    def phase(self, title: str) -> None:
        """A new phase (base image, one tool's image): shown as a header line."""
        self._title = title
        self._step = ""
        self._last_line = ""
        self._write_log(f"== {title}")
        self.note(f"[bold]{title}[/bold]")

    def plan(self, steps: list[tuple[str, float]]) -> None:
        """The steps to come, as (key, expected seconds), in order: the ETA is their sum."""
        self._plan = list(steps)
        self._index = -1

    def step(self, text: str, *, key: str | None = None) -> None:
        """A new step begins (and the previous one ends); `key` names it in the plan."""
        self._end_step()
        self._step = text
        self._step_key = key
        self._step_started = time.monotonic()
        self._step_cached = False
        if key is not None:
            self._index = next((i for i in range(self._index + 1, len(self._plan)) if self._plan[i][0] == key),
                               self._index)
        self._last_line = ""
        self._write_log(text)
        if self._verbose or (not self._interactive and _does_work(text)):
            self._print(Text(f"  {text}  ({self._clock()})"))
        self._refresh()

    def cached(self) -> None:
        """The current step came from the layer cache: its time says nothing about the next build."""
        self._step_cached = True

    def finish_steps(self) -> None:
        """The last step ended (the build is done)."""
        self._end_step()
        self._step_key = None

    @property
    def durations_path(self) -> Path:
        """Where the step durations are recorded: next to the build log."""
        return self.log_path.with_name(STEP_TIMES_FILE)

    def recorded_durations(self) -> dict[str, float]:
        return load_step_times(self.durations_path)

    def record_durations(self) -> None:
        """Add the durations of the steps that ran to the record the next build's ETA reads."""
        if not self.durations:
            return
        try:
            save_step_times(self.durations_path, {**self.recorded_durations(), **self.durations})
        except OSError as error:  # an ETA is not worth failing a finished build
            self.note(f"[yellow]could not record the step times in {self.durations_path}: {error}[/yellow]")
        self.durations.clear()

    def _end_step(self) -> None:
        if self._step_key is not None and not self._step_cached:
            self.durations[self._step_key] = round(time.monotonic() - self._step_started, 1)

    def output(self, line: str) -> None:
        line = line.rstrip()
        if not line:
            return
        self._write_log(line)
        self._last_line = line
        if self._verbose:
            self._print(Text("    " + line, style="dim"))
        self._refresh()

    def note(self, markup: str) -> None:
        """A message for the user above the live display (rich markup allowed)."""
        self._write_log(Text.from_markup(markup).plain)
        self._print(Text.from_markup(markup))

    @contextlib.asynccontextmanager
    async def ticking(self, interval: float = 1.0) -> AsyncIterator[None]:
        """Keep the elapsed time moving while a step prints nothing (a long npm install)."""
        async with anyio.create_task_group() as group:
            async def tick() -> None:
                while True:
                    await anyio.sleep(interval)
                    self._refresh()

            group.start_soon(tick, name="build-progress-tick")
            try:
                yield
            finally:
                group.cancel_scope.cancel()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._log.close()

    def seconds(self) -> float:
        """Seconds since this progress began: the clock of everything it shows."""
        return time.monotonic() - self._started

    def elapsed(self) -> str:
        return format_duration(self.seconds())

    def remaining(self) -> float | None:
        """Expected seconds until the planned steps are done; None without a plan."""
        if not self._plan:
            return None
        if self._index < 0:
            return sum(seconds for _, seconds in self._plan)
        in_step = time.monotonic() - self._step_started
        return (max(0.0, self._plan[self._index][1] - in_step)
                + sum(seconds for _, seconds in self._plan[self._index + 1:]))

    def _clock(self) -> str:
        """`1m02s` or `1m02s, ETA 1m40s`: the elapsed time and, with a plan, the ETA."""
        remaining = self.remaining()
        return self.elapsed() if remaining is None else f"{self.elapsed()}, ETA {format_duration(remaining)}"

    # -- display -------------------------------------------------------------------------
    def _write_log(self, line: str) -> None:
        self._log.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        self._log.flush()

    def _print(self, text: Text) -> None:
        if self._live is not None:
            self._live.console.print(text)
        else:
            self._console.print(text)

    def _render(self) -> Group:
        width = max(20, self._console.width - 1)
        elapsed = f"  {self._clock()}"
        status = Text(f"⠿ {self._step or self._title}"[:width - len(elapsed)], style="bold cyan")
        status.append(elapsed, style="yellow")
        last = Text(("  " + self._last_line)[:width], style="dim")
        return Group(status, last)

    def _refresh(self) -> None:
        if not self._interactive or self._verbose:
            return
        if self._live is None:
            self._live = Live(self._render(), console=self._console, auto_refresh=False, transient=True)
            self._live.start()
        self._live.update(self._render(), refresh=True)
