"""Image references with skopeo's transport syntax, and the platform to pick from an index.

``parse_ref`` turns what a user types into an ``ImageRef``; ``str(ref)`` gives the canonical
spelling back, so ``parse_ref(str(ref)) == ref``. Docker names are normalised like the Docker
CLI does (``ubuntu`` -> ``docker.io/library/ubuntu:latest``).
"""

from __future__ import annotations

import enum
import platform as _platform
import re
from dataclasses import dataclass

from advisor.errors import UsageError
from advisor.oci.model import Platform

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

_REF_HINT = (
    "use oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF], "
    "docker://HOST/REPO:TAG, docker-daemon:NAME:TAG or NAME[:TAG]"
)
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?\Z"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST = re.compile(r"(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})\Z")
_OCI_TAG = re.compile(r"[a-zA-Z0-9._-]+(?:[:@/+][a-zA-Z0-9._-]+)*\Z")
_UNSUPPORTED = ("dir", "containers-storage", "ostree", "sif", "tarball", "docker-daemon-socket")


class Transport(enum.Enum):
    OCI = "oci"
    OCI_ARCHIVE = "oci-archive"
    DOCKER_ARCHIVE = "docker-archive"
    REGISTRY = "docker"
    DAEMON = "docker-daemon"
    NAME = "name"  # bare name: the local engine if one answers, else the registry


@dataclass(frozen=True, slots=True)
class DockerName:
    """A normalised Docker reference: ``registry/repository[:tag][@digest]``."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    def __str__(self) -> str:
        s = f"{self.registry}/{self.repository}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag

    @property
    def familiar(self) -> str:
        """The short form Docker prints (``ubuntu:latest``), as found in ``RepoTags``."""
        repo = self.repository
        if self.registry == DOCKER_HUB:
            repo = repo.removeprefix("library/")
        else:
            repo = f"{self.registry}/{repo}"
        return f"{repo}:{self.tag}" if self.tag else repo


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One parsed image reference.

    ``path`` is set for the file transports (``oci``, ``oci-archive``, ``docker-archive``) and
    ``tag`` is their optional tag (for docker-archive: a Docker name or ``@N``, the N-th image).
    ``name`` is set for ``docker``, ``docker-daemon`` and bare names, and for a docker-archive
    REF that is a name.
    """

    transport: Transport
    path: str = ""
    tag: str = ""
    name: DockerName | None = None

    def __str__(self) -> str:
        t = self.transport
        if t in (Transport.OCI, Transport.OCI_ARCHIVE, Transport.DOCKER_ARCHIVE):
            return f"{t.value}:{self.path}:{self.tag}" if self.tag else f"{t.value}:{self.path}"
        if t is Transport.REGISTRY:
            return f"docker://{self.name}"
        if t is Transport.DAEMON:
            return f"docker-daemon:{self.name}"
        return str(self.name)

    @property
    def docker_name(self) -> DockerName:
        if self.name is None:
            raise UsageError(f"{self} does not name a Docker repository", hint=_REF_HINT)
        return self.name


def parse_docker_name(text: str) -> DockerName:
    """Normalise a Docker reference as the Docker CLI does; raise ``UsageError`` if malformed."""
    rest, digest = _split_digest(text)
    domain, remainder = _split_domain(rest, text)
    repository, tag = _split_tag(remainder)
    if domain == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    _check_name(text, domain, repository, tag, digest)
    if not tag and not digest:
        tag = "latest"
    return DockerName(domain, repository, tag, digest)


def _split_digest(text: str) -> tuple[str, str]:
    if "@" not in text:
        return text, ""
    rest, digest = text.split("@", 1)
    if not _DIGEST.match(digest):
        raise UsageError(
            f"invalid digest in image reference '{text}'",
            hint="a digest looks like @sha256: followed by 64 lowercase hex digits",
        )
    return rest, digest


def _split_domain(rest: str, text: str) -> tuple[str, str]:
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        if not _DOMAIN.match(first):
            raise UsageError(f"invalid registry host '{first}' in '{text}'", hint=_REF_HINT)
        domain = DOCKER_HUB if first in ("index.docker.io", "registry-1.docker.io") else first
        return domain, remainder
    return DOCKER_HUB, rest


def _split_tag(remainder: str) -> tuple[str, str]:
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        return remainder[:colon], remainder[colon + 1 :]
    return remainder, ""


def _check_name(text: str, domain: str, repository: str, tag: str, digest: str) -> None:
    if not repository or not all(_COMPONENT.match(c) for c in repository.split("/")):
        raise UsageError(
            f"invalid repository name in image reference '{text}'",
            hint="repository names are lowercase letters, digits and . _ - separated by /",
        )
    if tag and not _TAG.match(tag):
        raise UsageError(f"invalid tag '{tag}' in image reference '{text}'", hint=_REF_HINT)
    if len(domain) + len(repository) + 1 > 255:
        raise UsageError(f"image reference '{text}' is longer than 255 characters")


def _split_path(transport: Transport, body: str, text: str) -> tuple[str, str]:
    # skopeo splits at the first colon too: paths with ':' cannot carry a tag
    path, _, tag = body.partition(":")
    if not path:
        raise UsageError(f"'{text}' names no file or directory", hint=_REF_HINT)
    return path, tag


def _file_ref(transport: Transport, body: str, text: str) -> ImageRef:
    path, tag = _split_path(transport, body, text)
    if transport is not Transport.DOCKER_ARCHIVE:
        if tag and not _OCI_TAG.match(tag):
            raise UsageError(f"invalid tag '{tag}' in '{text}'", hint=_REF_HINT)
        return ImageRef(transport, path=path, tag=tag)
    if not tag:
        return ImageRef(transport, path=path)
    if tag.startswith("@"):
        if not tag[1:].isdigit():
            raise UsageError(f"invalid image index '{tag}' in '{text}'", hint="use @0, @1, ...")
        return ImageRef(transport, path=path, tag=tag)
    name = parse_docker_name(tag)
    if name.digest:
        raise UsageError(f"a docker-archive REF cannot carry a digest: '{text}'", hint=_REF_HINT)
    return ImageRef(transport, path=path, tag=str(name), name=name)


def parse_ref(text: str) -> ImageRef:
    """Parse an image reference (docs/DESIGN.md, "Image references"); ``UsageError`` if malformed."""
    text = text.strip()
    if not text:
        raise UsageError("empty image reference", hint=_REF_HINT)
    for transport in (Transport.OCI_ARCHIVE, Transport.DOCKER_ARCHIVE, Transport.OCI):
        prefix = f"{transport.value}:"
        if text.startswith(prefix):
            return _file_ref(transport, text[len(prefix) :], text)
    if text.startswith("docker://"):
        return ImageRef(Transport.REGISTRY, name=parse_docker_name(text[len("docker://") :]))
    if text.startswith("docker-daemon:"):
        return ImageRef(Transport.DAEMON, name=parse_docker_name(text[len("docker-daemon:") :]))
    scheme = text.split(":", 1)[0]
    if scheme in _UNSUPPORTED or text.startswith(("http://", "https://")):
        raise UsageError(f"unsupported image transport '{scheme}' in '{text}'", hint=_REF_HINT)
    return ImageRef(Transport.NAME, name=parse_docker_name(text))


def as_ref(ref: str | ImageRef) -> ImageRef:
    return ref if isinstance(ref, ImageRef) else parse_ref(ref)


_MACHINES = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


def host_platform() -> Platform:
    """This machine's platform in OCI terms (``linux/amd64`` on x86_64)."""
    arch, variant = _MACHINES.get(_platform.machine().lower(), (_platform.machine().lower(), ""))
    return Platform("linux", arch, variant)


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]`` as given to ``--platform``."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(
            f"invalid platform '{text}'", hint="use OS/ARCH[/VARIANT], e.g. linux/amd64"
        )
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def platform_matches(wanted: Platform, offered: Platform) -> bool:
    """OCI platform matching; arm64's default variant is v8, so "" and "v8" agree."""
    if (wanted.os, wanted.architecture) != (offered.os, offered.architecture):
        return False
    if not wanted.variant:
        return True
    default = "v8" if wanted.architecture == "arm64" else ""
    return (offered.variant or default) == wanted.variant
