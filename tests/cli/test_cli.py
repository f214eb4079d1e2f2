"""The `advisor` console script end to end: exit codes, error lines, the JSON contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.oci.helpers import FileSpec, make_image

ADVISOR = [sys.executable, "-m", "advisor.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*ADVISOR, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def _dist_info(name: str, version: str, files: dict[str, bytes]) -> dict[str, bytes]:
    site = "usr/local/lib/python3.11/site-packages"
    di = f"{site}/{name}-{version}.dist-info"
    out = {f"{site}/{p}": b for p, b in files.items()}
    out[f"{di}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    out[f"{di}/INSTALLER"] = b"pip\n"
    record = [f"{p},," for p in files] + [f"{name}-{version}.dist-info/METADATA,,",
                                          f"{name}-{version}.dist-info/RECORD,,"]
    out[f"{di}/RECORD"] = ("\n".join(record) + "\n").encode()
    return out


@pytest.fixture(scope="module")
def fat_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("cli")
    base = {
        "usr/local/bin/python3.11": b"\x7fELF" + b"\0" * 2000,
        "etc/os-release": b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
    }
    pip_layer = {
        **_dist_info("pytest", "8.3.0", {"pytest/__init__.py": b"x" * 50_000, "pytest/main.py": b"y" * 30_000}),
        "root/.cache/pip/http-v2/a/b/c": b"z" * 400_000,
    }
    app = {"app/app.py": b"print('hi')\n", "app/.git/objects/aa/bb": b"g" * 120_000,
           "app/tmp.bin": b"t" * 10_000}
    cleanup = {"app/tmp.bin": FileSpec(whiteout=True)}
    return make_image(
        tmp, [base, pip_layer, app, cleanup], fmt="docker-archive",
        history=["/bin/sh -c #(nop) ADD file:abc in / ",
                 "/bin/sh -c pip install -r requirements.txt",
                 "/bin/sh -c #(nop) COPY dir:123 in /app ",
                 "/bin/sh -c rm /app/tmp.bin"],
    )


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("advisor ")


def test_advise_json_contract(fat_image: str, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = run("advise", fat_image, "--format", "json", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # json mode stays quiet
    doc = json.loads(out.read_text())
    for key in ("schema_version", "image", "layers", "efficiency", "wasted_bytes", "python",
                "findings", "recommendations", "total_estimated_savings_bytes"):
        assert key in doc
    assert doc["schema_version"] == 1
    assert set(doc["image"]) >= {"reference", "digest", "os", "architecture", "size_bytes",
                                 "compressed_size_bytes"}
    assert [layer["index"] for layer in doc["layers"]] == [0, 1, 2, 3]
    assert doc["layers"][1]["created_by"].endswith("pip install -r requirements.txt")
    assert 0.0 < doc["efficiency"] < 1.0 and doc["wasted_bytes"] == 10_000
    dists = {d["name"]: d for d in doc["python"]["distributions"]}
    assert dists["pytest"]["size_bytes"] >= 80_000
    rules = {f["rule"] for f in doc["findings"]}
    assert {"py-pip-cache", "vcs-git-dir", "py-dev-tools", "layer-hidden-bytes",
            "dockerfile-pip-cache"} <= rules, rules
    savings = [r["estimated_savings_bytes"] for r in doc["recommendations"]]
    assert savings == sorted(savings, reverse=True)
    assert doc["total_estimated_savings_bytes"] == sum(savings)


def test_advise_output_dir_writes_every_format(fat_image: str, tmp_path: Path) -> None:
    r = run("advise", fat_image, "--format", "json", "--output-dir", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert names == ["advise.html", "advise.json", "advise.md", "advise.txt"]
    assert json.loads((tmp_path / "r" / "advise.json").read_text()) == json.loads(r.stdout)
    assert (tmp_path / "r" / "advise.html").read_text().lstrip().lower().startswith("<!doctype html")


def test_advise_text_and_gate(fat_image: str) -> None:
    r = run("advise", fat_image)
    assert r.returncode == 0, r.stderr
    assert "Recommendations" in r.stdout
    gated = run("advise", fat_image, "--fail-on", "low")
    assert gated.returncode == 1
    assert gated.stderr.startswith("error:")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["advise"], 2),
        (["advise", "x", "--format", "nope"], 2),
        (["advise", "oci:/nonexistent/layout"], 3),
        (["advise", "docker-archive:/nonexistent.tar"], 3),
        (["export", "/nonexistent/model", "--artifacts", "/tmp/never"], 3),
        (["export", "/tmp"], 2),
    ],
)
def test_errors_are_one_line_with_hint(args: list[str], code: int) -> None:
    r = run(*args)
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("error: ")
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in r.stderr


def test_corrupt_archive_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar" * 100)
    r = run("advise", f"docker-archive:{bad}")
    assert r.returncode == 3
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_advise_does_not_import_heavy_modules(fat_image: str) -> None:
    code = (
        "import sys\n"
        "from advisor.cli.main import main\n"
        f"sys.argv = ['advisor', 'advise', {fat_image!r}, '--format', 'json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'onnx') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "HEAVY []" in r.stderr, r.stderr


def test_export_graph_option_end_to_end(tmp_path: Path) -> None:
    from tests.export.tiny import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny", "bert", "text-classification")
    out = tmp_path / "artifacts"
    proc = run("export", str(model), "--artifacts", str(out), "--quantize", "none",
               "--graph", "unfused", "--max-length", "32", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)["export"]
    assert (summary["graph"], summary["optimization"], summary["quantization"]) == ("unfused", "none", "none")
    assert json.loads((out / "validation.json").read_text())["graph"]["selection"] == "unfused"
    text = run("export", str(model), "--artifacts", str(out), "--quantize", "none",
               "--graph", "fused", "--max-length", "32")
    assert text.returncode == 0, text.stderr
    assert "(fp32, fused graph," in text.stdout
    refused = run("export", str(model), "--artifacts", str(tmp_path / "never"), "--graph", "fused",
                  "--no-optimize")
    assert refused.returncode == 2 and "--no-optimize" in refused.stderr
    assert not (tmp_path / "never").exists()
