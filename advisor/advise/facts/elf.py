"""Tell stripped shared objects from unstripped ones, from a captured head and tail.

Linkers write the section header table at the end of the file, right after the section
name table, so the 64-byte ELF header plus a tail is enough to list the sections and size
what ``strip --strip-unneeded`` would drop (``.symtab``, its ``.strtab``, ``.debug_*``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SHT_SYMTAB = 2


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    type: int
    offset: int
    size: int
    link: int


@dataclass(frozen=True, slots=True)
class ElfInfo:
    sections: tuple[Section, ...]

    @property
    def has_symtab(self) -> bool:
        return any(s.type == SHT_SYMTAB for s in self.sections)

    @property
    def debug_bytes(self) -> int:
        return sum(s.size for s in self.sections if s.name.startswith((".debug", ".zdebug")))

    @property
    def strippable_bytes(self) -> int:
        """Bytes of symbol and debug sections (what stripping removes)."""
        total = self.debug_bytes
        for s in self.sections:
            if s.type == SHT_SYMTAB:
                total += s.size
                if 0 <= s.link < len(self.sections):
                    total += self.sections[s.link].size
        return total

    @property
    def unstripped(self) -> bool:
        return self.has_symtab or self.debug_bytes > 0


def _slice(head: bytes, tail: bytes, size: int, offset: int, length: int) -> bytes | None:
    if offset + length <= len(head):
        return head[offset: offset + length]
    start = size - len(tail)
    if offset >= start and offset + length <= size:
        return tail[offset - start: offset - start + length]
    return None


def _header(head: bytes) -> tuple[str, int, int, int, int] | None:
    """(struct prefix, shoff, shentsize, shnum, shstrndx) of an ELF header, or None."""
    if len(head) < 52 or head[:4] != b"\x7fELF":
        return None
    is64 = head[4] == 2
    end = "<" if head[5] == 1 else ">"
    if is64:
        if len(head) < 64:
            return None
        shoff, = struct.unpack_from(end + "Q", head, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", head, 0x3A)
    else:
        shoff, = struct.unpack_from(end + "I", head, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", head, 0x2E)
    return (end + ("64" if is64 else "32")), shoff, shentsize, shnum, shstrndx


def _section(raw: bytes, kind: str) -> tuple[int, int, int, int, int]:
    end, bits = kind[0], kind[1:]
    if bits == "64":
        name, typ, _f, _a, off, size, link = struct.unpack_from(end + "IIQQQQI", raw, 0)
    else:
        name, typ, _f, _a, off, size, link = struct.unpack_from(end + "IIIIIII", raw, 0)
    return name, typ, off, size, link


def _name(strtab: bytes | None, offset: int) -> str:
    if strtab is None or offset >= len(strtab):
        return ""
    return strtab[offset: strtab.find(b"\0", offset)].decode("ascii", "replace")


def parse_elf(head: bytes | None, tail: bytes | None, size: int) -> ElfInfo | None:
    """Sections of an ELF file, or None when it is not ELF or the table was not captured."""
    if not head:
        return None
    hdr = _header(head)
    if hdr is None:
        return None
    kind, shoff, shentsize, shnum, shstrndx = hdr
    table = _slice(head, tail or b"", size, shoff, shentsize * shnum)
    if table is None or shnum == 0:
        return None
    raw = [_section(table[i * shentsize:(i + 1) * shentsize], kind) for i in range(shnum)]
    strtab = None
    if shstrndx < shnum:
        _n, _t, off, sz, _l = raw[shstrndx]
        strtab = _slice(head, tail or b"", size, off, sz)
    return ElfInfo(tuple(Section(_name(strtab, n), t, o, s, lk) for n, t, o, s, lk in raw))


def trim_capture(head: bytes, tail: bytes, size: int) -> tuple[bytes, bytes]:
    """The part of a captured tail that ``parse_elf`` reads: from the section-name table or
    the section header table (whichever comes first) to the end; nothing for a non-ELF file.

    Shared objects are captured with a 64 KiB tail to be sure to hold both tables, which are
    typically 3 KiB: keeping only those makes an image with thousands of ``.so`` files cost
    megabytes of memory (and of layer cache) instead of hundreds. ``parse_elf`` gives the same
    answer on the trimmed capture as on the whole one.
    """
    hdr = _header(head)
    if hdr is None:
        return head, b""
    kind, shoff, shentsize, shnum, shstrndx = hdr
    start = size - len(tail)
    table = _slice(head, tail, size, shoff, shentsize * shnum)
    if table is None or shnum == 0 or shoff < start:
        return head, tail if table is not None else b""
    keep = shoff
    if shstrndx < shnum:
        _n, _t, off, sz, _l = _section(table[shstrndx * shentsize:(shstrndx + 1) * shentsize], kind)
        if start <= off and off + sz <= size:
            keep = min(keep, off)
    return head, tail[keep - start:]
