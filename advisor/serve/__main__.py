"""``python -m advisor.serve``: load the model, then serve until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType

from .model import Classifier, ModelError
from .server import App, make_server
from .settings import Settings, SettingsError


def main() -> int:
    started = time.monotonic()
    try:
        settings = Settings.from_env()
        classifier = Classifier(settings.model_dir, settings.intra_op_threads)
    except (SettingsError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    server = make_server(App(classifier, settings))
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            # shutdown() blocks until serve_forever returns: never call it on that thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    host, port = server.server_address[:2]
    print(
        f"advisor-serve: {classifier.info.model_name} on http://{host!s}:{port} "
        f"(loaded in {time.monotonic() - started:.2f}s, workers={settings.workers})",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever(poll_interval=0.2)
    server.close_idle()
    server.server_close()  # joins the request threads: in-flight requests finish
    print("advisor-serve: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
