"""What every source offers the loader, and the file trees (directory or tar) they read from."""

from __future__ import annotations

import gzip
import io
import itertools
import os
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from advisor.errors import BadInputError
from advisor.oci.model import Descriptor
from advisor.oci.sources.verify import FileSection, open_verified, split_digest, verify_bytes

MAX_MANIFEST_BYTES = 8 << 20  # manifests and configs are JSON documents, never this large
# A spool (a gunzipped docker-archive, a daemon's ``docker save`` stream) stops while this much
# of its temp filesystem is still free: a small gzip bomb must not fill the disk under /tmp.
SPOOL_RESERVE_BYTES = 1 << 30
_SPOOL_CHUNK = 1 << 20
_SPOOL_CHECK_EVERY = 64  # chunks between free-space checks


def spool(reader: BinaryIO | io.RawIOBase | gzip.GzipFile, what: str) -> BinaryIO:
    """Copy a forward-only stream into an anonymous temp file (gone on close), refusing to
    leave less than ``SPOOL_RESERVE_BYTES`` free on the temp filesystem."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - returned open, owned by the caller
    try:
        where = tempfile.gettempdir()
        for n in itertools.count():
            chunk = reader.read(_SPOOL_CHUNK)
            if not chunk:
                break
            out.write(chunk)
            if n % _SPOOL_CHECK_EVERY == 0 and shutil.disk_usage(where).free < SPOOL_RESERVE_BYTES:
                raise BadInputError(
                    f"{what} expands past the free space of {where} "
                    f"({out.tell() / 1e9:.1f} GB written, under {SPOOL_RESERVE_BYTES / 1e9:.1f} GB left)",
                    hint="gunzip it onto a disk with room (or set TMPDIR to one) and pass the plain .tar")
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


class ManifestSource(Protocol):
    """An ``ImageSource`` that also knows where its image's manifest tree starts."""

    reference: str

    def root(self) -> Descriptor:
        """The descriptor of the manifest or index the reference names."""
        ...

    def read_manifest(self, descriptor: Descriptor) -> bytes:
        """A manifest or index (or a config) by descriptor, verified."""
        ...

    def open_blob(self, descriptor: Descriptor) -> BinaryIO: ...

    def close(self) -> None: ...


def check_small(descriptor: Descriptor, what: str) -> None:
    if descriptor.size > MAX_MANIFEST_BYTES or descriptor.size < 0:
        raise BadInputError(
            f"{what} {descriptor.digest} claims {descriptor.size} bytes, not a plausible JSON document",
            hint="the image is corrupt or not an image",
        )


class Files(Protocol):
    """Named files inside a layout or an archive."""

    def size(self, name: str) -> int | None: ...

    def open(self, name: str) -> io.RawIOBase: ...

    def close(self) -> None: ...


def read_all(files: Files, name: str, what: str) -> bytes:
    size = files.size(name)
    if size is None:
        raise BadInputError(
            f"{what}: '{name}' is missing", hint="the image is incomplete or corrupt"
        )
    if size > MAX_MANIFEST_BYTES:
        raise BadInputError(f"{what}: '{name}' is {size} bytes, too large for JSON")
    with files.open(name) as f:
        return f.read() or b""


class DirFiles:
    """Files under a directory (an OCI layout on disk)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise BadInputError(f"'{name}' points outside {self.root}")
        return path

    def size(self, name: str) -> int | None:
        path = self._path(name)
        return path.stat().st_size if path.is_file() else None

    def open(self, name: str) -> io.RawIOBase:
        return open(self._path(name), "rb", buffering=0)

    def identity(self, name: str) -> tuple[int | str, ...] | None:
        """Where the file's bytes live and when they last changed (see ``FilesSource``)."""
        try:
            return _stat_identity(os.stat(self._path(name)), "")
        except OSError:
            return None

    def close(self) -> None:
        return None


def _stat_identity(st: os.stat_result, where: str) -> tuple[int | str, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, where)


@dataclass(frozen=True, slots=True)
class _Member:
    offset: int
    size: int


class TarFiles:
    """Files inside a tar archive, read in place by offset (never extracted).

    A gzip-compressed archive (``docker save | gzip``) cannot be read by offset, so it is
    decompressed once into an anonymous temporary file that vanishes on close.
    """

    def __init__(self, source: Path | BinaryIO, what: str) -> None:
        self._what = what
        self._file = _open_seekable_tar(source, what)
        self._members = _index_members(self._file, what)

    @property
    def names(self) -> Mapping[str, object]:
        return self._members

    def size(self, name: str) -> int | None:
        member = self._members.get(_norm(name))
        return member.size if member else None

    def open(self, name: str) -> io.RawIOBase:
        member = self._members.get(_norm(name))
        if member is None:
            raise BadInputError(f"{self._what}: '{name}' is missing from the archive")
        return FileSection(self._file.fileno(), member.offset, member.size)

    def identity(self, name: str) -> tuple[int | str, ...] | None:
        """The archive file's identity and the member's place in it; None when the archive
        is no file of its own on disk (a decompressed spool, a pipe)."""
        member = self._members.get(_norm(name))
        path = getattr(self._file, "name", None)
        if member is None or not isinstance(path, str):
            return None
        try:
            st = os.fstat(self._file.fileno())
            if not os.path.samestat(st, os.stat(path)):
                return None
        except OSError:
            return None
        return _stat_identity(st, f"{member.offset}+{member.size}")

    def close(self) -> None:
        self._file.close()


def _norm(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts)


def _open_seekable_tar(source: Path | BinaryIO, what: str) -> BinaryIO:
    try:
        f: BinaryIO = open(source, "rb") if isinstance(source, Path) else source  # noqa: SIM115
    except OSError as e:
        raise BadInputError(f"cannot open {what}: {e.strerror}", hint="check the path") from e
    magic = f.read(2)
    f.seek(0)
    if magic != b"\x1f\x8b":
        return f
    try:
        with gzip.GzipFile(fileobj=f) as gz:
            return spool(gz, what)
    except (OSError, EOFError) as e:
        raise BadInputError(f"{what} is a corrupt gzip file: {e}") from e
    finally:
        f.close()


def _index_members(f: BinaryIO, what: str) -> dict[str, _Member]:
    try:
        with tarfile.open(fileobj=f, mode="r:") as tar:
            infos = tar.getmembers()
    except tarfile.TarError as e:
        f.close()
        raise BadInputError(f"{what} is not a readable tar archive: {e}") from e
    by_name = {_norm(i.name): i for i in infos}
    members: dict[str, _Member] = {}
    for name, info in by_name.items():
        target = _resolve_link(info, by_name)
        if target is not None:
            members[name] = _Member(target.offset_data, target.size)
    return members


def _resolve_link(
    info: tarfile.TarInfo, by_name: Mapping[str, tarfile.TarInfo]
) -> tarfile.TarInfo | None:
    # old `docker save` stores a layer shared by two images once and symlinks the other
    for _ in range(16):
        if info.isfile():
            return info
        if info.issym():
            base = os.path.dirname(_norm(info.name))
            target = by_name.get(_norm(os.path.normpath(os.path.join(base, info.linkname))))
        elif info.islnk():
            target = by_name.get(_norm(info.linkname))
        else:
            return None
        if target is None:
            return None
        info = target
    return None


class FilesSource:
    """Blob access shared by the layout and archive sources: by digest, verified."""

    # The bytes are here to hash: a cached walk of a layer is trusted only after its blob is
    # re-hashed (``read_layers``), so a tampered local blob is an error even on a cache hit.
    local = True

    def __init__(self, files: Files, reference: str, what: str) -> None:
        self.files = files
        self.reference = reference
        self.what = what
        self.synthetic: dict[str, bytes] = {}  # manifests advisor derived, by digest
        self.blob_paths: dict[str, str] = {}  # digest -> file name, when not blobs/ALG/HEX

    def blob_identity(self, descriptor: Descriptor) -> tuple[int | str, ...] | None:
        """The blob file's (device, inode, size, mtime_ns, ctime_ns, place in an archive),
        or None. Unchanged since a hash of it matched, it says the bytes are unchanged: any
        write to a file moves its ctime to the present, and no call sets ctime back (the
        layer cache records one only when its ctime was already old when the hash began)."""
        if descriptor.digest in self.synthetic:
            return None
        identity = getattr(self.files, "identity", None)
        return identity(self.blob_name(descriptor.digest)) if identity is not None else None

    def blob_name(self, digest: str) -> str:
        if digest in self.blob_paths:
            return self.blob_paths[digest]
        algorithm, _, hexpart = digest.partition(":")
        return f"blobs/{algorithm}/{hexpart}"

    def open_blob(self, descriptor: Descriptor) -> BinaryIO:
        split_digest(descriptor.digest)
        if descriptor.digest in self.synthetic:
            data = io.BytesIO(self.synthetic[descriptor.digest])
            return open_verified(data, descriptor, f"blob {descriptor.digest}")
        return open_verified(self._open_file(descriptor), descriptor, f"blob {descriptor.digest}")

    def open_unverified(self, descriptor: Descriptor) -> io.RawIOBase | None:
        """The blob's bytes as a seekable file, **not verified**: for a reader that seeks
        over what it skips while ``open_blob`` hashes the same bytes beside it, and whose
        results count only once that hash matched (``layers.start_layers``). None for a blob
        advisor derived in memory."""
        split_digest(descriptor.digest)
        if descriptor.digest in self.synthetic:
            return None
        return self._open_file(descriptor)

    def _open_file(self, descriptor: Descriptor) -> io.RawIOBase:
        name = self.blob_name(descriptor.digest)
        size = self.files.size(name)
        if size is None:
            raise BadInputError(
                f"blob {descriptor.digest} is missing from {self.what}",
                hint="the image is incomplete; copy it again",
            )
        if size != descriptor.size:
            raise BadInputError(
                f"blob {descriptor.digest} in {self.what} is {size} bytes, its descriptor says {descriptor.size}",
                hint="the image is corrupt or was tampered with; fetch or rebuild it",
            )
        return self.files.open(name)

    def read_manifest(self, descriptor: Descriptor) -> bytes:
        check_small(descriptor, "manifest")
        if descriptor.digest in self.synthetic:
            return verify_bytes(self.synthetic[descriptor.digest], descriptor, "manifest")
        with self.open_blob(descriptor) as f:
            return f.read()

    def close(self) -> None:
        self.files.close()
