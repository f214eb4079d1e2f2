"""One JSON line per answered request on stdout, written by a thread off the event loop.

The event loop only formats the line and queues it; a writer thread flushes what queued
every 50 ms: a slow or full stdout (a log shipper that stalls) must never stall serving. The queue is bounded; lines past it are dropped and
counted, and the count is written once the writer catches up.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

QUEUE_LINES = 10_000
FLUSH_S = 0.05
MAX_PATH = 256  # characters of the path logged (a path may be 64 kB)


class AccessLog:
    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self._stream = stream
        self._queue: queue.Queue[str | None] = queue.Queue(QUEUE_LINES)
        self._dropped = 0
        self._thread: threading.Thread | None = None
        if enabled:
            self._thread = threading.Thread(target=self._write, name="advisor-log", daemon=True)
            self._thread.start()

    def request(self, scope: Mapping[str, Any], status: int, size: int, seconds: float,
                texts: int) -> None:
        if not self.enabled:
            return
        client = scope.get("client")
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "client": f"{client[0]}:{client[1]}" if client else None,
            "method": scope["method"],
            "path": scope["path"][:MAX_PATH],
            "status": status,
            "bytes": size,
            "duration_ms": round(seconds * 1000, 3),
        }
        if texts:
            line["texts"] = texts
        try:
            self._queue.put_nowait(json.dumps(line, separators=(",", ":")))
        except queue.Full:
            self._dropped += 1

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(5)

    def _write(self) -> None:
        while True:
            # Wake every FLUSH_S, not on every line: a thread woken per request would take
            # the GIL from the event loop in the middle of answering the next one.
            time.sleep(FLUSH_S)
            lines: list[str | None] = []
            while len(lines) < QUEUE_LINES:
                try:
                    lines.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in lines
            text = [x for x in lines if x is not None]
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                text.append(json.dumps({"event": "access-log-dropped", "lines": dropped}))
            if text:
                stream = self._stream or sys.stdout
                try:
                    stream.write("\n".join(text) + "\n")
                    stream.flush()
                except (OSError, ValueError):  # stdout closed: serving goes on, unlogged
                    pass
            if stop:
                return
