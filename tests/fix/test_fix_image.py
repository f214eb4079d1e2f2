"""``fix.run`` on a fat image built in the test (real pip-installed distributions, caches,
bytecode, tests in site-packages, a dev tool, ``.git``), without the proof: what each
recommendation removes, checked by reading the written image back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from advisor.errors import BadInputError, UsageError
from advisor.fix import FixConfig, FixResult, run
from advisor.fix.plan import parse_ids
from advisor.oci.filetree import FileTree, merge_layers
from advisor.oci.layers import read_layers
from advisor.oci.loader import open_image
from advisor.report.fix import render
from tests.advise.test_advise_image import _history, _layers
from tests.oci.helpers import make_image

APPLIED = {"remove-dev-tools", "clean-caches", "dockerignore", "trim-python"}


@pytest.fixture(scope="module")
def fat(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("fat")
    layers, history, _ = _layers(with_dev=True, with_cache=True)
    return make_image(tmp, layers, config={"config": {"WorkingDir": "/app", "Cmd": ["python", "main.py"]},
                                           "history": _history(history)})


def _tree(ref: str) -> tuple[FileTree, list[dict[str, object]], int]:
    with open_image(ref) as image:
        trees = read_layers(image)
        return merge_layers(trees).tree, list(image.config.raw.get("history") or []), len(image.layers)


@pytest.fixture(scope="module")
def fixed(fat: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[FixResult, str]:
    dest = f"oci:{tmp_path_factory.mktemp('out') / 'fixed'}:v1"
    return run(FixConfig(fat, dest, verify=False, use_cache=False)), dest


def test_each_fix_removes_its_estimate_within_ten_percent(fixed: tuple[FixResult, str]) -> None:
    result, _ = fixed
    applied = {f.id: f for f in result.fixes if f.applied}
    assert set(applied) == APPLIED
    for f in applied.values():
        assert f.files > 0 and f.proof == "skipped (--no-verify)"
        assert abs(f.removed_bytes - f.estimated_bytes) <= 0.1 * f.estimated_bytes, f
    skipped = {f.id: f.reason for f in result.fixes if not f.applied}
    assert "rebuild" in skipped["slim-base"] and "strip" not in skipped["strip-binaries"][:0]


def test_the_written_image_lacks_exactly_the_removed_paths(fat: str, fixed: tuple[FixResult, str]) -> None:
    result, dest = fixed
    before, _, n_before = _tree(fat)
    after, history, n_after = _tree(dest)
    assert n_after == n_before  # rewritten in place: no whiteout layer on top
    assert not any(p.path.rsplit("/", 1)[-1].startswith(".wh.") for p in after)
    assert before.total_size - after.total_size == result.size_before - result.size_after
    gone = {p.path for p in before} - {p.path for p in after}
    assert "app/.git/objects/pack/p.pack" in gone and "root/.cache/pip/wheels/ab/requests.whl" in gone
    assert not any("/pytest/" in p or p.endswith(".pyc") for p in {q.path for q in after})
    for info in after:  # everything kept is as it was
        old = before.get(info.path)
        assert old is not None
        assert (old.kind, old.size, old.mode, old.uid, old.gid, old.link, old.mtime) == \
               (info.kind, info.size, info.mode, info.uid, info.gid, info.link, info.mtime)
    notes = [str(h.get("comment", "")) for h in history if h.get("comment")]
    assert any("remove-dev-tools" in n for n in notes) and any("dockerignore" in n for n in notes)


def test_the_same_input_gives_the_same_digest_in_any_format(fat: str, fixed: tuple[FixResult, str],
                                                            tmp_path: Path) -> None:
    again = run(FixConfig(fat, f"oci:{tmp_path / 'again'}:v1", verify=False))
    assert again.manifest_digest == fixed[0].manifest_digest
    archive = run(FixConfig(fat, f"docker-archive:{tmp_path / 'fixed.tar'}:fixed:v1", verify=False))
    assert archive.size_after == fixed[0].size_after
    if shutil.which("skopeo"):
        out = subprocess.run(["skopeo", "inspect", f"docker-archive:{tmp_path / 'fixed.tar'}"],
                             capture_output=True, text=True, check=True)
        assert len(json.loads(out.stdout)["Layers"]) == 4


def test_only_and_skip_choose_the_fixes(fat: str, tmp_path: Path) -> None:
    only = run(FixConfig(fat, f"oci:{tmp_path / 'a'}", only=parse_ids("clean-caches,dockerignore", "--only"),
                         verify=False))
    assert {f.id for f in only.fixes if f.applied} == {"clean-caches", "dockerignore"}
    assert {f.reason for f in only.fixes if f.id == "trim-python"} == {"not in --only"}
    skip = run(FixConfig(fat, f"oci:{tmp_path / 'b'}", skip=parse_ids(["trim-python"], "--skip"), verify=False))
    assert {f.id for f in skip.fixes if f.applied} == APPLIED - {"trim-python"}
    with pytest.raises(UsageError, match="unknown recommendation id"):
        parse_ids("clean-caches,nope", "--only")


def test_reports_name_estimate_removed_and_proof(fixed: tuple[FixResult, str]) -> None:
    result, _ = fixed
    doc = json.loads(render(result, "json"))
    row = next(f for f in doc["fixes"] if f["id"] == "clean-caches")
    assert row["applied"] and row["removed_bytes"] > 0 and row["estimated_bytes"] > 0
    assert doc["verified"] is False and doc["output"]["digest"] == result.manifest_digest
    assert "skipped (--no-verify)" in render(result, "text")
    assert "<table>" in render(result, "html")


def test_a_bad_input_leaves_an_existing_dest_untouched(tmp_path: Path) -> None:
    dest = tmp_path / "fixed.tar"
    dest.write_bytes(b"the old image")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (broken / "index.json").write_text("{not json")
    with pytest.raises(BadInputError):
        run(FixConfig(f"oci:{broken}", f"oci-archive:{dest}", verify=False))
    assert dest.read_bytes() == b"the old image"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bytes_a_later_layer_hides_leave_their_own_layer(tmp_path: Path) -> None:
    from advisor.oci.tarball import FileSpec

    big = os.urandom(800_000)
    ref = make_image(tmp_path, [
        {"etc/os-release": b"ID=debian\n", "build/toolchain.tar": big, "build/keep.txt": b"kept"},
        {"build/toolchain.tar": FileSpec(whiteout=True), "app/run.sh": FileSpec(content=b"#!/bin/sh\n", mode=0o755)},
    ], history=["ADD base", "RUN rm build/toolchain.tar"])
    result = run(FixConfig(ref, f"oci:{tmp_path / 'out'}", only=frozenset({"squash-layers"}), verify=False))
    squash = next(f for f in result.fixes if f.id == "squash-layers")
    assert squash.applied and squash.removed_bytes == squash.estimated_bytes == len(big)
    assert result.size_after == result.size_before  # nothing visible changed
    assert result.compressed_after < result.compressed_before - 700_000
    with open_image(f"oci:{tmp_path / 'out'}") as image:
        trees = read_layers(image)
    assert "build/toolchain.tar" not in trees[0].entries and "build/keep.txt" in trees[0].entries
    assert "build/toolchain.tar" in trees[1].whiteouts


def test_the_cli_writes_the_report_and_refuses_unknown_ids(fat: str, tmp_path: Path) -> None:
    import sys

    cli = str(Path(sys.executable).with_name("advisor"))
    report = tmp_path / "fix.json"
    done = subprocess.run([cli, "fix", fat, "--output", f"oci:{tmp_path / 'out'}:v1", "--no-verify",
                           "--skip", "trim-python", "--format", "json", "--report", str(report)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    doc = json.loads(report.read_text())
    assert doc["verified"] is False and doc["removed_bytes"] > 0
    assert {f["id"] for f in doc["fixes"] if f["applied"]} == APPLIED - {"trim-python"}
    bad = subprocess.run([cli, "fix", fat, "--output", f"oci:{tmp_path / 'bad'}", "--only", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown recommendation id nope" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_trim_estimate_counts_the_base_headers_fix_removes(tmp_path: Path) -> None:
    """advise credits a dev package's headers in the base to slim-base (first in claiming
    order); fix never applies slim-base, so trim-python removes them and must estimate them."""
    layers, history, _ = _layers(with_dev=False, with_cache=False)
    layers[0] = {**layers[0], "usr/include/stdio.h": os.urandom(2_000_000)}  # libc6-dev's, in the base
    layers[1] = {**layers[1], "usr/local/lib/python3.11/site-packages/rich/tests/t.py": os.urandom(300_000)}
    ref = make_image(tmp_path, layers, config={"config": {"WorkingDir": "/app", "Cmd": ["python", "main.py"]},
                                               "history": _history(history)})
    result = run(FixConfig(ref, f"oci:{tmp_path / 'out'}:v1", only=frozenset({"trim-python"}), verify=False,
                           use_cache=False))
    (trim,) = [f for f in result.fixes if f.id == "trim-python"]
    assert trim.applied and trim.removed_bytes >= 2_300_000
    assert abs(trim.removed_bytes - trim.estimated_bytes) <= 0.1 * trim.estimated_bytes, trim
