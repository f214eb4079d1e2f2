"""What leaving a dev tool out of requirements.txt removes, on a real image.

The case study's shape, small: a notebook tool needs a widgets package that a kept package
names only under an extra nobody asked for (tqdm's ``notebook``, rich's ``jupyter``), and a
package that requirements.txt also lists itself (requests). pip without the tool installs
neither the widgets nor, of course, the tool; it still installs what requirements.txt names.
remove-dev-tools' estimate must be within 10 % of what the rebuilt image freed.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from advisor import advise
from advisor.advise import AdviseConfig
from tests.oci.helpers import make_image

SITE = "usr/local/lib/python3.11/site-packages"
HISTORY = ["/bin/sh -c #(nop) ADD file:base in / ", '/bin/sh -c #(nop)  CMD ["bash"]',
           "/bin/sh -c pip install -r requirements.txt", "/bin/sh -c #(nop) COPY dir:app in . "]  # fmt: skip


def _dist(name: str, size: int, requires: list[str] = [], extras: list[str] = []) -> dict[str, bytes]:  # noqa: B006
    info = f"{SITE}/{name}-1.0.dist-info"
    meta = [f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0"] + [f"Provides-Extra: {e}" for e in extras]
    files = {f"{SITE}/{name}/__init__.py": os.urandom(size), f"{info}/METADATA": ("\n".join(
        meta + [f"Requires-Dist: {r}" for r in requires]) + "\n").encode(), f"{info}/INSTALLER": b"pip\n"}  # fmt: skip
    record = "".join(f"{posixpath.relpath(p, SITE)},,\n" for p in files) + f"{name}-1.0.dist-info/RECORD,,\n"
    return {**files, f"{info}/RECORD": record.encode()}


def _layers(with_tool: bool) -> list[dict[str, bytes]]:
    pkgs = {**_dist("fancyprint", 300_000, ['widgetkit; extra == "jupyter"'], ["jupyter"]),
            **_dist("httplib", 400_000)}  # fmt: skip
    asked = "fancyprint\nhttplib\n"
    if with_tool:
        pkgs |= {**_dist("jupyter", 500_000, ["widgetkit", "httplib"]), **_dist("widgetkit", 900_000)}
        asked += "jupyter\n"
    base = {"etc/os-release": b'ID=debian\nVERSION_ID="12"\n', "usr/local/bin/python3.11": b"\x7fELF" + bytes(60_000)}
    return [base, pkgs, {"app/main.py": b"import fancyprint, httplib\n", "app/requirements.txt": asked.encode()}]


def test_unrequested_extras_and_listed_packages(tmp_path: Path) -> None:
    config = {"config": {"WorkingDir": "/app", "Cmd": ["python", "main.py"]},
              "history": [{"created_by": h, "empty_layer": "CMD" in h} for h in HISTORY]}
    fat = advise.run(AdviseConfig(image=make_image(tmp_path, _layers(True), config=config, name="fat"), use_cache=False))
    lean = advise.run(AdviseConfig(image=make_image(tmp_path, _layers(False), config=config, name="lean"), use_cache=False))
    (dev,) = [f for f in fat.findings if f.rule == "py-dev-tools"]
    assert set(dev.data["removed_distributions"]) == {"jupyter", "widgetkit"}  # httplib stays: listed
    (rec,) = [r for r in fat.recommendations if r.id == "remove-dev-tools"]
    freed = fat.size_bytes - lean.size_bytes
    assert abs(rec.standalone_savings_bytes - freed) <= 0.10 * freed, (rec.standalone_savings_bytes, freed)
