"""Server settings, read once from the environment (the image config sets the defaults)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What the server needs to start: where the model is, what to bind, what to bound."""

    model_dir: str = "/app/model"
    host: str = "0.0.0.0"
    port: int = 8080
    max_body_bytes: int = 1 << 20
    max_batch: int = 64
    max_text_chars: int = 100_000
    workers: int = 1
    max_connections: int = 64
    request_timeout_s: int = 10  # from a request's first line to its last body byte
    intra_op_threads: int = 0
    advisor_version: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        d = cls()
        return cls(
            model_dir=e.get("MODEL_DIR", d.model_dir),
            host=e.get("HOST", d.host),
            port=_int(e, "PORT", d.port, low=0, high=65535),
            max_body_bytes=_int(e, "MAX_BODY_BYTES", d.max_body_bytes, low=1),
            max_batch=_int(e, "MAX_BATCH", d.max_batch, low=1),
            max_text_chars=_int(e, "MAX_TEXT_CHARS", d.max_text_chars, low=1),
            workers=_int(e, "WORKERS", d.workers, low=1, high=256),
            max_connections=_int(e, "MAX_CONNECTIONS", d.max_connections, low=1, high=4096),
            request_timeout_s=_int(e, "REQUEST_TIMEOUT_S", d.request_timeout_s, low=1, high=3600),
            intra_op_threads=_int(e, "ORT_INTRA_OP_THREADS", d.intra_op_threads, low=0),
            advisor_version=e.get("ADVISOR_VERSION", d.advisor_version),
        )


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise SettingsError(f"{name}={raw!r} is not an integer") from e
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise SettingsError(f"{name}={value} is out of range ({bound})")
    return value
