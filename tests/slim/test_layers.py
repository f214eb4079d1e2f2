from __future__ import annotations

from pathlib import Path

import pytest

from advisor.errors import BuildError
from advisor.oci.tarball import FileSpec
from advisor.slim import layers as L


def test_user_line_is_added_once_and_replaces_a_stale_entry() -> None:
    base = b"root:x:0:0:root:/root:/bin/bash\nadvisor:x:5:5::/:/bin/sh\n"
    out = L.with_user_line(base, L.passwd_line(L.User()), "advisor").decode()
    assert out.startswith("root:x:0:0")
    assert out.count("advisor:") == 1
    assert "advisor:x:10001:10001:" in out and out.endswith("\n")


def test_minimal_passwd_when_the_base_has_none() -> None:
    out = L.with_user_line(None, L.passwd_line(L.User()), "advisor").decode()
    assert out.splitlines()[0].startswith("root:x:0:0:")


def test_model_layer_makes_private_files_readable(tmp_path: Path) -> None:
    for name in L.MODEL_FILES:
        (tmp_path / name).write_bytes(b"x")
        (tmp_path / name).chmod(0o600)
    (tmp_path / "model.onnx.data").write_bytes(b"weights")
    (tmp_path / "notes.txt").write_text("not shipped")
    spec = L.model_layer(tmp_path)
    assert sorted(spec) == sorted(f"app/model/{n}" for n in [*L.MODEL_FILES, "model.onnx.data"])
    assert all(isinstance(f, FileSpec) and f.mode == 0o644 for f in spec.values())
    assert L.content_size(spec) == len(L.MODEL_FILES) + len(b"weights")


def test_model_layer_refuses_incomplete_artifacts(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(BuildError, match=r"tokenizer\.json"):
        L.model_layer(tmp_path)


def test_readable_normalises_modes_and_owners(tmp_path: Path) -> None:
    spec = {
        "a": FileSpec(content=b"1", mode=0o4700, uid=5),
        "b": FileSpec(content=b"2", mode=0o600),
        "d": FileSpec(dir=True, mode=0o700),
        "l": FileSpec(symlink="a"),
    }
    out = L.readable(spec)
    modes = {p: f.mode for p, f in out.items() if isinstance(f, FileSpec)}
    assert modes == {"a": 0o755, "b": 0o644, "d": 0o755, "l": None}
    assert all(isinstance(f, FileSpec) and f.uid in (0, None) for f in out.values())


def test_staged_app_holds_only_the_serving_package(tmp_path: Path) -> None:
    app = L.stage_app(tmp_path / "app")
    names = sorted(p.relative_to(app).as_posix() for p in app.rglob("*") if p.is_file())
    assert "advisor/serve/__main__.py" in names and "advisor/serve/server.py" in names
    assert all(n.startswith("advisor/serve/") and n.endswith(".py") for n in names)
