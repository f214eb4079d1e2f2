"""The ELF capture finds a shared object's section table wherever its header puts it, and its
17-byte summary says what ``strip --strip-unneeded`` really frees: on the venv's own shared
objects, on one patchelf rewrote (as auditwheel does to every wheel it repairs), and when the
section names lie out of reach."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.advise.facts import elf
from advisor.advise.facts.capture import capture_for
from advisor.advise.facts.elf import Strip, parse_elf, table_span
from advisor.oci.model import Entry, EntryKind

SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
OLD_TAIL = 64 * 1024  # what advise captured before: a fixed tail


def _captured(data: bytes) -> tuple[bytes, Strip | None, int]:
    """What the walk keeps of ``data`` as a shared object: head, summary, bytes read."""
    cap = capture_for(Entry("usr/lib/x86_64-linux-gnu/libx.so.1", EntryKind.FILE, len(data)))
    assert cap is not None
    read: list[int] = []

    def at(offset: int, n: int) -> bytes:
        read.append(n)
        return data[offset: offset + n]

    head, kept = cap.take(len(data), at)
    return head, Strip.unpack(kept), sum(read)


def _whole(data: bytes) -> Strip | None:
    info = parse_elf(data, b"", 0)
    return info.strip() if info is not None else None


def _strip_frees(path: Path) -> int:
    out = path.with_name(path.name + ".stripped")
    subprocess.run(["strip", "--strip-unneeded", "-o", str(out), str(path)], check=True)
    return path.stat().st_size - out.stat().st_size


def _build(tmp: Path, functions: int) -> Path:
    if shutil.which("gcc") is None or shutil.which("strip") is None:
        pytest.skip("gcc and binutils are needed (scripts/setup.sh installs them)")
    src = tmp / "ext.c"
    src.write_text("".join(f"int an_exported_function_with_a_long_name_{i}(int x) {{ return x * {i} + {i}; }}\n"
                           for i in range(functions)))
    so = tmp / "ext.so"
    subprocess.run(["gcc", "-g", "-O0", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    return so


def test_the_summary_of_the_capture_agrees_with_the_whole_files_on_the_venvs_shared_objects() -> None:
    files = sorted(SITE.rglob("*.so"))[:300]
    assert len(files) > 20
    read = whole = exact = 0
    for path in files:
        data = path.read_bytes()
        _head, summary, n = _captured(data)
        full = _whole(data)
        assert (summary is None) == (full is None), path
        if summary is not None and full is not None:
            # lld puts .strtab between the names and the table: past the window, the only
            # section counted by its flags that strip keeps is .comment (a few hundred bytes)
            assert summary.symtab == full.symtab and summary.unstripped == full.unstripped, path
            assert 0 <= summary.strippable_bytes - full.strippable_bytes < 512, path
            exact += summary == full
        read, whole = read + n, whole + len(data)
    assert exact > 0.8 * len(files)
    assert read * 4 < whole  # the point: the table is a small part of each file


def test_a_table_patchelf_moved_away_from_the_end_is_found(tmp_path: Path) -> None:
    if shutil.which("patchelf") is None:
        pytest.skip("patchelf is needed (scripts/setup.sh installs it)")
    so = _build(tmp_path, 3000)
    subprocess.run(["patchelf", "--set-rpath", "$ORIGIN/../lib:$ORIGIN/vendored.libs", str(so)], check=True)
    data = so.read_bytes()
    span = table_span(data[:64], len(data))
    assert span is not None and len(data) - span[1] > OLD_TAIL  # patchelf appended .dynstr after it
    _head, summary, _n = _captured(data)
    assert summary is not None and summary == _whole(data) and summary.unstripped
    freed = _strip_frees(so)
    assert abs(summary.strippable_bytes - freed) <= 0.10 * freed, (summary, freed)


def test_without_the_section_names_debug_sections_are_told_by_their_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _build(tmp_path, 400).read_bytes()
    info = parse_elf(data, b"", 0)
    assert info is not None
    named = info.strip()
    monkeypatch.setattr(elf, "NAMES_WINDOW", 0)  # only the table itself: no names
    _head, summary, _n = _captured(data)
    assert summary is not None and summary.symtab
    assert named.debug_bytes > 10_000
    # .comment is a non-allocated PROGBITS section too: the only difference, a few dozen bytes
    assert 0 <= summary.debug_bytes - named.debug_bytes < 200
    assert 0 <= summary.strippable_bytes - named.strippable_bytes < 200


def test_a_linker_script_named_like_a_shared_object_keeps_nothing() -> None:
    script = b"/* GNU ld script */\nGROUP ( /lib/x86_64-linux-gnu/libc.so.6 )\n"
    head, summary, n = _captured(script)
    assert summary is None and head == script and n == len(script)


def test_a_table_out_of_the_file_or_too_large_is_not_read() -> None:
    head = bytearray(b"\x7fELF\x02\x01\x01" + b"\x00" * 57)
    head[0x28:0x30] = (10**9).to_bytes(8, "little")  # e_shoff past the end
    head[0x3A:0x40] = b"\x40\x00\x05\x00\x01\x00"  # 5 entries of 64 bytes
    assert table_span(bytes(head), 2000) is None
    head[0x28:0x30] = (100).to_bytes(8, "little")
    head[0x3A:0x40] = b"\x40\x00\xff\xff\x01\x00"  # 65,535 entries: 4 MiB of table
    assert table_span(bytes(head), 10**9) is None
