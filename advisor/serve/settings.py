"""Server settings, read once from the environment (the image config sets the defaults)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


def usable_cores(cgroup_fs: str = "/sys/fs/cgroup", self_cgroup: str = "/proc/self/cgroup") -> int:
    """The CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota
    (``cpu.max`` of its cgroup or an ancestor, ``ceil(quota / period)``): Kubernetes CPU
    limits set a quota, not a cpuset, so the affinity mask alone still shows every core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_cpu_quota(cgroup_fs, self_cgroup)
    return max(1, min(cores, quota)) if quota is not None else cores


def _cgroup_cpu_quota(cgroup_fs: str, self_cgroup: str) -> int | None:
    try:
        with open(self_cgroup, encoding="ascii") as f:
            line = next((ln for ln in f if ln.startswith("0::")), "")
    except OSError:
        return None
    if not line:
        return None  # cgroup v1 only: no cpu.max
    path = line[3:].strip().strip("/")
    parts = path.split("/") if path else []
    limits = []
    for depth in range(len(parts), -1, -1):  # the process's cgroup, then each ancestor
        limit = _cpu_max(os.path.join(cgroup_fs, *parts[:depth], "cpu.max"))
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


def _cpu_max(path: str) -> int | None:
    """``"QUOTA PERIOD"`` -> ceil(QUOTA / PERIOD); ``"max ..."``, no file or garbage -> None."""
    try:
        with open(path, encoding="ascii") as f:
            quota, period = f.read().split()[:2]
        q, p = int(quota), int(period)
    except (OSError, ValueError):
        return None
    return -(-q // p) if q > 0 and p > 0 else None


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
    # A batch worker per core, each run on one onnxruntime thread: at 8 clients on 2 cores this
    # spent the least CPU per request and beat one worker on both (benchmarks/load/README.md).
    workers: int = field(default_factory=usable_cores)
    max_connections: int = 64
    request_timeout_s: int = 10  # from a request's first byte to its last body byte
    keep_alive_s: int = 75  # an idle keep-alive connection is closed after this
    shutdown_timeout_s: int = 30  # SIGTERM: in-flight requests get this long to finish
    # How long a batch may wait for more requests. 0: a free worker takes what has queued at
    # once (with a worker per core and a run costing ~7 padded tokens, waiting for company
    # cost more than it saved: benchmarks/load/README.md).
    max_wait_ms: float = 0.0
    intra_op_threads: int = 1
    access_log: bool = True  # one JSON line per request on stdout
    model_name: str = ""  # the Open Inference Protocol's model name (default: serving.json's)
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
            keep_alive_s=_int(e, "KEEP_ALIVE_S", d.keep_alive_s, low=1, high=3600),
            shutdown_timeout_s=_int(e, "SHUTDOWN_TIMEOUT_S", d.shutdown_timeout_s, low=0, high=3600),
            max_wait_ms=_float(e, "MAX_WAIT_MS", d.max_wait_ms, low=0.0, high=10_000.0),
            intra_op_threads=_int(e, "ORT_INTRA_OP_THREADS", d.intra_op_threads, low=0),
            access_log=_bool(e, "ACCESS_LOG", d.access_log),
            model_name=e.get("MODEL_NAME", d.model_name),
            advisor_version=e.get("ADVISOR_VERSION", d.advisor_version),
        )


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    return int(_number(env, name, default, int, low, high))


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return float(_number(env, name, default, float, low, high))


def _number(env: Mapping[str, str], name: str, default: float, kind: type[int] | type[float],
            low: float, high: float | None) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError as e:
        what = "an integer" if kind is int else "a number"
        raise SettingsError(f"{name}={raw!r} is not {what}") from e
    if not low <= value <= (high if high is not None else value):  # also refuses nan
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise SettingsError(f"{name}={value} is out of range ({bound})")
    return value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (use 1/0, true/false, on/off)")
