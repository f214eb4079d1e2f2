"""The operating system under the Python: distribution, dpkg packages and their files."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from advisor.oci.filetree import FileTree
from advisor.oci.model import EntryKind


@dataclass(frozen=True, slots=True)
class OsInfo:
    id: str = ""
    version_id: str = ""
    pretty_name: str = ""


@dataclass(frozen=True, slots=True)
class DebPackage:
    name: str
    version: str
    installed_size_bytes: int  # dpkg's estimate (KiB * 1024)
    files: tuple[str, ...]  # regular files of the merged tree listed in its .list
    size_bytes: int  # real bytes of ``files``
    depends: tuple[str, ...] = ()
    required: bool = False  # Essential: yes or Priority: required (every Debian base keeps it)


# What a full (buildpack-deps) base adds over a slim one, and what a serving image never needs.
BUILD_PACKAGE_PATTERNS = (
    "build-essential", "gcc", "gcc-[0-9]*", "g++", "g++-[0-9]*", "cpp", "cpp-[0-9]*",
    "libgcc-*-dev", "libstdc++-*-dev", "make", "dpkg-dev", "autoconf", "automake", "libtool",
    "cmake", "binutils", "binutils-*", "libc6-dev", "linux-libc-dev", "*-dev", "perl",
    "perl-modules-*", "libperl*", "git", "git-man", "mercurial", "subversion", "openssh-client",
    "imagemagick*", "libmagickcore-*", "libmagickwand-*", "gfortran*", "patch", "bzr",
)


def read_os_release(tree: FileTree) -> OsInfo:
    raw = tree.read("etc/os-release") or tree.read("usr/lib/os-release")
    if raw is None:
        return OsInfo()
    values: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return OsInfo(values.get("ID", ""), values.get("VERSION_ID", ""), values.get("PRETTY_NAME", ""))


def _stanzas(text: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur, key = {}, ""
        elif line[0] in " \t" and key:
            cur[key] += "\n" + line
        else:
            key, _, value = line.partition(":")
            cur[key] = value.strip()
    if cur:
        out.append(cur)
    return out


def _list_files(tree: FileTree, name: str, arch: str) -> list[str]:
    for candidate in (f"var/lib/dpkg/info/{name}:{arch}.list", f"var/lib/dpkg/info/{name}.list"):
        raw = tree.read(candidate)
        if raw is not None:
            return [ln.strip().lstrip("/") for ln in raw.decode("utf-8", "replace").splitlines() if ln.strip()]
    return []


def _deps(value: str) -> tuple[str, ...]:
    names = []
    for alt in value.split(","):
        first = alt.split("|")[0].strip().split(" ")[0].split(":")[0]
        if first:
            names.append(first)
    return tuple(names)


def read_dpkg(tree: FileTree) -> dict[str, DebPackage]:
    """Installed dpkg packages, each with the real bytes of the files it owns."""
    raw = tree.read("var/lib/dpkg/status")
    if raw is None:
        return {}
    packages: dict[str, DebPackage] = {}
    for st in _stanzas(raw.decode("utf-8", "replace")):
        name = st.get("Package", "")
        if not name or "installed" not in st.get("Status", "").split():
            continue
        files = []
        size = 0
        for path in _list_files(tree, name, st.get("Architecture", "")):
            info = tree.get(path)
            if info is not None and info.kind is EntryKind.FILE:
                files.append(path)
                size += info.size
        size_field = st.get("Installed-Size", "").strip()
        kib = int(size_field) if size_field.isdigit() else 0
        depends = _deps(st.get("Depends", "") + "," + st.get("Pre-Depends", ""))
        required = st.get("Essential", "") == "yes" or st.get("Priority", "") == "required"
        packages[name] = DebPackage(name, st.get("Version", ""), kib * 1024, tuple(files), size,
                                    depends, required)
    return packages


def installed_versions(status: bytes | None) -> dict[str, str]:
    """Package -> version of every installed package in a dpkg status file."""
    if status is None:
        return {}
    out = {}
    for st in _stanzas(status.decode("utf-8", "replace")):
        if st.get("Package") and "installed" in st.get("Status", "").split():
            out[st["Package"]] = st.get("Version", "")
    return out


def is_build_package(name: str) -> bool:
    if name.endswith("-base"):  # gcc-12-base, perl-base: what even slim images keep
        return False
    return any(fnmatch.fnmatchcase(name, pat) for pat in BUILD_PACKAGE_PATTERNS)


#: What a slim Python base holds beyond the required packages (python:3.11-slim is
#: debian:bookworm-slim + CPython + ca-certificates; Debian's own python3 stands for CPython).
SLIM_ROOTS = ("python3", "ca-certificates", "netbase", "tzdata")


def slim_base_packages(packages: dict[str, DebPackage]) -> set[str]:
    """The packages a slim Python base would keep: the required ones, the slim roots, and
    everything they depend on (first alternative of each dependency)."""
    keep: set[str] = set()
    todo = [p.name for p in packages.values() if p.required] + [r for r in SLIM_ROOTS if r in packages]
    while todo:
        name = todo.pop()
        if name in keep or name not in packages:
            continue
        keep.add(name)
        todo.extend(packages[name].depends)
    return keep


def build_packages(packages: dict[str, DebPackage]) -> list[DebPackage]:
    """Compilers, headers, perl, VCS and friends: what a slim serving base leaves out."""
    found = [p for name, p in packages.items() if is_build_package(name)]
    return sorted(found, key=lambda p: (-p.size_bytes, p.name))
