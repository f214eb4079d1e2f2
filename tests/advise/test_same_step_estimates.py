"""A fix made in the build's own install step cannot remove what the base image ships.

Real images: a base layer (history ending in its CMD, as every base image's does) with C
headers and a static library, then a ``pip install`` layer with a package's tests, headers,
static library and bytecode; then the same image rebuilt with trim-python applied in that
install step (the base untouched). trim-python's estimate on its own must be within 10 % of
what the rebuild freed: the base's headers and .a files stay, so they are not part of it.
"""

from __future__ import annotations

import os
from pathlib import Path

from advisor import advise
from advisor.advise import AdviseConfig
from tests.oci.helpers import make_image

SITE = "usr/local/lib/python3.11/site-packages"
PYC = b"\xa7\r\r\n" + bytes(12)  # CPython 3.11's magic, timestamp-based (flags 0)
HISTORY = ["/bin/sh -c #(nop) ADD file:base in / ", '/bin/sh -c #(nop)  CMD ["bash"]',
           "/bin/sh -c pip install -r requirements.txt", "/bin/sh -c #(nop) COPY dir:app in . "]  # fmt: skip


def _layers(trimmed: bool) -> list[dict[str, bytes]]:
    base = {"etc/os-release": b'ID=debian\nVERSION_ID="12"\n',
            "usr/local/bin/python3.11": b"\x7fELF" + bytes(60_000),
            "usr/include/stdio.h": os.urandom(900_000),
            "usr/lib/x86_64-linux-gnu/libc_nonshared.a": os.urandom(1_200_000)}  # fmt: skip
    meta = f"{SITE}/pkg-1.0.dist-info"
    keep = {f"{SITE}/pkg/__init__.py": os.urandom(200_000), f"{meta}/METADATA": b"Name: pkg\nVersion: 1.0\n",
            f"{meta}/INSTALLER": b"pip\n"}  # fmt: skip
    trim = {f"{SITE}/pkg/tests/test_big.py": os.urandom(400_000), f"{SITE}/pkg/include/pkg.h": os.urandom(300_000),
            f"{SITE}/pkg/lib/libpkg.a": os.urandom(500_000),
            f"{SITE}/pkg/__pycache__/__init__.cpython-311.pyc": PYC + os.urandom(150_000)}  # fmt: skip
    files = keep if trimmed else keep | trim
    record = "".join(f"{p[len(SITE) + 1 :]},,\n" for p in files) + "pkg-1.0.dist-info/RECORD,,\n"
    return [base, {**files, f"{meta}/RECORD": record.encode()}, {"app/main.py": b"import pkg\n"}]


def test_trim_python_alone_leaves_the_base_images_files_out(tmp_path: Path) -> None:
    config = {"config": {"WorkingDir": "/app", "Cmd": ["python", "main.py"]},
              "history": [{"created_by": h, "empty_layer": "CMD" in h} for h in HISTORY]}
    fat = advise.run(AdviseConfig(image=make_image(tmp_path, _layers(False), config=config, name="fat"), use_cache=False))
    lean = advise.run(AdviseConfig(image=make_image(tmp_path, _layers(True), config=config, name="lean"), use_cache=False))
    assert fat.base_layers == 1
    rules = {f.rule for f in fat.findings}
    assert {"lib-headers", "lib-static", "py-tests-in-site-packages", "py-bytecode"} <= rules
    (rec,) = [r for r in fat.recommendations if r.id == "trim-python"]
    freed = fat.size_bytes - lean.size_bytes
    assert abs(rec.standalone_savings_bytes - freed) <= 0.10 * freed, (rec.standalone_savings_bytes, freed)
