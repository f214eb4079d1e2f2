"""A rich progress bar on a terminal, silence everywhere else (pipes, CI, --format json)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Callback the stages accept: (bytes or steps done, total or 0 if unknown, what is running).
ProgressFn = Callable[[int, int, str], None]


def _noop(done: int, total: int, what: str) -> None:
    return None


@contextmanager
def progress_bar(enabled: bool, unit: str = "bytes") -> Iterator[ProgressFn]:
    """Yield a progress callback; draws on stderr only when enabled and stderr is a terminal.

    ``unit`` is "bytes" (counts shown as sizes) or "steps" (shown as done/total).
    """
    if not enabled or not sys.stderr.isatty():
        yield _noop
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn() if unit == "bytes" else MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def update(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total or None, description=what)

        yield update
