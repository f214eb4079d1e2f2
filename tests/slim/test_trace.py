"""Pruning by trace: only RECORD's files go, metadata stays, strays are refused; and the
trace of the real staged server (the build tests run it end to end on a Debian base)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from advisor.errors import BuildError
from advisor.slim.probe import Libc, PythonTarget
from advisor.slim.trace import prune_unloaded, runs_here


def fake_site(root: Path) -> Path:
    files = {
        "pkg/__init__.py": b"",
        "pkg/used.py": b"x = 1\n",
        "pkg/unused.py": b"y = 2\n" * 100,
        "pkg/tests/test_it.py": b"assert True\n",
        "pkg/lib.so": b"\x7fELF" + b"\0" * 1000,
        "pkg-1.0.dist-info/METADATA": b"Name: pkg\n",
        "pkg-1.0.dist-info/LICENSE": b"MIT\n",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        [[rel, "", ""] for rel in files] + [["pkg-1.0.dist-info/RECORD", "", ""]])
    (root / "pkg-1.0.dist-info/RECORD").write_text(out.getvalue())
    (root / "not-from-a-wheel.txt").write_text("left alone")
    return root


def test_only_unloaded_record_files_go(tmp_path: Path) -> None:
    site = fake_site(tmp_path)
    loaded = [site / "pkg/__init__.py", site / "pkg/used.py", site / "pkg/lib.so"]
    pruned = prune_unloaded(site, loaded)
    assert pruned.files == 2 and pruned.bytes == 600 + len(b"assert True\n")
    assert not (site / "pkg/unused.py").exists() and not (site / "pkg/tests").exists()
    assert all(p.exists() for p in loaded)
    assert (site / "pkg-1.0.dist-info/LICENSE").exists()  # metadata and licences stay
    assert (site / "not-from-a-wheel.txt").exists()  # nothing RECORD does not list is removed
    rows = [r[0] for r in csv.reader(io.StringIO((site / "pkg-1.0.dist-info/RECORD").read_text()))]
    assert "pkg/unused.py" not in rows and "pkg/used.py" in rows


def test_a_loaded_file_no_record_lists_is_refused(tmp_path: Path) -> None:
    site = fake_site(tmp_path)
    with pytest.raises(BuildError, match="no wheel's RECORD lists"):
        prune_unloaded(site, [site / "not-from-a-wheel.txt"])
    assert (site / "pkg/unused.py").exists()  # refused before removing anything


def test_runs_here_names_what_differs() -> None:
    import dataclasses
    import platform
    import sys

    here = PythonTarget(executable="/usr/bin/python3", version=(sys.version_info[0], sys.version_info[1]),
                        abi="cp311", libc=Libc("glibc", (2, 36)), architecture="amd64", os_release={})
    older = dataclasses.replace(here, version=(3, 9))
    assert "3.9" in (runs_here(older) or "")
    if platform.machine() == "x86_64":
        assert runs_here(here) is None
        assert "arm64" in (runs_here(dataclasses.replace(here, architecture="arm64")) or "")
