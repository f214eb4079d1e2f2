from __future__ import annotations

import struct

import pytest

from advisor.errors import BuildError
from advisor.oci.filetree import FileInfo, FileTree
from advisor.oci.model import Entry, EntryKind, ImageConfig
from advisor.slim.probe import probe_capture, probe_python

X86_64, AARCH64 = 62, 183
DPKG = b"Package: bash\nStatus: install ok installed\nVersion: 5.2\n\nPackage: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u9\n"
APK = b"P:busybox\nV:1.36.1-r5\n\nP:musl\nV:1.2.4-r2\n"


def elf(machine: int) -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HH", 2, machine) + b"\0" * 40


def tree(files: dict[str, str | bytes], links: dict[str, str] | None = None) -> FileTree:
    infos = {p: FileInfo(p, EntryKind.FILE, len(c), layer=0) for p, c in files.items()}
    infos |= {p: FileInfo(p, EntryKind.SYMLINK, 0, link=t, layer=0) for p, t in (links or {}).items()}
    heads = {p: c if isinstance(c, bytes) else c.encode() for p, c in files.items()}
    return FileTree(infos, heads)


def config(arch: str = "amd64") -> ImageConfig:
    return ImageConfig(digest="sha256:0", os="linux", architecture=arch, diff_ids=(), history=())


def debian(machine: int = X86_64, **extra: str | bytes) -> FileTree:
    files: dict[str, str | bytes] = {
        "usr/bin/python3.11": elf(machine),
        "usr/lib/python3.11/os.py": "",
        "usr/lib/python3.11/encodings/__init__.py": "",
        "usr/lib/x86_64-linux-gnu/libc.so.6": "",
        "var/lib/dpkg/status": DPKG,
        "etc/os-release": 'ID=debian\nVERSION_ID="12"\n',
    }
    return tree(files | extra, {"usr/bin/python3": "python3.11", "bin": "usr/bin"})


def test_debian_python_glibc_and_tags() -> None:
    t = probe_python(debian(), config())
    assert (t.executable, t.version, t.abi) == ("/usr/bin/python3.11", (3, 11), "cp311")
    assert str(t.libc) == "glibc 2.36"
    assert t.os_release["VERSION_ID"] == "12"
    tags = t.platform_tags()
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_17_x86_64" in tags and tags[-1] == "manylinux2014_x86_64"


def test_alpine_musl_in_usr_local() -> None:
    files: dict[str, str | bytes] = {
        "usr/local/bin/python3.12": elf(AARCH64),
        "usr/local/lib/python3.12/os.py": "",
        "usr/local/lib/python3.12/encodings/__init__.py": "",
        "lib/ld-musl-aarch64.so.1": "",
        "lib/apk/db/installed": APK,
    }
    t = probe_python(
        tree(files, {"usr/local/bin/python3": "/usr/local/bin/python3.12"}), config("arm64")
    )
    assert (t.abi, str(t.libc), t.architecture) == ("cp312", "musl 1.2", "arm64")
    assert t.platform_tags() == ["musllinux_1_2_aarch64", "musllinux_1_1_aarch64"]


def test_glibc_version_from_the_library_banner_without_dpkg() -> None:
    banner = b"\0GNU C Library (Ubuntu GLIBC 2.35-0ubuntu3) stable release version 2.35.\n"
    t = probe_python(
        debian(**{"var/lib/dpkg/status": b"", "usr/lib/x86_64-linux-gnu/libc.so.6": banner}),
        config(),
    )
    assert t.libc.version == (2, 35)


def test_no_python_is_a_build_error() -> None:
    with pytest.raises(BuildError, match="no usable Python 3"):
        probe_python(tree({"bin/busybox": elf(X86_64)}), config())


def test_python_without_stdlib_is_refused() -> None:
    t = tree(
        {"usr/bin/python3.11": elf(X86_64), "var/lib/dpkg/status": DPKG},
        {"usr/bin/python3": "python3.11"},
    )
    with pytest.raises(BuildError, match="no standard library"):
        probe_python(t, config())


def test_architecture_mismatch_is_refused() -> None:
    with pytest.raises(BuildError, match="arm64"):
        probe_python(debian(machine=X86_64), config("arm64"))


def test_a_script_is_not_an_interpreter() -> None:
    with pytest.raises(BuildError, match="not an ELF"):
        probe_python(debian(**{"usr/bin/python3.11": "#!/bin/sh\n"}), config())


def test_capture_policy_keeps_only_what_the_probe_reads() -> None:
    assert probe_capture(Entry("usr/bin/python3.11", EntryKind.FILE, 5_000_000)) is not None
    assert probe_capture(Entry("var/lib/dpkg/status", EntryKind.FILE, 100)) is not None
    assert probe_capture(Entry("usr/lib/python3.11/os.py", EntryKind.FILE, 100)) is None
