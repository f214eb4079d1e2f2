"""Which file contents the analyses need kept during the single streaming pass over a layer.

``capture_for`` is called for every tar member, so it decides from the path and size alone,
with string tests only (no regex, no filesystem).
"""

from __future__ import annotations

import posixpath

from advisor.advise.facts.elf import summarise, table_span
from advisor.advise.facts.pipcache import cache_capture
from advisor.advise.facts.secrets import secret_capture
from advisor.oci.layercache import LayerCache, code_version
from advisor.oci.model import Capture, Entry, EntryKind
from advisor.units import WEIGHT_SUFFIXES

# A metadata file larger than this is not metadata any more: keep the head only.
MAX_WHOLE = 64 * 1024 * 1024
# ELF: the 64-byte header, then the section table wherever the header says it is.
ELF_HEAD = 64
# Weights: enough of the head to tell two copies of one file from two different files.
WEIGHT_HEAD = 4096
WEIGHT_MIN_SIZE = 1024 * 1024
APP_SOURCE_MAX = 64 * 1024
# A .pyc's 16-byte header: magic, flags (bit 0: hash-based, written on purpose), hash or mtime.
PYC_HEAD = 16

DIST_INFO_FILES = frozenset(
    {"METADATA", "RECORD", "top_level.txt", "INSTALLER", "direct_url.json", "REQUESTED"}
)
EGG_INFO_FILES = frozenset({"PKG-INFO", "installed-files.txt", "top_level.txt", "requires.txt"})
APP_FILES = frozenset(
    {"requirements.txt", "requirements-dev.txt", "pyproject.toml", "Pipfile", "setup.cfg",
     "Dockerfile", ".dockerignore", "environment.yml"}
)


def _whole(entry: Entry) -> Capture:
    return Capture(head=max(1, min(entry.size, MAX_WHOLE)))


def is_shared_object(name: str) -> bool:
    """``libfoo.so``, ``libfoo.so.1.2``, ``_ext.cpython-311-x86_64-linux-gnu.so``."""
    return name.endswith(".so") or ".so." in name


def _is_python_lib(path: str) -> bool:
    return "/site-packages/" in path or "/dist-packages/" in path or "/lib/python" in path


def _metadata_capture(entry: Entry, parent: str, name: str) -> Capture | None:
    pname = posixpath.basename(parent)
    if pname.endswith(".dist-info") and name in DIST_INFO_FILES:
        return _whole(entry)
    if pname.endswith(".egg-info") and name in EGG_INFO_FILES:
        return _whole(entry)
    if name.endswith(".egg-info") or name == "pyvenv.cfg":
        return _whole(entry)  # a Debian single-file egg-info is its PKG-INFO
    if pname == "conda-meta" and name.endswith(".json"):
        return _whole(entry)
    return None


def _system_capture(entry: Entry, path: str, name: str) -> Capture | None:
    if path in ("etc/os-release", "usr/lib/os-release", "var/lib/dpkg/status"):
        return _whole(entry)
    if path.startswith("var/lib/dpkg/info/") and name.endswith(".list"):
        return _whole(entry)
    if path.startswith("var/lib/dpkg/status.d/"):
        return _whole(entry)
    return None


def _content_capture(entry: Entry, path: str, name: str) -> Capture | None:
    if is_shared_object(name):
        return Capture(head=ELF_HEAD, span=table_span, trim=summarise)
    if name == "config.json" and entry.size <= 1024 * 1024:
        return _whole(entry)
    if "/huggingface/hub/" in path and "/blobs/" in path and entry.size <= APP_SOURCE_MAX:
        return _whole(entry)  # a hub blob is named by hash: small ones are configs
    if entry.size >= WEIGHT_MIN_SIZE and name.endswith(WEIGHT_SUFFIXES):
        return Capture(head=WEIGHT_HEAD)
    if name.endswith(".pyc"):
        return Capture(head=min(PYC_HEAD, entry.size)) if entry.size else None
    if _is_python_lib(path):
        return None
    if name in APP_FILES or (name.startswith("requirements") and name.endswith(".txt")):
        return _whole(entry) if entry.size <= APP_SOURCE_MAX else None
    if name.endswith(".py") and entry.size <= APP_SOURCE_MAX and not path.startswith("usr/"):
        return _whole(entry)
    return None


def capture_for(entry: Entry) -> Capture | None:
    """The part of ``entry``'s content the analyses read, or None to skip its bytes."""
    if entry.kind is not EntryKind.FILE:
        return None
    path = entry.path
    parent, name = posixpath.split(path)
    return (
        _metadata_capture(entry, parent, name)
        or _system_capture(entry, path, name)
        or _content_capture(entry, path, name)
        or cache_capture(entry)  # the name of the wheel in each pip cache entry
        or secret_capture(entry)  # small key/credential/.env files, for sec-secrets-in-layers
    )


def capture_cache() -> LayerCache:
    """The layer cache for walks made with ``capture_for``: versioned with this module, the
    secret and ELF capture rules it uses, and the walk itself."""
    return LayerCache(code_version([__name__, "advisor.advise.facts.secrets", "advisor.advise.facts.elf",
                                    "advisor.advise.facts.pipcache"]))
