"""What a new user reads: counts as words, the files a finding is about, the largest files in
every format, commands cut at a word, savings against the bytes the layers carry."""

from __future__ import annotations

import json

from advisor.advise.advice import build_advice
from advisor.advise.rules.base import plural, shorten
from advisor.report.advise import render
from tests.advise.rules import fixtures as fx
from tests.advise.test_advice import _combined


def _advice():  # type: ignore[no-untyped-def]
    return build_advice(_combined(with_model=True).context())


def test_counts_read_as_words() -> None:
    text = render(_advice(), "text")
    assert plural(1, "file") == "1 file" and plural(2, "directory", "directories") == "2 directories"
    for wrong in ("1 files", "layer(s)", "model(s)", "notebook(s)", "1 directories", "1 .deb archives", "saves 0 B"):
        assert wrong not in text, wrong
    assert "an alternative to #1 (onnx-runtime): saves 2.3 GB on its own" in text


def test_text_names_each_findings_largest_paths() -> None:
    lines = render(_advice(), "text").splitlines()
    i = next(n for n, line in enumerate(lines) if "layer-hidden-bytes" in line)
    assert lines[i + 1].strip() == "/opt/big.tar (50.0 MB)"
    j = next(n for n, line in enumerate(lines) if "os-full-base" in line)
    assert lines[j + 1].strip().startswith("/usr/libexec/gcc/x86_64-linux-gnu/12/cc1 (30.0 MB), ")
    assert lines[j + 1].endswith("and 3 more")


def test_one_numbering_for_layers() -> None:
    text = render(_advice(), "text")
    assert "step 1" not in text  # history steps and layers count differently: say the layer only
    assert "layer 1: `RUN pip install -r r.txt && apt-get install -y curl` keeps pip's cache (5.0 MB)" in text


def test_largest_files_in_every_format() -> None:
    a = _advice()
    top = "/usr/local/lib/python3.11/site-packages/nvidia/cudnn/lib/libcudnn.so.13"
    data = json.loads(render(a, "json"))
    assert data["largest_files"][0] == {"path": top, "size_bytes": 900_000_000}
    assert data["layers"][0]["largest_files"][0]["path"] == "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1"
    for fmt in ("text", "markdown", "html"):
        out = render(a, fmt)
        assert "Largest files" in out and top in out and "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1" in out, fmt


def test_savings_compared_with_what_the_layers_carry() -> None:
    a = _advice()
    assert a.layer_bytes == a.size_bytes + 50_000_000  # the deleted tarball still ships
    text = render(a, "text")
    assert "Total estimated savings: 3.5 GB of the 3.7 GB the layers carry" in text
    assert "50.0 MB of it deleted or overwritten later" in text


def test_commands_cut_at_a_word() -> None:
    line = "RUN apt-get update && apt-get install -y --no-install-recommends build-essential libpq-dev"
    assert shorten(line, 40) == "RUN apt-get update && apt-get install\u2026"
    assert shorten("short", 40) == "short"


def test_no_empty_sections() -> None:
    text = render(build_advice(fx.Img([{"etc/hostname": 10}]).context()), "text")
    for empty in ("Recommendations", "Python environments", "Largest distributions"):
        assert empty not in text, empty
    assert "Findings: none" in text
    md = render(build_advice(fx.Img([{"etc/hostname": 10}]).context()), "markdown")
    assert "## Recommendations" not in md and "## Findings" not in md


def test_strip_fix_names_the_folder_the_libraries_are_in() -> None:
    a = build_advice(fx.unstripped_elf().context())
    (rec,) = [r for r in a.recommendations if r.id == "strip-binaries"]
    assert "/opt/venv" not in rec.fix
    assert rec.fix.startswith("find /usr/local/lib/python3.11/site-packages/ext -name '*.so*'")
