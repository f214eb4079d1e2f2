"""Which distribution each wheel in pip's cache is, so removing a package also counts its wheel.

Without ``--no-cache-dir`` every wheel pip downloads stays in ``~/.cache/pip/http*/`` under a
hashed name (the body of the HTTP response, the wheel itself, possibly wrapped in cachecontrol's
headers). A package left out of requirements.txt is never downloaded, so its cached wheel goes
too: on the case study the dev tools' wheels are a quarter of what removing them frees. The
wheel is a zip whose central directory, at the end of the file, ends with the ``.dist-info/``
entries (RECORD is written last), so the file's tail names the distribution. Wheels pip built
itself (``~/.cache/pip/wheels/``) are named by their file name.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

from advisor.oci.model import Capture, Entry

# The tail of a cached response to look in: the zip's central directory ends there.
TAIL = 64 * 1024
_DIST_INFO = re.compile(rb"([A-Za-z0-9][A-Za-z0-9_.]*)-[^/\x00-]+\.dist-info/(?:RECORD|METADATA|WHEEL)")
_HTTP_DIRS = ("/.cache/pip/http/", "/.cache/pip/http-v2/")
_WHEEL_FILE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.]*)-[^-]+-.*\.whl$")


def is_cached_response(path: str) -> bool:
    """A file of pip's HTTP cache (``path`` without the leading slash)."""
    return any(d in "/" + path for d in _HTTP_DIRS) and not path.endswith(".lock")


def _trim(head: bytes, tail: bytes, start: int, size: int) -> tuple[bytes, bytes]:
    """Keep only the distribution's name out of the captured tail (b"" when none)."""
    found = _DIST_INFO.findall(tail)
    return b"", found[-1] if found else b""


def cache_capture(entry: Entry) -> Capture | None:
    if not is_cached_response(entry.path):
        return None
    return Capture(head=0, tail=TAIL, trim=_trim)


def normalize(name: str) -> str:
    """PEP 503: ``Jupyter_Core`` and ``jupyter-core`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def cached_wheel_owner(path: str, tail: bytes | None) -> str | None:
    """The normalised distribution a cache file holds the wheel of, or None."""
    if is_cached_response(path):
        return normalize(tail.decode("ascii", "replace")) if tail else None
    if "/.cache/pip/wheels/" in "/" + path:
        m = _WHEEL_FILE.match(posixpath.basename(path))
        return normalize(m.group(1)) if m else None
    return None


def cached_wheels(files: Iterable[tuple[str, int, bytes | None]]) -> dict[str, dict[str, int]]:
    """Distribution -> {cache file path: bytes}, from (path, size, captured tail) triples."""
    out: dict[str, dict[str, int]] = {}
    for path, size, tail in files:
        owner = cached_wheel_owner(path, tail)
        if owner is not None and size > 0:
            out.setdefault(owner, {})[path] = size
    return out
