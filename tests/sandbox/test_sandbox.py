"""Real runs under runc on the cached Debian base: what the sandboxed process sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from advisor.errors import BuildError, SandboxError
from advisor.sandbox import Bind, Bundle, Policy, run, serve, unpack
from tests.slim.fixtures import NEEDS_ROOT_TOOLS

pytestmark = [pytest.mark.slow, NEEDS_ROOT_TOOLS]  # root, runc, skopeo, umoci

STATUS = "grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"


@pytest.fixture(scope="module")
def bundle(debian_base: str) -> Iterator[Bundle]:
    b = unpack(debian_base)
    yield b
    b.remove()
    assert not b.root.exists()


def _fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, v in (ln.split(":", 1) for ln in text.splitlines() if ":" in ln)}


def test_root_image_runs_confined(bundle: Bundle) -> None:
    done = run(bundle, ["sh", "-c", STATUS])
    assert done.returncode == 0, done.stderr
    f = _fields(done.stdout)
    assert f["Uid"].split() == ["0"] * 4  # root inside; the host sees the mapped id
    assert int(f["CapEff"], 16) == int(f["CapBnd"], 16) == 0xA00405FB  # Docker's 14 minus 2
    assert f["NoNewPrivs"] == "1" and f["Seccomp"] == "2"
    assert done.limits.startswith(("cgroup", "rlimit"))


def test_only_loopback_and_a_few_devices(bundle: Bundle) -> None:
    done = run(bundle, ["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1; echo --; ls /dev"])
    nets, devs = done.stdout.split("--\n")
    assert nets.split() == ["lo"]
    nodes = {"full", "null", "random", "tty", "urandom", "zero"}
    assert set(devs.split()) - nodes <= {"fd", "mqueue", "ptmx", "pts", "shm", "stderr", "stdin", "stdout"}


def test_read_only_root_and_a_bounded_tmp(bundle: Bundle) -> None:
    script = "touch /etc/x 2>&1; echo ok > /tmp/t && cat /tmp/t; df -k /tmp | tail -1"
    done = run(bundle, ["sh", "-c", script], policy=Policy(tmp_bytes=8 << 20))
    assert "Read-only file system" in done.stdout and "\nok\n" in done.stdout
    assert done.stdout.strip().splitlines()[-1].split()[1] == "8192"
    assert not (bundle.rootfs / "etc" / "x").exists() and not (bundle.rootfs / "tmp" / "t").exists()


def test_binds_are_read_only_unless_asked(bundle: Bundle, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("hello")
    tmp_path.chmod(0o755)
    policy = Policy(binds=(Bind(tmp_path, "/probe"),))
    done = run(bundle, ["sh", "-c", "cat /probe/in.txt; touch /probe/new 2>&1"], policy=policy)
    assert done.stdout.startswith("hello") and "Read-only" in done.stdout
    assert not (tmp_path / "new").exists()


def test_stdin_stdout_exit_status_and_timeout(bundle: Bundle) -> None:
    done = run(bundle, ["python3", "-c", "import sys; print(sys.stdin.read()[::-1]); sys.exit(3)"],
               input="abc")  # fmt: skip
    assert (done.returncode, done.stdout) == (3, "cba\n")
    slow = run(bundle, ["sleep", "30"], timeout_s=1)
    assert slow.timed_out and slow.seconds < 20


@pytest.mark.parametrize(("argv", "expected"), [
    (["sh", "-c", "echo no model here >&2; exit 3"], "exited with status 3 before it was ready"),
    (["sleep", "30"], "was not ready after 2s"),
])  # fmt: skip
def test_a_server_that_never_serves_is_a_sandbox_error(
    bundle: Bundle, argv: list[str], expected: str
) -> None:
    """Exit 6 as docs/DESIGN.md gives image code that fails in its sandbox: a SandboxError,
    not the BuildError of a failed image build."""
    with pytest.raises(SandboxError) as info, serve(bundle, argv, timeout_s=2):
        pass
    assert expected in info.value.message and not isinstance(info.value, BuildError)
    assert info.value.exit_code == 6 and info.value.hint
    if "status 3" in expected:
        assert "no model here" in info.value.message


def test_without_a_user_namespace_the_confinement_holds(debian_base: str) -> None:
    """Where the kernel has no user namespaces: the image's ids are the host's, the rest holds."""
    b = unpack(debian_base, userns=False)
    try:
        assert b.id_map is None and (b.rootfs / "etc").stat().st_uid == 0
        done = run(b, ["sh", "-c", f"{STATUS}; touch /etc/x 2>&1; cat /proc/self/uid_map"])
        f = _fields(done.stdout)
        assert int(f["CapEff"], 16) == 0xA00405FB and f["NoNewPrivs"] == "1" and f["Seccomp"] == "2"
        assert "Read-only file system" in done.stdout
        assert done.stdout.split()[-3:] == ["0", "0", "4294967295"]  # the host's own ids
    finally:
        b.remove()


def test_an_image_with_zstd_layers_runs(debian_base: str, tmp_path: Path) -> None:
    """Debian's umoci (0.4) refuses zstd layers; the unpack must not pass that on to the user."""
    import json
    import subprocess

    layout = tmp_path / "zstd"
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-compress-format", "zstd", debian_base,
                    f"oci:{layout}:z"], check=True)
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    assert {lay["mediaType"] for lay in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    b = unpack(f"oci:{layout}:z")
    try:
        done = run(b, ["sh", "-c", "cat /etc/debian_version"])
        assert done.returncode == 0 and done.stdout.strip(), done.stderr
    finally:
        b.remove()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory anyone may enter, on a path anyone may enter (pytest's own are 0700)."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="advisor-test-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_a_bundle_under_a_closed_directory_is_refused_before_runc(
    debian_base: str, open_dir: Path
) -> None:
    """A destination under a 0700 directory (``mkdtemp``'s, pytest's) unpacks, but the user
    namespace's root cannot reach it: the run names the directory and how to open it instead
    of runc's bare "exited (status 1)", and writes nothing."""
    closed = open_dir / "closed"
    closed.mkdir(mode=0o700)
    b = unpack(debian_base, closed / "b")
    try:
        if b.id_map is None:
            pytest.skip("no user namespace here: the host's root enters any directory")
        with pytest.raises(SandboxError) as info:
            run(b, ["true"])
        assert f"cannot enter {closed}," in info.value.message
        assert f"chmod o+x {closed}" in info.value.hint and info.value.exit_code == 6
        assert not (b.root / "runs").exists()
        closed.chmod(0o711)
        assert run(b, ["true"]).returncode == 0
    finally:
        b.remove()


def test_closed_directory_reads_the_owner_group_or_other_bits(open_dir: Path) -> None:
    import os

    from advisor.sandbox.bundle import closed_directory

    uid = gid = 123_456
    a = open_dir / "a"
    inner = a / "b"
    inner.mkdir(parents=True)
    assert closed_directory(inner, uid, gid) is None
    a.chmod(0o750)  # root's group: "other" bits apply, and they are closed
    assert closed_directory(inner, uid, gid) == a
    os.chown(a, 0, gid)  # its group now: the group's bits apply
    assert closed_directory(inner, uid, gid) is None
    os.chown(a, uid, 0)
    a.chmod(0o075)  # its owner: the owner's bits apply, not the group's or other's
    assert closed_directory(inner, uid, gid) == a
    a.chmod(0o755)
    inner.chmod(0o700)  # the last directory counts too
    assert closed_directory(inner, uid, gid) == inner
