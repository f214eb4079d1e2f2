"""What a new user types (issue 18): help, --debug anywhere, -o DIR, formats from -o's
extension, every option checked before the image is read, one error line and a hint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.test_cli import run
from tests.oci.helpers import make_image

ROOT = Path(__file__).resolve().parents[2]
#: A reference whose reading fails with exit 3: an option error must win (exit 2) before it.
UNREAD = "docker-archive:/nonexistent/never-read.tar"


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("small")
    layers = [{"etc/os-release": b"ID=debian\n", "bin/sh": b"\x7fELF" + b"\0" * 500},
              {"app/main.py": b"print(1)\n", "app/big.bin": b"x" * 20_000},
              {"app/big.bin": b"y" * 20_000}]
    return make_image(tmp, layers, fmt="docker-archive")


def test_dash_h_is_help() -> None:
    for args in ((), ("advise",), ("export",), ("bench",), ("fix",)):
        long, short = run(*args, "--help"), run(*args, "-h")
        assert long.returncode == short.returncode == 0, short.stderr
        assert long.stdout == short.stdout and "Usage: advisor" in short.stdout


def test_bare_advisor_prints_help_once() -> None:
    r = run()
    assert r.returncode == 2
    assert r.stdout.count("Usage: advisor") == 1 and "advise" in r.stdout
    assert r.stderr == "" and "error:" not in r.stdout


@pytest.mark.parametrize("command", ["advise", "export", "bench", "fix"])
def test_help_has_no_type_placeholders(command: str) -> None:
    text = run(command, "--help").stdout
    assert not re.search(r"\{[a-z_]+\}|<(str|path|int|float|list\[str\])>", text), text


def test_debug_is_accepted_after_the_command() -> None:
    before, after = run("--debug", "advise", UNREAD), run("advise", UNREAD, "--debug")
    assert before.returncode == after.returncode == 3
    assert "Traceback" in before.stderr and "Traceback" in after.stderr
    assert after.stderr.strip().splitlines()[-1].startswith("hint: ")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["advise", UNREAD, "--fail-on", "severe"], "unknown severity 'severe'"),
        (["advise", UNREAD, "--rules", "/nonexistent/rules.toml"], "rules file not found"),
        (["advise", UNREAD, "--disable-rule", "no-such-rule"], "unknown rule id"),
        (["advise", UNREAD, "--platform", "linux"], "invalid platform"),
        (["advise", UNREAD, "-o", "/nonexistent/dir/r.json"], "no folder /nonexistent/dir"),
        (["advise", UNREAD, "--format", "pdf"], "'pdf' is not one of"),
        (["export", "/nonexistent/model", "--artifacts", "/tmp/x", "-f", "html"], "'html' is not one of 'text', 'json'"),
        (["export", "/nonexistent/model", "--artifacts", "/tmp/x", "--label", "novalue"], "bad --label"),
        (["export", "/nonexistent/model", "--artifacts", "/tmp/x", "--graph", "fused", "--no-optimize"],
         "--no-optimize"),
        (["bench", "--original", "a", "--slim", "b", "--samples", "many"], "Invalid value for '--samples'"),
        (["bench", "--original", "a", "--slim", "b", "--concurrency", "0"], "bad --concurrency"),
        (["bench", "--slim", "b"], "Missing option '--original'"),
        (["nosuch"], "No such command 'nosuch'"),
    ],
)
def test_options_are_checked_before_anything_is_read(args: list[str], words: str) -> None:
    r = run(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stdout == ""  # no report first
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), r.stderr
    assert words in lines[0]
    assert "Value error" not in r.stderr


def test_output_into_an_existing_folder(small_image: str, tmp_path: Path) -> None:
    assert run("advise", small_image, "-o", str(tmp_path)).returncode == 0
    assert run("advise", small_image, "-o", str(tmp_path), "-f", "json").returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["advise.json", "advise.txt"]
    assert json.loads((tmp_path / "advise.json").read_text())["schema_version"] == 1


@pytest.mark.parametrize(("name", "check"), [
    ("r.json", lambda text: json.loads(text)["schema_version"] == 1),
    ("r.html", lambda text: text.lstrip().lower().startswith("<!doctype html")),
    ("r.md", lambda text: text.startswith("#")),
    ("r.txt", lambda text: text.startswith("Image ")),
])
def test_format_follows_the_output_extension(small_image: str, tmp_path: Path, name: str, check: object) -> None:
    r = run("advise", small_image, "-o", str(tmp_path / name))
    assert r.returncode == 0, r.stderr
    assert check((tmp_path / name).read_text())  # type: ignore[operator]
    explicit = run("advise", small_image, "-o", str(tmp_path / "x.html"), "--format", "json")
    assert explicit.returncode == 0 and json.loads((tmp_path / "x.html").read_text())


def test_dash_is_stdout(small_image: str) -> None:
    r = run("advise", small_image, "-o", "-", "-f", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["schema_version"] == 1


def test_readme_lists_every_exit_code() -> None:
    table = (ROOT / "README.md").read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in (0, 1, 2, 3, 4, 5, 6, 7, 70, 130):
        assert f"| {code} |" in table, code
