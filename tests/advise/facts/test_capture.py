"""The capture policy keeps metadata whole, ELF headers and section tables, and skips bulk content."""

from __future__ import annotations

from advisor.advise.facts.capture import capture_for
from advisor.advise.facts.elf import table_span
from advisor.oci.model import Capture, Entry, EntryKind

S = "usr/local/lib/python3.11/site-packages"


def _cap(path: str, size: int = 1000, kind: EntryKind = EntryKind.FILE) -> Capture | None:
    return capture_for(Entry(path, kind, size))


def test_metadata_kept_whole() -> None:
    for p in (f"{S}/torch-2.13.0.dist-info/RECORD", f"{S}/torch-2.13.0.dist-info/METADATA", f"{S}/x.egg-info/PKG-INFO",
              "opt/venv/pyvenv.cfg", "opt/conda/conda-meta/python-3.11.json", "etc/os-release", "var/lib/dpkg/status",
              "var/lib/dpkg/info/gcc-12.list", "app/model/config.json", "app/requirements.txt", "app/main.py"):
        c = _cap(p, 60_000)
        assert c is not None and c.head >= 60_000 and c.tail == 0, p


def test_elf_and_weights_partial_and_bulk_skipped() -> None:
    so = _cap(f"{S}/torch/lib/libtorch_cpu.so", 400_000_000)
    assert so is not None and so.head == 64 and so.span is table_span
    assert _cap("usr/lib/x86_64-linux-gnu/libz.so.1.2.13") is not None
    w = _cap("app/model/model.safetensors", 90_000_000)
    assert w is not None and w.head <= 4096
    for p in (f"{S}/torch/__init__.py", "usr/share/doc/x/changelog.gz", f"{S}/x.dist-info/LICENSE", "usr/bin/perl"):
        assert _cap(p) is None, p
    assert _cap("app/model", 0, EntryKind.DIR) is None
