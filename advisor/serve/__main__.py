"""``python -m advisor.serve``: load the model, then serve until SIGTERM or SIGINT."""

from __future__ import annotations

import sys
import time

from .app import App
from .model import Model, ModelError
from .server import BindError, make_server
from .settings import Settings, SettingsError


def main() -> int:
    started = time.monotonic()
    try:
        settings = Settings.from_env()
        model = Model(settings.model_dir, settings.intra_op_threads)
    except (SettingsError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    loaded = time.monotonic() - started
    app = App(model, settings, load_seconds=loaded)
    try:
        server = make_server(app)
    except BindError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        app.close()
        return 2
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    print(
        f"advisor-serve: {model.info.model_name} on http://{host}:{server.port} "
        f"(loaded in {loaded:.2f}s, workers={settings.workers}, max_batch={settings.max_batch}, "
        f"max_wait_ms={settings.max_wait_ms:g})",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()  # returns once a stop signal's drain is done
    app.close()
    print("advisor-serve: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
