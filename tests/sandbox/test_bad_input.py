"""Images that cannot run: one-line errors (exit 3), and the bundle is gone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from advisor.errors import BadInputError
from advisor.oci.tarball import FileSpec
from advisor.sandbox.runner import run_image
from advisor.slim.image import BuildResult
from tests.slim.fixtures import NEEDS_ROOT_TOOLS

pytestmark = [pytest.mark.slow, NEEDS_ROOT_TOOLS]  # root, runc, skopeo, umoci


def _image(tmp: Path, base_ref: str, layer: dict[str, bytes | FileSpec], config: dict) -> str:
    from advisor.oci.loader import open_image
    from advisor.oci.writer import write_image

    ref = f"oci:{tmp / 'img'}:bad"
    with open_image(base_ref) as base:
        write_image(ref, [layer], {"config": {"Env": list(base.config.env), **config}}, base=base)
    return ref


CASES = {
    "missing entrypoint": ({"app/ok.txt": b"1"}, {"Entrypoint": ["/app/server"], "WorkingDir": "/app"},
                           "the image's command /app/server does not exist in the image"),
    "missing user": ({"app/ok.txt": b"1"}, {"User": "ghost", "Cmd": ["python3"]}, "ghost"),
    "absolute symlink workdir": ({"app": FileSpec(symlink="/etc")}, {"WorkingDir": "/app", "Cmd": ["python3"]},
                                 "working directory /app is a symlink to the absolute path /etc"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_line_error_and_nothing_left(
    case: str, tmp_path: Path, debian_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer, config, expected = CASES[case]
    ref = _image(tmp_path, debian_base, layer, config)
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("ADVISOR_RUN_DIR", str(runs))
    with pytest.raises(BadInputError) as info:
        run_image(ref, timeout=30)
    assert expected in info.value.message and "\n" not in info.value.message
    assert info.value.exit_code == 3 and info.value.hint
    assert list(runs.iterdir()) == []  # the bundle was removed


def test_bench_without_runc_exits_7_naming_the_package(built: BuildResult, tmp_path: Path) -> None:
    import subprocess
    import sys

    data = tmp_path / "data.csv"
    data.write_text("text,label\nfine,1\n")
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": venv_bin}  # no runc (it refuses before skopeo or umoci run)
    argv = [sys.executable, "-m", "advisor.cli", "bench", "--original", built.destination,
            "--slim", built.destination, "--original-model-path", "/app/model", "--data", str(data),
            "--report", str(tmp_path / "out")]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert out.returncode == 7, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[-2].startswith("error: this command needs runc")
    assert "apt-get install runc" in lines[-1] and "--unsandboxed-host-run" in lines[-1]
    assert not (tmp_path / "out").exists()
