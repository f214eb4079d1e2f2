"""The hostile-image corpus: every escape fails inside the sandbox, and the host is unchanged.

Each attack runs as the image's root (and the setuid one as ``nobody``) under runc with small
limits; the host keeps a loopback listener, a file and a process the image knows about, and
the unpacked root filesystem is compared file by file before and after. A benchmark of the
hostile image ends with exit 6 and the attacks' own report as its hint.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from advisor.sandbox import Bundle, Policy, run, unpack
from advisor.slim.image import BuildResult
from tests.sandbox.hostile import build_hostile
from tests.slim.fixtures import NEEDS_ROOT_TOOLS

pytestmark = [pytest.mark.slow, NEEDS_ROOT_TOOLS]  # root, runc, skopeo, umoci

SMALL = Policy(pids=64, tmp_bytes=8 << 20, memory_bytes=512 << 20)
AS_ROOT = ("loopback", "host_file", "mknod_block", "mount", "fork_bomb", "fill_tmp", "kill_host",
           "write_outside")  # fmt: skip


@dataclass
class Host:
    """What the image aims at on the host, and a check that none of it was touched."""

    listener: socket.socket
    secret: Path
    sleeper: subprocess.Popen[bytes]

    @property
    def targets(self) -> dict[str, object]:
        return {"port": self.listener.getsockname()[1], "file": str(self.secret),
                "pid": self.sleeper.pid}  # fmt: skip

    def assert_unchanged(self) -> None:
        with pytest.raises(BlockingIOError):
            self.listener.accept()  # nobody connected to the host's loopback
        assert self.secret.read_text() == "host secret\n"
        assert self.sleeper.poll() is None, "the host process was killed"
        assert not Path("/tmp/sda").exists() and not Path("/tmp/fill").exists()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    secret = tmp_path_factory.mktemp("host") / "secret"
    secret.write_text("host secret\n")
    sleeper = subprocess.Popen(["sleep", "3600"])
    yield Host(listener, secret, sleeper)
    sleeper.kill()
    sleeper.wait()
    listener.close()


def _image(host: Host, debian_base: str, tmp: Path, user: str) -> str:
    return build_hostile(f"oci:{tmp / 'hostile'}:{user.replace(':', '-')}", debian_base,
                         host.targets, user)  # fmt: skip


@pytest.fixture(scope="module")
def images(host: Host, debian_base: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("hostile")
    return {"root": _image(host, debian_base, tmp, "0:0"), "nobody": _image(host, debian_base, tmp, "65534:65534")}


@pytest.fixture(scope="module")
def bundles(images: dict[str, str]) -> Iterator[dict[str, Bundle]]:
    made = {who: unpack(ref) for who, ref in images.items()}
    yield made
    for b in made.values():
        b.remove()


def _snapshot(root: Path) -> dict[str, str]:
    """Every path of the tree with its type, mode, size and (for small files) content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            digest = ""
            if p.is_file() and not p.is_symlink() and st.st_size < 1 << 16:
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p.relative_to(root))] = f"{st.st_mode:o} {st.st_size} {digest}"
    return out


@pytest.mark.parametrize(
    ("attack", "who"), [*((a, "root") for a in AS_ROOT), ("setuid", "nobody"),
                        ("write_outside", "nobody"), ("kill_host", "nobody")],
)  # fmt: skip
def test_each_attack_fails_inside(attack: str, who: str, bundles: dict[str, Bundle], host: Host) -> None:
    bundle = bundles[who]
    before = _snapshot(bundle.rootfs)
    done = run(bundle, ["python3", "-S", "/hostile/attacks.py", attack], policy=SMALL, timeout_s=120)
    assert done.stdout.startswith(f"BLOCKED {attack}:"), done.stdout + done.stderr
    assert not done.timed_out and done.returncode == 0
    host.assert_unchanged()
    assert _snapshot(bundle.rootfs) == before


def test_limits_held_and_were_reported(bundles: dict[str, Bundle]) -> None:
    done = run(bundles["root"], ["python3", "-S", "/hostile/attacks.py", "fork_bomb", "fill_tmp"],
               policy=SMALL, timeout_s=120)  # fmt: skip
    forks = int(done.stdout.split("fork failed after ")[1].split(":")[0])
    assert forks < 64  # the pids limit, not the host's
    written = int(done.stdout.split("/tmp full after ")[1].split(" ")[0])
    assert written <= 8 << 20
    assert done.limits in ("cgroup (memory 512 MiB, pids 64)", "rlimit (RLIMIT_AS 2048 MiB, RLIMIT_NPROC 64)")


def test_bench_of_a_hostile_image_ends_with_exit_6(
    images: dict[str, str], built: BuildResult, host: Host, tmp_path: Path
) -> None:
    from advisor.bench.model import BenchConfig
    from advisor.bench.run import run_bench
    from advisor.errors import BenchError

    data = tmp_path / "data.csv"
    data.write_text("text,label\na fine film,1\na dull film,0\n")
    config = BenchConfig(original=images["root"], slim=built.destination, data=data,
                         original_model_path="/hostile", startup_timeout_s=120.0, rounds=1,
                         iterations=1, workdir=tmp_path)  # fmt: skip
    with pytest.raises(BenchError) as info:
        run_bench(config)
    assert info.value.exit_code == 6 and "cannot run its model /hostile" in info.value.message
    hint = info.value.hint
    assert "hostile: done" in hint and "ESCAPED" not in hint, hint
    for attack in ("loopback", "host_file", "mknod_block", "mount", "setuid", "kill_host",
                   "write_outside", "fill_tmp"):  # fmt: skip
        assert f"BLOCKED {attack}:" in hint
    host.assert_unchanged()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


def test_the_corpus_sees_an_escape_when_there_is_one(bundles: dict[str, Bundle], host: Host) -> None:
    """The control: the same loopback attack, run unsandboxed (unshare, the host's network),
    reaches the host's listener; so a BLOCKED above is the sandbox's doing."""
    from advisor.sandbox.environment import Sandbox

    box = Sandbox("control", rootfs=bundles["root"].rootfs, workdir="/hostile")
    argv = box.argv(["python3", "-S", "/hostile/attacks.py", "loopback"])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert out.stdout.startswith("ESCAPED loopback:"), out.stdout + out.stderr
    conn, _ = host.listener.accept()  # it really arrived; take it so the others see none
    conn.close()
