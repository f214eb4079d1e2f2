"""Malformed inputs on purpose: broken metadata, RECORDs, requirements, configs, dpkg status
and ELF headers are skipped or read as far as they go; advise never crashes on them."""

from __future__ import annotations

import json

from advisor.advise.advice import build_advice
from advisor.advise.facts.elf import parse_elf
from advisor.report.advise import render
from tests.advise.rules import fixtures as fx

S = fx.SITE


def test_broken_everything_still_advises() -> None:
    files: fx.Files = {
        f"{S}/bad-1.0.dist-info/METADATA": b"Name: bad\nVersion: 1.0\xff\xfe\nRequires-Dist: ][not a req\n"
                                           b"Requires-Dist: ok-dep; python_version >>> '3'\nRequires-Dist: good\n\n\x00body",
        f"{S}/bad-1.0.dist-info/RECORD": b'"unterminated,\n\x00\x01,,\n../../../../../../etc/passwd,,\n',
        f"{S}/noname-1.0.dist-info/METADATA": "Version: 1.0\n",
        f"{S}/empty-1.0.dist-info/METADATA": "",
        **fx.dist("good", "2.0", {"good/__init__.py": 100}),
        "app/model/config.json": "{not json",
        "app/model2/config.json": '["a list"]',
        "app/app.py": b"def broken(:\n  import torch\n",
        "var/lib/dpkg/status": b"Package gcc\n\n\x00\x00Status:\nPackage: x\nInstalled-Size: lots\nStatus: install ok installed\n",
        "usr/lib/libtrunc.so": b"\x7fELF\x02\x01\x01" + b"\x00" * 20,
        "etc/os-release": b"\xff\xff=\n",
    }
    img = fx.Img([fx.python_base(), files], ["ADD file:x in /", "???"], env=["PYTHONPATH", "=", "PYTHONPATH=::"],
                 cmd=("python", "app.py"), working_dir="/app")
    advice = build_advice(img.context())
    names = {d.name for d in advice.distributions}
    assert {"bad", "good"} <= names and "noname" not in names
    bad = next(d for d in advice.distributions if d.name == "bad")
    assert bad.requires == ("good",)  # the unparsable and the unevaluable are dropped
    data = json.loads(render(advice, "json"))
    assert data["schema_version"] == 1
    for fmt in ("text", "markdown", "html"):
        assert render(advice, fmt)


def test_elf_parsing_never_raises() -> None:
    assert parse_elf(None, None, 0) is None
    assert parse_elf(b"not elf at all, definitely not", b"", 0) is None
    head = b"\x7fELF\x02\x01\x01" + b"\x00" * 33 + (10**9).to_bytes(8, "little") + b"\x00" * 10 + b"\x40\x00\x05\x00\x01\x00"
    assert parse_elf(head, b"\x00" * 100, 1900) is None  # section table outside what was captured
