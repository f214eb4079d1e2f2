"""The case study's base on a fresh machine: ``ensure_base`` creates the cache it writes into
(issue 18: ``FileNotFoundError .../casestudy/.base-...`` with an empty ``ADVISOR_CACHE``)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from advisor.errors import BuildError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="mmdebstrap is not installed")
def test_ensure_base_on_an_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("benchmarks.casestudy.build", None)
    from benchmarks.casestudy import build

    cache = tmp_path / "fresh-cache"  # does not exist, as on a fresh machine
    monkeypatch.setenv("ADVISOR_CACHE", str(cache))
    # a mirror nobody serves: the real mmdebstrap runs and fails in seconds
    monkeypatch.setattr(build, "MIRRORS", ["deb http://127.0.0.1:9/debian bookworm main"])
    with pytest.raises(BuildError, match="mmdebstrap failed"):
        build.ensure_base(build.SLIM)
    assert (cache / "casestudy").is_dir()
    assert list((cache / "casestudy").iterdir()) == []  # its temporary build folder is gone
