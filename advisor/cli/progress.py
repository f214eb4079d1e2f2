"""A rich progress bar on a terminal, silence everywhere else (pipes, CI, --format json)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: Callback the stages accept: (bytes or steps done, total or 0 if unknown, what is running).
ProgressFn = Callable[[int, int, str], None]


class Bar:
    """The progress callback: ``bar(done, total, what)`` in the bar's unit, ``bar.steps(...)``
    for a phase counted in steps (the analysis after the bytes were read)."""

    def __init__(self, update: Callable[[int, int, str, bool], None] | None = None) -> None:
        self._update = update

    def __call__(self, done: int, total: int, what: str) -> None:
        if self._update is not None:
            self._update(done, total, what, False)

    def steps(self, done: int, total: int, what: str) -> None:
        if self._update is not None:
            self._update(done, total, what, True)


class _Count:
    """done/total as sizes or as steps, whichever the current phase counts."""

    def __init__(self, unit: str) -> None:
        from rich.progress import DownloadColumn, MofNCompleteColumn

        self._bytes = DownloadColumn()
        self._steps = MofNCompleteColumn()
        self._unit = unit

    def __call__(self, task: Any) -> Any:
        steps = task.fields.get("steps") or self._unit == "steps"
        return (self._steps if steps else self._bytes).render(task)


@contextmanager
def progress_bar(enabled: bool, unit: str = "bytes") -> Iterator[Bar]:
    """Yield a progress callback; draws on stderr only when enabled and stderr is a terminal.

    ``unit`` is "bytes" (counts shown as sizes) or "steps" (shown as done/total).
    """
    if not enabled or not sys.stderr.isatty():
        yield Bar()
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn

    count = _Count(unit)

    class CountColumn(ProgressColumn):
        def render(self, task: Any) -> Any:
            return count(task)

    columns = (TextColumn("{task.description}"), BarColumn(), CountColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=None, steps=False)

        def update(done: int, total: int, what: str, steps: bool) -> None:
            bar.update(task, completed=done, total=total or None, description=what, steps=steps)

        yield Bar(update)
