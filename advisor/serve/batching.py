"""Dynamic batching: concurrent requests share model runs, grouped by length.

Requests (each one or more texts) queue up; a worker thread takes what has queued, up to
``max_batch`` texts, tokenizes it at once, splits it into length groups (``plan_groups``) so a
short text is not padded to a long one's length, runs each group and answers every request
with its own results in its own order. A request is never split across runs, so a request
served alone is computed exactly as ``Model.predict`` would.

How long to wait for company: not at all when the server has recently had one request in
flight at a time (a lone client pays no batching delay), else up to ``max_wait_s`` for as many
requests as were recently in flight at once (closed-loop clients send their next request
as soon as their last one is answered: waiting a moment for them fills the batch).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from .model import Result

# The fixed cost of one model run, in padded tokens: below that many padded tokens saved,
# splitting a batch costs more than it saves. MiniLM int8, CPU time of runs at fixed batch
# and length (b 1-8, 8-64 tokens) fitted as a + b*L*c: one onnxruntime thread a = 0.60 ms,
# c = 89 us a token (~7 tokens a run); two threads 0.95 ms and 148 us (~6). The 64 used before
# (wall times on a loaded machine) left 8 clients' texts padded to each other's length.
RUN_COST_TOKENS = 8
PEAK_WINDOW_S = 1.0  # how long a peak of concurrent requests is remembered


class BatchModel(Protocol):
    def encode(self, texts: Sequence[str]) -> list[Any]: ...

    def infer(self, texts: Sequence[str], encodings: Sequence[Any]) -> list[Result]: ...


class BatchObserver(Protocol):
    """What the batcher reports (metrics): one call per model run."""

    def observe_run(self, texts: int, seconds: float, waited_s: Sequence[float]) -> None: ...


class ServerClosed(RuntimeError):
    """The batcher is stopping and takes no new requests."""


@dataclass(slots=True)
class _Job:
    texts: Sequence[str]
    future: Future[list[Result]]
    queued_at: float = field(default_factory=time.perf_counter)
    encodings: list[Any] = field(default_factory=list)

    @property
    def length(self) -> int:
        return max(len(e) for e in self.encodings)


def plan_groups(lengths: Sequence[int], run_cost: int = RUN_COST_TOKENS) -> list[list[int]]:
    """Split items (by index) into runs minimising padded tokens plus ``run_cost`` per run.

    Items sorted by length are cut into contiguous groups (an optimal grouping is contiguous
    in that order); dynamic programming over the cut points, O(n^2) for n <= MAX_BATCH.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    best = [0] + [0] * n  # best[k]: cost of the first k items
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        longest = lengths[order[end - 1]]
        best[end], cut[end] = min(
            (best[start] + (end - start) * longest + run_cost, start) for start in range(end)
        )
    groups: list[list[int]] = []
    end = n
    while end > 0:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


class Batcher:
    """``submit(texts)`` returns a Future of that request's results; ``close()`` drains."""

    def __init__(
        self,
        model: BatchModel,
        max_batch: int,
        max_wait_s: float,
        workers: int = 1,
        observer: BatchObserver | None = None,
    ) -> None:
        self._model = model
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._observer = observer
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._closing = False
        self._pending = 0  # submitted and not yet answered
        self._running = 0  # jobs inside a model run now
        self._peak = (0, 0.0)  # (pending, when) of the recent peak
        self._threads = [
            threading.Thread(target=self._work, name=f"advisor-batch-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, texts: Sequence[str]) -> Future[list[Result]]:
        future: Future[list[Result]] = Future()
        with self._cond:
            if self._closing:
                raise ServerClosed("the server is stopping")
            self._queue.append(_Job(texts, future))
            self._pending += 1
            now = time.perf_counter()
            if self._pending >= self._peak[0] or now - self._peak[1] > PEAK_WINDOW_S:
                self._peak = (self._pending, now)
            self._cond.notify()
        return future

    def close(self, timeout: float | None = None) -> None:
        """Answer what is queued, then stop the workers."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    def _work(self) -> None:
        while (jobs := self._collect()) is not None:
            self._run(jobs)

    def _collect(self) -> list[_Job] | None:
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            deadline = self._queue[0].queued_at + self._max_wait_s
            while self._should_wait() and (left := deadline - time.perf_counter()) > 0:
                self._cond.wait(left)
            jobs: list[_Job] = []
            texts = 0
            while self._queue and (not jobs or texts + len(self._queue[0].texts) <= self._max_batch):
                job = self._queue.popleft()
                jobs.append(job)
                texts += len(job.texts)
            self._running += len(jobs)
            return jobs

    def _should_wait(self) -> bool:
        """More requests are likely on their way: wait for them (caller holds the lock)."""
        if self._closing or sum(len(j.texts) for j in self._queue) >= self._max_batch:
            return False
        peak, when = self._peak
        if time.perf_counter() - when > PEAK_WINDOW_S:
            peak = self._pending
        return len(self._queue) < peak - self._running

    def _run(self, jobs: list[_Job]) -> None:
        try:
            encodings = self._model.encode([t for j in jobs for t in j.texts])
        except Exception as e:  # a tokenizer failure fails these requests, not the server
            self._answer(jobs, e)
            return
        at = 0
        for job in jobs:
            job.encodings, at = encodings[at : at + len(job.texts)], at + len(job.texts)
        for group in plan_groups([j.length for j in jobs]):
            self._run_group([jobs[i] for i in group])

    def _run_group(self, jobs: list[_Job]) -> None:
        began = time.perf_counter()
        texts = [t for j in jobs for t in j.texts]
        try:
            results = self._model.infer(texts, [e for j in jobs for e in j.encodings])
        except Exception as e:
            self._answer(jobs, e)
            return
        if self._observer is not None:
            waited = [began - j.queued_at for j in jobs]
            self._observer.observe_run(len(texts), time.perf_counter() - began, waited)
        self._answer(jobs, results)

    def _answer(self, jobs: list[_Job], outcome: list[Result] | Exception) -> None:
        # Counted out before the futures resolve: a client's next request, sent the moment it
        # has its answer, must not see its last one still pending (a phantom second client).
        with self._cond:
            self._pending -= len(jobs)
            self._running -= len(jobs)
        at = 0
        for job in jobs:
            if isinstance(outcome, Exception):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome[at : at + len(job.texts)])
            at += len(job.texts)

