"""Build small real images for tests: a list of layer dicts in, an image reference out.

``make_image(tmp_path, [{"etc/a": b"x"}, {"etc/a": FileSpec(whiteout=True)}])`` writes an
OCI layout (or an oci-archive / docker-archive file) with advisor's deterministic writer and
returns the reference string (``oci:DIR:latest`` ...) that ``open_image`` and skopeo accept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from advisor.oci.tarball import Compression, FileSpec, LayerSpec
from advisor.oci.writer import WrittenImage, write_image

Format = Literal["oci", "docker-archive", "oci-archive"]

__all__ = ["FileSpec", "make_image", "make_image_written"]


def make_image_written(
    tmp_path: Path,
    layers: Sequence[LayerSpec],
    fmt: Format = "oci",
    compression: Compression = "gzip",
    history: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    name: str = "image",
    tag: str = "latest",
) -> tuple[str, WrittenImage]:
    """Like ``make_image`` but also returns what the writer reported (digests, layers)."""
    cfg: dict[str, Any] = dict(config or {})
    if history is not None:
        cfg["history"] = [{"created_by": line} for line in history]
    if fmt == "oci":
        ref = f"oci:{tmp_path / name}:{tag}"
    elif fmt == "oci-archive":
        ref = f"oci-archive:{tmp_path / (name + '.tar')}:{tag}"
    else:
        ref = f"docker-archive:{tmp_path / (name + '.tar')}:advisor-test/{name}:{tag}"
    written = write_image(ref, layers, cfg, compression=compression)
    return ref, written


def make_image(
    tmp_path: Path,
    layers: Sequence[LayerSpec],
    fmt: Format = "oci",
    compression: Compression = "gzip",
    history: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    name: str = "image",
    tag: str = "latest",
) -> str:
    """Write an image made of ``layers`` (path -> bytes | FileSpec) and return its reference."""
    return make_image_written(tmp_path, layers, fmt, compression, history, config, name, tag)[0]
