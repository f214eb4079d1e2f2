"""Media types and the JSON shapes of descriptors, checked with messages that say what is wrong."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from advisor.errors import BadInputError
from advisor.oci.model import Descriptor, Platform
from advisor.oci.sources.verify import split_digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
LAYER_TYPES = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)
ACCEPT_MANIFESTS = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
REF_NAME = "org.opencontainers.image.ref.name"


def parse_json(data: bytes, what: str, hint: str = "the image is corrupt") -> Any:
    """JSON from a stranger's image: invalid, too deep or absurd numbers are bad input.

    ``json.loads`` raises ValueError for bad text and for integers past Python's digit limit,
    and RecursionError for deep nesting; each becomes one ``BadInputError``, never a crash.
    """
    try:
        return json.loads(data)
    except RecursionError as e:
        raise BadInputError(f"{what} is JSON nested too deeply to read", hint=hint) from e
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise BadInputError(f"{what} is not valid JSON: {e}", hint=hint) from e


def load_json_object(data: bytes, what: str) -> dict[str, Any]:
    obj = parse_json(data, what)
    if not isinstance(obj, dict):
        raise BadInputError(f"{what} is JSON but not an object", hint="the image is corrupt")
    return obj


def field_of(obj: Mapping[str, Any], key: str, kind: type, what: str, default: Any = None) -> Any:
    """``obj[key]`` checked to be a ``kind``; missing is an error unless a default is given."""
    if key not in obj or obj[key] is None:
        if default is not None:
            return default
        raise BadInputError(f"{what} has no '{key}'", hint="the image is corrupt or not an image")
    value = obj[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise BadInputError(
            f"{what}: '{key}' should be a {kind.__name__}, not {type(value).__name__}",
            hint="the image is corrupt or not an image",
        )
    return value


def parse_platform_obj(obj: Any, what: str) -> Platform | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise BadInputError(f"{what}: 'platform' should be an object")
    return Platform(
        str(obj.get("os", "")), str(obj.get("architecture", "")), str(obj.get("variant", "") or "")
    )


def parse_descriptor(obj: Any, what: str, media_type: str = "") -> Descriptor:
    """A descriptor object; ``media_type`` fills in for formats that omit it."""
    if not isinstance(obj, dict):
        raise BadInputError(f"{what} should be a descriptor object", hint="the image is corrupt")
    digest = field_of(obj, "digest", str, what)
    split_digest(digest)
    size = field_of(obj, "size", int, what)
    if size < 0:
        raise BadInputError(f"{what}: negative size {size}", hint="the image is corrupt")
    mt = field_of(obj, "mediaType", str, what, default=media_type or None)
    annotations = field_of(obj, "annotations", dict, what, default={})
    return Descriptor(
        media_type=mt,
        digest=digest,
        size=size,
        annotations={str(k): str(v) for k, v in annotations.items()},
        platform=parse_platform_obj(obj.get("platform"), what),
    )


def unknown_media_type(media_type: str, what: str) -> BadInputError:
    if media_type in DOCKER_SCHEMA1:
        return BadInputError(
            f"{what} uses Docker's deprecated schema 1 manifest ({media_type})",
            hint="push the image again with a current Docker or skopeo to get schema 2",
        )
    return BadInputError(
        f"{what} has unsupported media type '{media_type}'",
        hint="advisor reads OCI and Docker schema 2 images",
    )
