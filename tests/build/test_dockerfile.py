"""The daemonless Dockerfile builder, on a small real base built in the test.

The base is a real (tiny) Linux root filesystem: the host's dash and coreutils with the shared
libraries they load, written as a one-layer OCI layout. Builds run real RUN steps with
``unshare`` (root needed, as on CI), and the images are checked by reading their layer tars
and by independent tools (``skopeo inspect``, ``umoci unpack``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from advisor.build import dockerfile as df
from advisor.errors import BuildError, UsageError

TOOLS = ("sh", "cat", "rm", "mkdir", "touch", "echo", "ln", "mv", "ls")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="RUN steps need root for unshare --mount")


# -- a small real base ------------------------------------------------------------------------


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return [part for line in out.splitlines() for part in line.split() if part.startswith("/")]


def make_rootfs(root: Path) -> Path:
    """dash + a few coreutils + their libraries, /etc/passwd, and files for RUN to delete."""
    for name in ("bin", "etc", "tmp", "proc", "dev", "opt/olddir", "root"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        real = os.path.realpath(shutil.which(tool) or f"/bin/{tool}")
        shutil.copy2(real, root / "bin" / tool)
        for lib in _libraries(real):
            dest = root / lib.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                shutil.copy2(os.path.realpath(lib), dest)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\n")
    (root / "etc" / "base-file.txt").write_text("from the base\n")
    (root / "opt" / "olddir" / "old.txt").write_text("old\n")
    (root / "tmp").chmod(0o1777)
    return root


@pytest.fixture(scope="module")
def base_ref(tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("base")
    rootfs = make_rootfs(work / "rootfs")
    config = {"Env": ["PATH=/bin", "BASE_ENV=1"], "Cmd": ["/bin/sh"]}
    df.image_from_rootfs(rootfs, work / "layout", "tiny", config, "tiny test base")
    return f"oci:{work / 'layout'}:tiny"


DOCKERFILE = """\
ARG BASE
FROM ${BASE} AS build
RUN mkdir -p /out && echo built > /out/artifact.txt && echo scratch > /out/not-copied.txt

FROM ${BASE}
ENV GREETING=hello \\
    OTHER="two words"
WORKDIR /app
COPY hello.txt .
COPY data/ /app/data/
RUN rm /etc/base-file.txt \\
 && mv /opt/olddir /opt/x && mkdir /opt/olddir && rm -rf /opt/x && echo new > /opt/olddir/new.txt \\
 && echo "$GREETING $OTHER" > /app/greeting \\
 && touch /tmp/transient && rm /tmp/transient
COPY --from=build /out/artifact.txt /app/
RUN ["/bin/sh", "-c", "cat /host/secret.txt > /app/from-bind.txt"]
USER app
LABEL purpose=test
EXPOSE 8080
CMD ["sh"]
"""


def make_context(root: Path, dockerfile: str = DOCKERFILE) -> Path:
    root.mkdir()
    (root / "Dockerfile").write_text(dockerfile)
    (root / "hello.txt").write_text("hello world\n")
    (root / "data").mkdir()
    (root / "data" / "a.csv").write_text("x,y\n1,2\n")
    (root / "data" / "skip.tmp").write_text("ignored\n")
    (root / ".dockerignore").write_text("data/*.tmp\n")
    return root


def layer_members(result: df.BuildResult, index: int) -> dict[str, tarfile.TarInfo]:
    blob = result.layout / "blobs" / "sha256" / result.layers[index].digest.split(":")[1]
    with tarfile.open(blob, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def read_member(result: df.BuildResult, index: int, name: str) -> bytes:
    blob = result.layout / "blobs" / "sha256" / result.layers[index].digest.split(":")[1]
    with tarfile.open(blob, "r:gz") as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


@pytest.fixture(scope="module")
def built(
    base_ref: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[df.BuildResult, df.BuildConfig]:
    work = tmp_path_factory.mktemp("build")
    context = make_context(work / "context")
    host = work / "host"
    host.mkdir()
    (host / "secret.txt").write_text("mounted, not copied\n")
    cfg = df.BuildConfig(
        context=context,
        build_args={"BASE": base_ref},
        binds=(df.Bind(str(host), "/host"),),
        cache_root=work / "cache",
    )
    return df.build_image(cfg), cfg


# -- parsing ------------------------------------------------------------------------------------


def test_parse_joins_continuations_and_reads_forms() -> None:
    ins = df.parse_dockerfile(DOCKERFILE)
    keywords = [i.keyword for i in ins]
    assert keywords[:3] == ["ARG", "FROM", "RUN"]
    env = next(i for i in ins if i.keyword == "ENV")
    assert env.value == 'GREETING=hello OTHER="two words"'
    copy_from = next(i for i in ins if i.flags.get("from"))
    assert copy_from.flags == {"from": "build"} and copy_from.value == "/out/artifact.txt /app/"
    exec_run = [i for i in ins if i.keyword == "RUN"][-1]
    assert exec_run.exec_form == ("/bin/sh", "-c", "cat /host/secret.txt > /app/from-bind.txt")


@pytest.mark.parametrize(
    "text",
    [
        "FROM x\nHEALTHCHECK CMD true\n",
        "FROM x\nRUN --mount=type=cache,target=/r true\n",
        "RUN true\n",
        "FROM x\nRUN <<EOF\nx\nEOF\n",
    ],
)
def test_parse_refuses_what_it_cannot_build(text: str) -> None:
    with pytest.raises(UsageError):
        df.parse_dockerfile(text)


def test_substitute_follows_docker_rules() -> None:
    v = {"A": "1", "EMPTY": ""}
    assert df.substitute("$A-${A}-${B:-dflt}-${A:+alt}-${EMPTY:+alt}-\\$A", v) == "1-1-dflt-alt--$A"


@pytest.mark.parametrize(
    ("path", "patterns", "expected"),
    [
        (".git/config", [".git"], True),
        ("notebooks/a.ipynb", ["**/*.ipynb"], True),
        ("a.ipynb", ["**/*.ipynb"], True),
        ("data/x.tmp", ["data/*.tmp"], True),
        ("data/sub/x.tmp", ["data/*.tmp"], False),
        ("keep.md", ["*.md", "!keep.md"], False),
        ("app.py", [".git", "*.md"], False),
    ],
)
def test_dockerignore_patterns(path: str, patterns: list[str], expected: bool) -> None:
    assert df.ignored(path, patterns) is expected


# -- snapshots and diffs on a real directory ----------------------------------------------------


def test_diff_finds_new_changed_deleted_and_replaced(tmp_path: Path) -> None:
    (tmp_path / "keep").write_text("k")
    (tmp_path / "change").write_text("1")
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "inner").write_text("x")
    (tmp_path / "replaced").mkdir()
    (tmp_path / "replaced" / "old").write_text("o")
    before = df.snapshot(tmp_path)
    (tmp_path / "change").write_text("22")
    shutil.rmtree(tmp_path / "gone")
    # make the new directory while the old one still exists, so its inode cannot be reused
    (tmp_path / "replaced").rename(tmp_path / "old-replaced")
    (tmp_path / "replaced").mkdir()
    shutil.rmtree(tmp_path / "old-replaced")
    (tmp_path / "replaced" / "new").write_text("n")
    (tmp_path / "added").write_text("a")
    changes = df.diff_snapshots(before, df.snapshot(tmp_path))
    assert set(changes.changed) == {"change", "added", "replaced", "replaced/new"}
    assert changes.deleted == ("gone",)  # gone/inner is covered by its parent's whiteout
    assert changes.opaque == ("replaced",)


# -- a real build --------------------------------------------------------------------------------


def test_layers_carry_whiteouts_opaque_dirs_and_copies(
    built: tuple[df.BuildResult, df.BuildConfig],
) -> None:
    result, _ = built
    created = [layer.created_by for layer in result.layers]
    assert created[0] == "tiny test base"
    copy_hello, copy_data, run, copy_from, run_exec = range(1, 6)
    assert len(result.layers) == 6, created
    hello = layer_members(result, copy_hello)
    assert "app/hello.txt" in hello and hello["app"].isdir()  # WORKDIR's new dir rides along
    data = layer_members(result, copy_data)
    assert "app/data/a.csv" in data and "app/data/skip.tmp" not in data
    members = layer_members(result, run)
    assert "etc/.wh.base-file.txt" in members
    assert "opt/olddir/.wh..wh..opq" in members and "opt/olddir/new.txt" in members
    assert not any("transient" in name for name in members)
    assert read_member(result, run, "app/greeting") == b"hello two words\n"
    assert set(layer_members(result, copy_from)) >= {"app/artifact.txt"}
    assert read_member(result, run_exec, "app/from-bind.txt") == b"mounted, not copied\n"
    assert not any(name.startswith("host") for name in layer_members(result, run_exec))


def test_history_reads_like_docker(built: tuple[df.BuildResult, df.BuildConfig]) -> None:
    result, _ = built
    lines = [(h.get("created_by", ""), bool(h.get("empty_layer"))) for h in result.history]
    shown = [line for line, _ in lines]
    assert any(line.startswith("/bin/sh -c #(nop)  ENV GREETING=hello") for line in shown)
    assert "/bin/sh -c #(nop) WORKDIR /app" in shown
    assert any(
        line.startswith("/bin/sh -c #(nop) COPY file:") and line.endswith(" in . ")
        for line in shown
    )
    assert any(line.startswith("/bin/sh -c #(nop) COPY --from=build file:") for line in shown)
    assert any(line.startswith("/bin/sh -c rm /etc/base-file.txt") for line in shown)
    assert '/bin/sh -c #(nop)  CMD ["sh"]' in shown
    empty = {line.split("#(nop)")[-1].split()[0] for line, is_empty in lines if is_empty}
    assert empty >= {"ENV", "WORKDIR", "USER", "LABEL", "EXPOSE", "CMD"}
    assert sum(not e for _, e in lines) == len(result.layers)
    assert shown[-1] == '/bin/sh -c #(nop)  CMD ["sh"]'  # nothing after the last instruction


def test_config_and_layout_pass_independent_tools(
    built: tuple[df.BuildResult, df.BuildConfig], tmp_path: Path
) -> None:
    result, _ = built
    manifest = json.loads(
        (result.layout / "blobs" / "sha256" / result.digest.split(":")[1]).read_bytes()
    )
    config: dict[str, Any] = json.loads(
        (
            result.layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]
        ).read_bytes()
    )
    c = config["config"]
    assert c["User"] == "app" and c["WorkingDir"] == "/app" and c["Cmd"] == ["sh"]
    assert c["ExposedPorts"] == {"8080/tcp": {}} and c["Labels"] == {"purpose": "test"}
    assert "GREETING=hello" in c["Env"] and "BASE_ENV=1" in c["Env"]
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in result.layers]
    inspect = subprocess.run(
        ["skopeo", "inspect", result.reference], capture_output=True, text=True, check=True
    )
    assert json.loads(inspect.stdout)["Digest"] == result.digest
    subprocess.run(
        ["umoci", "unpack", "--image", f"{result.layout}:{result.tag}", str(tmp_path / "b")],
        check=True,
        capture_output=True,
    )
    rootfs = tmp_path / "b" / "rootfs"
    assert not (rootfs / "etc" / "base-file.txt").exists()
    assert sorted(p.name for p in (rootfs / "opt" / "olddir").iterdir()) == ["new.txt"]
    assert (rootfs / "app" / "artifact.txt").read_text() == "built\n"
    assert not (rootfs / "app" / "not-copied.txt").exists() and not (rootfs / "host").exists()


def test_cache_hit_returns_the_same_image(built: tuple[df.BuildResult, df.BuildConfig]) -> None:
    result, cfg = built
    again = df.build_image(cfg)
    assert again.cached and not result.cached
    assert again.digest == result.digest and again.layers == result.layers
    assert again.seconds < 5


def test_export_to_docker_archive_reads_back_with_skopeo(
    built: tuple[df.BuildResult, df.BuildConfig], tmp_path: Path
) -> None:
    result, _ = built
    df.export_image(result, f"docker-archive:{tmp_path / 'img.tar'}:tiny:test")
    out = subprocess.run(
        ["skopeo", "inspect", f"docker-archive:{tmp_path / 'img.tar'}"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(out.stdout)
    assert len(info["Layers"]) == len(result.layers)
    with tarfile.open(tmp_path / "img.tar") as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        assert json.loads(member.read())[0]["RepoTags"] == ["tiny:test"]


def test_failed_run_names_the_step_and_shows_its_output(base_ref: str, tmp_path: Path) -> None:
    failing = "ARG BASE\nFROM ${BASE}\nRUN echo first-line && echo boom-marker >&2 && exit 7\n"
    context = make_context(tmp_path / "ctx", failing)
    cfg = df.BuildConfig(
        context=context, build_args={"BASE": base_ref}, cache_root=tmp_path / "cache"
    )
    with pytest.raises(BuildError) as info:
        df.build_image(cfg)
    message = str(info.value)
    assert (
        "RUN echo first-line" in message and "exit code 7" in message and "boom-marker" in message
    )
    assert not any(p.name.startswith(".work-") for p in (tmp_path / "cache").iterdir())


def test_run_as_user_and_a_trailing_workdir(base_ref: str, tmp_path: Path) -> None:
    text = "ARG BASE\nFROM ${BASE}\nUSER app\nRUN echo $HOME > /tmp/home\nUSER root\nWORKDIR /srv/data\n"
    cfg = df.BuildConfig(context=make_context(tmp_path / "ctx", text), build_args={"BASE": base_ref},
                         cache_root=tmp_path / "cache")
    result = df.build_image(cfg)
    home = layer_members(result, 1)["tmp/home"]
    assert (home.uid, home.gid) == (1000, 1000)
    assert read_member(result, 1, "tmp/home") == b"/home/app\n"
    assert "srv/data" in layer_members(result, 2)  # the last WORKDIR's directory got a layer
    workdirs = [h for h in result.history if h["created_by"] == "/bin/sh -c #(nop) WORKDIR /srv/data"]
    assert workdirs == [result.history[-1]] and not workdirs[0].get("empty_layer")
