"""A file or directory named without a transport (``img.tar``, ``./out``, ``/x/layout``).

skopeo refuses such a reference; Docker reads it as a repository name and goes to Docker Hub.
When it names something on disk, advisor looks at what is there and reads it with the
transport it needs: a directory with ``oci-layout`` is an OCI layout, a tar holding
``manifest.json`` is a docker-archive (``docker save``), one holding ``oci-layout`` /
``index.json`` an oci-archive. Anything else is an error that names the transports.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from advisor.errors import BadInputError

_TRANSPORTS = "docker-archive:FILE, oci-archive:FILE or oci:DIR"


def has_transport(text: str) -> bool:
    return text.startswith(("oci:", "oci-archive:", "docker-archive:", "docker://", "docker-daemon:"))


def looks_like_path(text: str) -> bool:
    """Spelled as a path: no Docker name starts with these, or ends in an archive suffix."""
    return text.startswith(("/", "./", "../", "~")) or text in (".", "..") or \
        text.lower().endswith((".tar", ".tar.gz", ".tgz", ".tar.zst"))


def detect(text: str) -> str | None:
    """The transport-qualified reference for a local path, None when it names nothing on disk
    (and does not look like a path: then it is a Docker name)."""
    spelled = os.path.expanduser(text)
    path = Path(spelled)
    if not path.exists():
        if looks_like_path(text):
            raise BadInputError(f"no such file or directory: {text}",
                                hint=f"give an existing image archive or layout ({_TRANSPORTS})")
        return None
    if path.is_dir():
        if (path / "oci-layout").is_file() or (path / "index.json").is_file():
            return f"oci:{spelled}"
        if not looks_like_path(text):
            return None  # a directory that happens to share a Docker name: the name wins
        raise BadInputError(f"{text} is a directory but not an OCI layout (no oci-layout or index.json)",
                            hint="write oci:DIR for an OCI image layout; a docker-archive is a tar file")
    if not looks_like_path(text) and not tarfile.is_tarfile(path):
        return None  # a file that happens to share a Docker name: the name wins
    return _archive_kind(path, spelled)


def _archive_kind(path: Path, text: str) -> str:
    names: set[str] = set()
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:  # headers only; members' bytes are skipped
                name = member.name.removeprefix("./")
                if name in ("manifest.json", "oci-layout", "index.json"):
                    names.add(name)
                if "manifest.json" in names or {"oci-layout", "index.json"} <= names:
                    break
    except (tarfile.TarError, OSError) as e:
        raise BadInputError(f"{text} is a file but not a tar archive of an image: {e}",
                            hint=f"name the transport: {_TRANSPORTS}") from e
    if "manifest.json" in names:
        return f"docker-archive:{text}"
    if names & {"oci-layout", "index.json"}:
        return f"oci-archive:{text}"
    raise BadInputError(f"{text} is a tar archive without manifest.json or index.json",
                        hint=f"an image archive comes from `docker save` or skopeo; name it with {_TRANSPORTS}")
