"""Trimming a shared object's captured tail keeps exactly what parse_elf reads, on real files."""

from __future__ import annotations

import sys
from pathlib import Path

from advisor.advise.facts.capture import ELF_HEAD, ELF_TAIL
from advisor.advise.facts.elf import parse_elf, trim_capture

SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _capture(data: bytes) -> tuple[bytes, bytes]:
    size = len(data)
    if size <= ELF_TAIL:
        return (data if size <= ELF_HEAD else data[:ELF_HEAD]), data
    return data[:ELF_HEAD], data[-ELF_TAIL:]


def test_trimmed_captures_parse_the_same_on_the_venvs_shared_objects() -> None:
    files = sorted(SITE.rglob("*.so"))[:300]
    assert len(files) > 20
    kept = whole = 0
    for path in files:
        data = path.read_bytes()
        head, tail = _capture(data)
        small_head, small_tail = trim_capture(head, tail, len(data))
        assert parse_elf(small_head, small_tail, len(data)) == parse_elf(head, tail, len(data)), path
        kept, whole = kept + len(small_tail), whole + len(tail)
    assert kept * 4 < whole  # the point: section tables are a small part of a 64 KiB tail


def test_a_non_elf_shared_object_keeps_no_tail() -> None:
    script = b"/* GNU ld script */\nGROUP ( /lib/x86_64-linux-gnu/libc.so.6 )\n"
    assert trim_capture(script[:ELF_HEAD], script, len(script)) == (script[:ELF_HEAD], b"")
