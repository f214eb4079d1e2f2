"""What stripping a shared object would free, from its ELF header and its section table.

The 64-byte header says where the section header table is (``e_shoff``). Linkers write it at
the end of the file, right after the section-name table, but files that tools rewrote after
linking keep other layouts: on the case study, torch's ``libtorch_cuda.so`` has 5.7 MB after its
table and triton's ``libtriton.so`` its section names 40 MB before it, so a fixed tail missed
both (advise estimated 160 MB for a strip that freed 641 MB). The capture therefore reads the
header first, then the table and a window around it (``table_span``), and ``summarise`` keeps
17 bytes of it: what ``strip --strip-unneeded`` drops (``.symtab``, its ``.strtab``,
``.debug_*``). When the name table lies outside the window, a debug section is told by what
it is, not by its name: a non-allocated ``PROGBITS`` section.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHF_ALLOC = 0x2
# How far on each side of the section table to look for the section-name table.
NAMES_WINDOW = 64 * 1024
# A section table over this size (16k sections) is not read: no shared object has one.
MAX_TABLE = 1 << 20
_ENTRY_SIZE = {"32": 40, "64": 64}
_PACK = struct.Struct("<?QQ")


@dataclass(frozen=True, slots=True)
class Section:
    name: str  # "" when the section-name table was not captured
    type: int
    flags: int
    offset: int
    size: int
    link: int

    @property
    def is_debug(self) -> bool:
        if self.name:
            return self.name.startswith((".debug", ".zdebug"))
        return self.type == SHT_PROGBITS and not self.flags & SHF_ALLOC


@dataclass(frozen=True, slots=True)
class Strip:
    """What ``strip --strip-unneeded`` would drop from one file."""

    symtab: bool
    debug_bytes: int
    strippable_bytes: int  # symbol table, its string table and debug sections

    @property
    def unstripped(self) -> bool:
        return self.symtab or self.debug_bytes > 0

    def pack(self) -> bytes:
        return _PACK.pack(self.symtab, self.debug_bytes, self.strippable_bytes)

    @classmethod
    def unpack(cls, data: bytes | None) -> Strip | None:
        if data is None or len(data) != _PACK.size:
            return None
        return cls(*_PACK.unpack(data))


@dataclass(frozen=True, slots=True)
class ElfInfo:
    sections: tuple[Section, ...]

    def strip(self) -> Strip:
        debug = sum(s.size for s in self.sections if s.is_debug)
        total, symtab = debug, False
        for s in self.sections:
            if s.type == SHT_SYMTAB:
                symtab = True
                total += s.size
                if 0 <= s.link < len(self.sections):
                    total += self.sections[s.link].size
        return Strip(symtab, debug, total)


def _header(head: bytes) -> tuple[str, int, int, int, int] | None:
    """(struct prefix, shoff, shentsize, shnum, shstrndx) of an ELF header, or None."""
    if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2):
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
    kind = end + ("64" if is64 else "32")
    if shnum == 0 or shentsize < _ENTRY_SIZE[kind[1:]] or shentsize * shnum > MAX_TABLE:
        return None
    return kind, shoff, shentsize, shnum, shstrndx


def table_span(head: bytes, size: int) -> tuple[int, int] | None:
    """The range of the file to capture after its header: the section table and a window
    around it for the section names; None for a file that is not ELF or has no table."""
    hdr = _header(head)
    if hdr is None:
        return None
    _kind, shoff, shentsize, shnum, _ = hdr
    stop = shoff + shentsize * shnum
    if shoff < len(head) or stop > size:
        return None
    return max(0, shoff - NAMES_WINDOW), min(size, stop + NAMES_WINDOW)


def _slice(head: bytes, data: bytes, start: int, offset: int, length: int) -> bytes | None:
    if offset + length <= len(head):
        return head[offset: offset + length]
    if start <= offset and offset + length <= start + len(data):
        return data[offset - start: offset - start + length]
    return None


def _section(raw: bytes, kind: str) -> tuple[int, int, int, int, int, int]:
    end, bits = kind[0], kind[1:]
    if bits == "64":
        name, typ, flags, _a, off, size, link = struct.unpack_from(end + "IIQQQQI", raw, 0)
    else:
        name, typ, flags, _a, off, size, link = struct.unpack_from(end + "IIIIIII", raw, 0)
    return name, typ, flags, off, size, link


def _name(strtab: bytes | None, offset: int) -> str:
    if strtab is None or offset >= len(strtab):
        return ""
    return strtab[offset: strtab.find(b"\0", offset)].decode("ascii", "replace")


def parse_elf(head: bytes | None, data: bytes | None, start: int) -> ElfInfo | None:
    """Sections of an ELF file from its captured ``head`` and the bytes ``data`` captured from
    offset ``start``; None when it is not ELF or its section table was not captured."""
    if not head:
        return None
    hdr = _header(head)
    if hdr is None:
        return None
    kind, shoff, shentsize, shnum, shstrndx = hdr
    table = _slice(head, data or b"", start, shoff, shentsize * shnum)
    if table is None:
        return None
    raw = [_section(table[i * shentsize:(i + 1) * shentsize], kind) for i in range(shnum)]
    strtab = None
    if shstrndx < shnum:
        _n, _t, _f, off, sz, _l = raw[shstrndx]
        strtab = _slice(head, data or b"", start, off, sz)
    return ElfInfo(tuple(Section(_name(strtab, n), t, f, o, s, lk) for n, t, f, o, s, lk in raw))


def summarise(head: bytes, data: bytes, start: int, size: int) -> tuple[bytes, bytes]:
    """The capture's trim: the header, and what stripping would drop packed in 17 bytes
    (nothing for a file that is not ELF or whose table was not captured)."""
    info = parse_elf(head, data, start)
    return head, info.strip().pack() if info is not None else b""
