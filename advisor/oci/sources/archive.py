"""``docker save`` archives (``docker-archive:FILE[:REF]``), read in place.

The archive has no registry manifest, so advisor derives a Docker schema 2 manifest from
``manifest.json``: each layer's digest is the sha256 of the layer file as stored (taken from a
``blobs/sha256/HEX`` path, or the config's diff_id for an uncompressed tar, or hashed once),
and ``Image.digest`` is the sha256 of that derived manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, BinaryIO

from advisor.errors import AdvisorError, BadInputError
from advisor.oci.model import Descriptor
from advisor.oci.refs import DockerName, parse_docker_name
from advisor.oci.sources.base import Files, FilesSource, TarFiles, read_all
from advisor.oci.sources.manifests import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    field_of,
    load_json_object,
    parse_json,
)
from advisor.oci.sources.verify import digest_bytes

LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


class DockerArchiveSource(FilesSource):
    """One image of a ``docker save`` tar, chosen by REF (a RepoTag or ``@N``)."""

    def __init__(self, files: Files, tag: str, reference: str, what: str) -> None:
        super().__init__(files, reference, what)
        self.tag = tag
        try:
            self._manifest_digest = self._derive()
        except BaseException:
            files.close()
            raise

    def root(self) -> Descriptor:
        body = self.synthetic[self._manifest_digest]
        return Descriptor(DOCKER_MANIFEST, self._manifest_digest, len(body))

    def _derive(self) -> str:
        entry = self._select(self._entries())
        what = f"{self.what}: manifest.json"
        config_name = field_of(entry, "Config", str, what)
        config = read_all(self.files, config_name, self.what)
        config_digest = digest_bytes(config)
        self.synthetic[config_digest] = config
        diff_ids = _diff_ids(config, f"{self.what}: {config_name}")
        names = field_of(entry, "Layers", list, what)
        if len(names) != len(diff_ids):
            raise BadInputError(
                f"{self.what}: {len(names)} layers but the config lists {len(diff_ids)} diff_ids",
                hint="the archive is corrupt",
            )
        layers = [self._layer(str(n), d) for n, d in zip(names, diff_ids, strict=True)]
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": config_digest},
            "layers": layers,
        }
        body = json.dumps(manifest, separators=(",", ":")).encode()
        digest = digest_bytes(body)
        self.synthetic[digest] = body
        return digest

    def _entries(self) -> list[dict[str, Any]]:
        data = read_all(self.files, "manifest.json", self.what)
        entries = parse_json(data, f"{self.what}: manifest.json")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise BadInputError(f"{self.what}: manifest.json should be a list of objects")
        if not entries:
            raise BadInputError(f"{self.what} holds no image")
        return entries

    def _select(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.tag.startswith("@"):
            n = int(self.tag[1:])
            if n >= len(entries):
                raise BadInputError(
                    f"{self.what} holds {len(entries)} images, there is no {self.tag}"
                )
            return entries[n]
        if self.tag:
            wanted = parse_docker_name(self.tag)
            for entry in entries:
                if any(_same(wanted, t) for t in entry.get("RepoTags") or []):
                    return entry
            raise BadInputError(
                f"no image tagged '{wanted.familiar}' in {self.what}",
                hint=f"tags there: {_repo_tags(entries) or 'none'}; or pick one with @0, @1, ...",
            )
        if len(entries) > 1:
            raise BadInputError(
                f"{self.what} holds {len(entries)} images; name one with :REF",
                hint=f"tags there: {_repo_tags(entries) or 'none'}; or pick one with @0, @1, ...",
            )
        return entries[0]

    def _layer(self, name: str, diff_id: str) -> dict[str, Any]:
        size = self.files.size(name)
        if size is None:
            raise BadInputError(
                f"{self.what}: layer '{name}' is missing", hint="the archive is incomplete"
            )
        with self.files.open(name) as f:
            magic = f.read(4) or b""
        media_type = _media_type(magic)
        digest = _stored_digest(name) or (diff_id if media_type == LAYER_TAR else "")
        if not digest:
            digest = self._hash(name)
        self.blob_paths[digest] = name
        return {"mediaType": media_type, "size": size, "digest": digest}

    def _hash(self, name: str) -> str:
        h = hashlib.sha256()
        with self.files.open(name) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return f"sha256:{h.hexdigest()}"


def _same(wanted: DockerName, repo_tag: Any) -> bool:
    try:
        return isinstance(repo_tag, str) and parse_docker_name(repo_tag) == wanted
    except AdvisorError:  # a malformed RepoTag never matches
        return False


def _repo_tags(entries: list[dict[str, Any]]) -> str:
    return ", ".join(sorted(str(t) for e in entries for t in e.get("RepoTags") or []))


def _media_type(magic: bytes) -> str:
    if magic.startswith(b"\x1f\x8b"):
        return LAYER_GZIP
    if magic == b"\x28\xb5\x2f\xfd":
        return LAYER_ZSTD
    return LAYER_TAR


def _stored_digest(name: str) -> str:
    parts = name.split("/")
    if len(parts) >= 3 and parts[-3] == "blobs" and parts[-2] == "sha256" and len(parts[-1]) == 64:
        return f"sha256:{parts[-1]}"
    return ""


def _diff_ids(config: bytes, what: str) -> list[str]:
    obj = load_json_object(config, what)
    rootfs = field_of(obj, "rootfs", dict, what)
    diff_ids = field_of(rootfs, "diff_ids", list, f"{what} rootfs")
    if not all(isinstance(d, str) for d in diff_ids):
        raise BadInputError(f"{what}: rootfs.diff_ids should be strings")
    return diff_ids


def open_docker_archive(source: str | BinaryIO, tag: str, reference: str) -> DockerArchiveSource:
    """Open a docker-archive from a path, or from an open seekable file (a daemon's stream)."""
    if isinstance(source, str):
        if not Path(source).is_file():
            raise BadInputError(
                f"no such file: {source}", hint="docker-archive:FILE needs a `docker save` tar"
            )
        what = f"docker-archive {source}"
        files = TarFiles(Path(source), what)
    else:
        what = f"docker-archive of {reference}"
        files = TarFiles(source, what)
    return DockerArchiveSource(files, tag, reference, what)
