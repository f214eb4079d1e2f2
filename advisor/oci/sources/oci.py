"""OCI image layouts: a directory (``oci:DIR[:TAG]``) or a tar of one (``oci-archive:FILE[:TAG]``)."""

from __future__ import annotations

import json
from pathlib import Path

from advisor.errors import BadInputError
from advisor.oci.model import Descriptor
from advisor.oci.sources.base import DirFiles, Files, FilesSource, TarFiles, read_all
from advisor.oci.sources.manifests import (
    OCI_INDEX,
    REF_NAME,
    field_of,
    load_json_object,
    parse_descriptor,
)
from advisor.oci.sources.verify import digest_bytes


class OciLayoutSource(FilesSource):
    """Blobs of an OCI image layout; the tag picks an ``index.json`` entry by its ref name."""

    def __init__(self, files: Files, tag: str, reference: str, what: str) -> None:
        super().__init__(files, reference, what)
        self.tag = tag
        try:
            self._check_layout()
            self._index_bytes = read_all(files, "index.json", what)
        except BaseException:
            files.close()
            raise

    def _check_layout(self) -> None:
        data = read_all(self.files, "oci-layout", self.what)
        layout = load_json_object(data, f"{self.what}: oci-layout")
        version = field_of(layout, "imageLayoutVersion", str, f"{self.what}: oci-layout")
        if not version.startswith("1."):
            raise BadInputError(f"{self.what}: unsupported imageLayoutVersion {version}")

    def root(self) -> Descriptor:
        what = f"{self.what}: index.json"
        index = load_json_object(self._index_bytes, what)
        entries = field_of(index, "manifests", list, what)
        descriptors = [parse_descriptor(e, f"{what} manifests[{i}]") for i, e in enumerate(entries)]
        if self.tag:
            return self._by_tag(descriptors)
        if len(descriptors) == 1:
            return descriptors[0]
        if descriptors and all(d.platform is not None for d in descriptors):
            # index.json itself is a multi-platform index: let the loader pick a platform
            digest = digest_bytes(self._index_bytes)
            self.synthetic[digest] = self._index_bytes
            return Descriptor(OCI_INDEX, digest, len(self._index_bytes))
        return self._ambiguous(descriptors)

    def _by_tag(self, descriptors: list[Descriptor]) -> Descriptor:
        found = [d for d in descriptors if d.annotations.get(REF_NAME) == self.tag]
        if not found:
            raise BadInputError(
                f"no image tagged '{self.tag}' in {self.what}",
                hint=f"tags there: {_tags(descriptors) or 'none'}",
            )
        if len(found) > 1 and len({d.digest for d in found}) > 1:
            if all(d.platform is not None for d in found):
                return self._synthetic_index(found)
            raise BadInputError(f"tag '{self.tag}' names several images in {self.what}")
        return found[0]

    def _synthetic_index(self, found: list[Descriptor]) -> Descriptor:
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": d.media_type,
                        "digest": d.digest,
                        "size": d.size,
                        "platform": {
                            "os": d.platform.os if d.platform else "",
                            "architecture": d.platform.architecture if d.platform else "",
                            "variant": d.platform.variant if d.platform else "",
                        },
                    }
                    for d in found
                ],
            },
            separators=(",", ":"),
        ).encode()
        digest = digest_bytes(body)
        self.synthetic[digest] = body
        return Descriptor(OCI_INDEX, digest, len(body))

    def _ambiguous(self, descriptors: list[Descriptor]) -> Descriptor:
        if not descriptors:
            raise BadInputError(f"{self.what} holds no image", hint="index.json lists no manifests")
        raise BadInputError(
            f"{self.what} holds {len(descriptors)} images; name one with :TAG",
            hint=f"tags there: {_tags(descriptors) or 'none'}",
        )


def _tags(descriptors: list[Descriptor]) -> str:
    return ", ".join(
        sorted({d.annotations[REF_NAME] for d in descriptors if REF_NAME in d.annotations})
    )


def open_oci_layout(path: str, tag: str, reference: str) -> OciLayoutSource:
    root = Path(path)
    if not root.is_dir():
        raise BadInputError(
            f"no OCI layout directory at {path}",
            hint="oci:DIR needs a directory with oci-layout and index.json",
        )
    return OciLayoutSource(DirFiles(root), tag, reference, f"OCI layout {path}")


def open_oci_archive(path: str, tag: str, reference: str) -> OciLayoutSource:
    if not Path(path).is_file():
        raise BadInputError(
            f"no such file: {path}", hint="oci-archive:FILE needs a tar of an OCI layout"
        )
    files = TarFiles(Path(path), f"oci-archive {path}")
    return OciLayoutSource(files, tag, reference, f"oci-archive {path}")


__all__ = ["OciLayoutSource", "open_oci_archive", "open_oci_layout"]
