"""Layer analysis on real images written in the test: history, base share, largest, hidden bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.advise.facts.layers import (
    HistoryRow,
    analyze_layers,
    detect_base,
    instruction,
    map_history,
)
from advisor.oci.filetree import merge_layers
from advisor.oci.filetree.dive import dive_efficiency
from advisor.oci.layers import read_layers
from advisor.oci.loader import open_image
from advisor.oci.model import HistoryEntry
from advisor.oci.tarball import FileSpec
from tests.oci.helpers import make_image

BASE_LAYER = {
    "usr/lib/libc.so": b"c" * 1000,
    "etc/os-release": b"ID=x\n",
    "usr/share/doc/readme": b"r" * 300,
}
PIP_LAYER = {
    "usr/local/lib/python3.11/site-packages/torch/lib/libtorch.so": b"t" * 5000,
    "root/.cache/pip/http/blob": b"p" * 2000,
}
CLEAN_LAYER = {"root/.cache/pip": FileSpec(whiteout=True), "etc/os-release": b"ID=y\n"}
APP_LAYER = {
    "app": FileSpec(opaque=True),
    "app/main.py": b"print()\n",
    "usr/share/doc/readme": b"R" * 10,
}

HISTORY = [
    {"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
    {"created_by": '/bin/sh -c #(nop)  CMD ["bash"]', "empty_layer": True},
    {
        "created_by": "RUN /bin/sh -c pip install torch # buildkit",
        "comment": "buildkit.dockerfile.v0",
    },
    {"created_by": "ENV PATH=/x", "empty_layer": True, "comment": "buildkit.dockerfile.v0"},
    {"created_by": "RUN /bin/sh -c rm -rf /root/.cache/pip # buildkit"},
    {"created_by": "COPY . /app # buildkit"},
]


def _report(tmp_path: Path, history: list[dict[str, object]] | None = HISTORY, **kw: object):  # type: ignore[no-untyped-def]
    cfg = {"history": history} if history is not None else {}
    ref = make_image(tmp_path, [BASE_LAYER, PIP_LAYER, CLEAN_LAYER, APP_LAYER], config=cfg)
    with open_image(ref) as image:
        trees = read_layers(image)
        return image, analyze_layers(image, trees, **kw), trees  # type: ignore[arg-type]


def test_layers_like_docker_history(tmp_path: Path) -> None:
    image, report, _ = _report(tmp_path)
    assert [layer.index for layer in report.layers] == [0, 1, 2, 3]
    assert [layer.created_by for layer in report.layers] == [
        "/bin/sh -c #(nop) ADD file:abc in / ",
        "RUN /bin/sh -c pip install torch # buildkit",
        "RUN /bin/sh -c rm -rf /root/.cache/pip # buildkit",
        "COPY . /app # buildkit",
    ]
    first = report.layers[0]
    assert first.size_bytes == 1000 + 5 + 300
    assert first.compressed_size_bytes == image.layers[0].blob.size
    assert first.digest == image.layers[0].blob.digest and first.diff_id == image.layers[0].diff_id
    assert first.files == 3
    assert report.layers[2].whiteouts == 1 and report.layers[3].whiteouts == 1
    assert [r.layer for r in report.history] == [0, None, 1, None, 2, 3]
    assert report.size_bytes == sum(layer.size_bytes for layer in report.layers)
    assert report.compressed_size_bytes == image.compressed_size


def test_base_from_history_cmd(tmp_path: Path) -> None:
    _, report, _ = _report(tmp_path)
    assert (report.base_layer_count, report.base_rule) == (1, "history-cmd")
    assert [layer.is_base for layer in report.layers] == [True, False, False, False]
    assert report.base_size_bytes == 1305
    assert report.user_size_bytes == report.size_bytes - 1305


def test_base_explicit_and_fallback(tmp_path: Path) -> None:
    image, report, _ = _report(tmp_path / "a", base_diff_ids=[])
    assert (report.base_layer_count, report.base_rule) == (0, "explicit")
    diff_ids = [layer.diff_id for layer in image.layers]
    _, report, _ = _report(tmp_path / "b", base_diff_ids=[*diff_ids[:2], "sha256:" + "0" * 64])
    assert (report.base_layer_count, report.base_rule) == (2, "explicit")
    _, report, _ = _report(tmp_path / "c", history=None)
    assert (report.base_layer_count, report.base_rule) == (1, "first-layer")


def test_largest_files_and_dirs(tmp_path: Path) -> None:
    _, report, _ = _report(tmp_path)
    top = report.largest_files[0]
    assert (top.path, top.size_bytes, top.layer) == (
        "usr/local/lib/python3.11/site-packages/torch/lib/libtorch.so",
        5000,
        1,
    )
    assert "root/.cache/pip/http/blob" not in {f.path for f in report.largest_files}  # deleted
    dirs = {d.path: d.size_bytes for d in report.largest_dirs}
    assert dirs["usr"] == 1000 + 5000 + 10
    assert dirs["usr/share/doc"] == 10  # the final version, not the overwritten 300 bytes
    per_layer = report.layers[1].largest_files
    assert per_layer[0].path.endswith("libtorch.so")
    assert report.layers[1].largest_dirs[0].path == "usr"


def test_hidden_bytes(tmp_path: Path) -> None:
    _, report, _ = _report(tmp_path)
    hidden = {(h.path, h.layer, h.by_layer, h.how): h.size_bytes for h in report.hidden}
    assert hidden == {
        ("root/.cache/pip/http/blob", 1, 2, "deleted"): 2000,
        ("usr/share/doc/readme", 0, 3, "overwritten"): 300,
        ("etc/os-release", 0, 2, "overwritten"): 5,
    }
    assert report.hidden_bytes == 2305
    assert [h.size_bytes for h in report.hidden] == sorted(
        (h.size_bytes for h in report.hidden), reverse=True
    )


def test_opaque_directory_hides_lower_files(tmp_path: Path) -> None:
    layers = [{"app/a.py": b"a" * 40, "app/sub/b.py": b"b" * 60}, APP_LAYER]
    ref = make_image(tmp_path, layers)
    with open_image(ref) as image:
        trees = read_layers(image)
    hidden = merge_layers(trees).hidden
    assert {(h.path, h.how, h.size_bytes) for h in hidden} == {
        ("app/a.py", "opaque", 40),
        ("app/sub/b.py", "opaque", 60),
    }


def test_dive_efficiency_by_hand(tmp_path: Path) -> None:
    # f: 100 then 100 again (cumulative 200, minimum 100); g: 50 once; h deleted (file: 0).
    layers = [
        {"f": b"x" * 100, "g": b"y" * 50, "h": b"z" * 30},
        {"f": b"w" * 100, "h": FileSpec(whiteout=True)},
    ]
    ref = make_image(tmp_path, layers)
    with open_image(ref) as image:
        score, wasted, refs = dive_efficiency(read_layers(image))
    assert wasted == 200 + 30
    assert score == pytest.approx((100 + 50 + 0) / (200 + 50 + 30), abs=1e-12)
    assert [(r.path, r.count, r.size_bytes) for r in refs] == [("f", 2, 200), ("h", 2, 30)]


def test_empty_image_is_fully_efficient() -> None:
    assert dive_efficiency([]) == (1.0, 0, [])


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('/bin/sh -c #(nop)  CMD ["python3"]', "CMD"),
        ("/bin/sh -c apt-get update", "RUN"),
        ("RUN /bin/sh -c pip install x # buildkit", "RUN"),
        ("COPY . /app # buildkit", "COPY"),
        ('ENTRYPOINT ["x"]', "ENTRYPOINT"),
        ("", ""),
    ],
)
def test_instruction(line: str, expected: str) -> None:
    assert instruction(line) == expected


def test_history_with_fewer_entries_than_layers() -> None:
    rows = map_history(
        [HistoryEntry(created_by="ADD x"), HistoryEntry(created_by="CMD", empty_layer=True)], 3
    )
    assert [r.layer for r in rows] == [0, None]
    assert detect_base(rows, ["a", "b", "c"], None) == (1, "first-layer")
    rows2 = (HistoryRow("ADD", "", "", False, 0), HistoryRow('CMD ["sh"]', "", "", True, None))
    assert detect_base(rows2, ["a"], None) == (0, "first-layer")  # nothing after the CMD
