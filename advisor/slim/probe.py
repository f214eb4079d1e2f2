"""Probe a base image's Python from its files: version, ABI, libc, architecture.

Nothing is guessed from tags or names: the interpreter is found by following the image's
own ``python3`` symlinks, its version from the binary's name and the stdlib directory next
to it, the libc from the dynamic loader present and the package database (dpkg or apk),
the architecture from the config and checked against the interpreter's ELF header.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from advisor.errors import BuildError
from advisor.oci.filetree import FileTree
from advisor.oci.model import Capture, Entry, EntryKind, ImageConfig

PYTHON_CANDIDATES = (
    "usr/local/bin/python3",
    "usr/bin/python3",
    "opt/python/bin/python3",
    "bin/python3",
)
DPKG_STATUS = "var/lib/dpkg/status"
APK_INSTALLED = "lib/apk/db/installed"
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
ELF_MACHINES: Mapping[int, str] = {
    62: "amd64",
    183: "arm64",
    40: "arm",
    3: "386",
    21: "ppc64le",
    22: "s390x",
}
PIP_ARCH: Mapping[str, str] = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "386": "i686",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "arm": "armv7l",
}
_PY_NAME = re.compile(r"python(\d)\.(\d+)(t?)$")
_GLIBC_BANNER = re.compile(rb"GNU C Library [^\n]*?version (\d+)\.(\d+)")
MIN_GLIBC_MINOR = 17  # manylinux2014, the oldest tag current wheels ship


@dataclass(frozen=True, slots=True)
class Libc:
    flavour: str  # "glibc" | "musl"
    version: tuple[int, int]

    def __str__(self) -> str:
        return f"{self.flavour} {self.version[0]}.{self.version[1]}"


@dataclass(frozen=True, slots=True)
class PythonTarget:
    """Everything pip needs to pick wheels for the base, and where its Python lives."""

    executable: str  # absolute path inside the image, symlinks resolved
    version: tuple[int, int]
    abi: str  # e.g. "cp311"
    libc: Libc
    architecture: str  # OCI name: amd64, arm64, ...
    os_release: Mapping[str, str]

    @property
    def version_str(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def implementation(self) -> str:
        return "cp"

    def platform_tags(self) -> list[str]:
        """pip ``--platform`` values this interpreter accepts, most specific first."""
        arch = PIP_ARCH.get(self.architecture)
        if arch is None:
            raise BuildError(f"no wheels are published for architecture {self.architecture}")
        major, minor = self.libc.version
        if self.libc.flavour == "musl":
            return [f"musllinux_{major}_{m}_{arch}" for m in range(minor, 0, -1)]
        tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, MIN_GLIBC_MINOR - 1, -1)]
        return [*tags, f"manylinux2014_{arch}"]


def probe_capture(entry: Entry) -> Capture | None:
    """What the probe needs kept while the base's layers stream past."""
    p = entry.path
    if p in (DPKG_STATUS, APK_INSTALLED, *OS_RELEASE):
        return Capture(head=8 << 20)
    if (
        entry.kind is EntryKind.FILE
        and _PY_NAME.search(p.rsplit("/", 1)[-1])
        and "/bin/" in f"/{p}"
    ):
        return Capture(head=64)
    if entry.kind is EntryKind.FILE and p.endswith("/libc.so.6"):
        return Capture(head=4 << 20)
    return None


def probe_python(tree: FileTree, config: ImageConfig) -> PythonTarget:
    """Find the base's Python 3 and describe the wheel target; BuildError if there is none."""
    executable, version, suffix = _find_python(tree)
    _check_stdlib(tree, executable, version)
    elf_arch = _elf_architecture(tree.read(executable.lstrip("/")), executable)
    arch = config.architecture or elf_arch
    if elf_arch != arch:
        raise BuildError(
            f"the image config says {arch} but {executable} is an {elf_arch} binary",
            hint="the base image is inconsistent; pick another --base",
        )
    return PythonTarget(
        executable=executable,
        version=version,
        abi=f"cp{version[0]}{version[1]}{suffix}",
        libc=_probe_libc(tree),
        architecture=arch,
        os_release=_os_release(tree),
    )


def _find_python(tree: FileTree) -> tuple[str, tuple[int, int], str]:
    for candidate in PYTHON_CANDIDATES:
        if candidate not in tree:
            continue
        resolved = tree.resolve(candidate)
        info = tree.get(resolved)
        m = _PY_NAME.search(resolved.rsplit("/", 1)[-1])
        if info is not None and info.kind is EntryKind.FILE and m:
            return "/" + resolved, (int(m.group(1)), int(m.group(2))), m.group(3)
    raise BuildError(
        "the base image has no usable Python 3 interpreter "
        f"(looked for {', '.join('/' + c for c in PYTHON_CANDIDATES)})",
        hint="pick a base with Python 3, e.g. --base docker.io/library/python:3.11-slim",
    )


def _check_stdlib(tree: FileTree, executable: str, version: tuple[int, int]) -> None:
    prefix = executable.rsplit("/bin/", 1)[0].lstrip("/")
    lib = (
        f"{prefix}/lib/python{version[0]}.{version[1]}"
        if prefix
        else f"lib/python{version[0]}.{version[1]}"
    )
    if f"{lib}/os.py" not in tree or f"{lib}/encodings/__init__.py" not in tree:
        raise BuildError(
            f"{executable} has no standard library at /{lib}",
            hint="the base's Python is incomplete; pick a base with a full Python 3",
        )


def _elf_architecture(head: bytes | None, path: str) -> str:
    if not head or len(head) < 20 or head[:4] != b"\x7fELF":
        raise BuildError(
            f"{path} is not an ELF executable", hint="pick a base with a real Python binary"
        )
    endian = "<" if head[5] == 1 else ">"
    (machine,) = struct.unpack_from(endian + "H", head, 18)
    arch = ELF_MACHINES.get(machine)
    if arch is None:
        raise BuildError(f"{path} is built for an unsupported ELF machine {machine}")
    return arch


def _probe_libc(tree: FileTree) -> Libc:
    musl = [f.path for f in tree.iter_under("lib") if f.path.startswith("lib/ld-musl-")]
    if musl:
        return Libc("musl", _apk_version(tree.read(APK_INSTALLED), "musl") or (1, 2))
    libc_paths = sorted(f.path for f in tree if f.path.endswith("/libc.so.6"))
    if not libc_paths:
        raise BuildError(
            "the base image has neither glibc nor musl", hint="pick a Linux base with a C library"
        )
    version = _dpkg_version(tree.read(DPKG_STATUS), "libc6") or _banner_version(tree, libc_paths)
    if version is None:
        raise BuildError(
            "cannot tell the base's glibc version", hint="pick a Debian/Ubuntu/Alpine-based base"
        )
    return Libc("glibc", version)


def _dpkg_version(status: bytes | None, package: str) -> tuple[int, int] | None:
    if not status:
        return None
    for stanza in status.decode("utf-8", "replace").split("\n\n"):
        fields = dict(_fields(stanza))
        if fields.get("Package") == package and "installed" in fields.get("Status", ""):
            return _major_minor(fields.get("Version", ""))
    return None


def _apk_version(db: bytes | None, package: str) -> tuple[int, int] | None:
    if not db:
        return None
    for stanza in db.decode("utf-8", "replace").split("\n\n"):
        fields = dict(
            line.split(":", 1) for line in stanza.splitlines() if len(line) > 2 and line[1] == ":"
        )
        if fields.get("P") == package:
            return _major_minor(fields.get("V", ""))
    return None


def _fields(stanza: str) -> list[tuple[str, str]]:
    out = []
    for line in stanza.splitlines():
        if line and not line[0].isspace() and ":" in line:
            key, value = line.split(":", 1)
            out.append((key, value.strip()))
    return out


def _major_minor(version: str) -> tuple[int, int] | None:
    m = re.match(r"(?:\d+:)?(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _banner_version(tree: FileTree, paths: list[str]) -> tuple[int, int] | None:
    for path in paths:
        m = _GLIBC_BANNER.search(tree.read(path) or b"")
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def _os_release(tree: FileTree) -> dict[str, str]:
    for path in OS_RELEASE:
        raw = tree.read(tree.resolve(path)) if path in tree else None
        if raw:
            pairs = (
                line.split("=", 1)
                for line in raw.decode("utf-8", "replace").splitlines()
                if "=" in line
            )
            return {k.strip(): v.strip().strip('"') for k, v in pairs}
    return {}
