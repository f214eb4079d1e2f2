"""Process plumbing on real child processes: failures carry the child's last output."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from advisor.bench import client
from advisor.bench.measure import _server
from advisor.errors import BenchError, SandboxError
from advisor.sandbox.environment import ProbeProcess, Sandbox, ServerProcess
from advisor.sandbox.runner import free_port

PY = sys.executable


def test_a_server_that_dies_is_a_build_error_with_its_output() -> None:
    code = "import sys; print('model.onnx is missing', file=sys.stderr); sys.exit(3)"
    box = Sandbox("slim", python=PY, command=(PY, "-c", code))
    with pytest.raises(SandboxError) as info, _server(box, timeout_s=30):
        pass
    assert info.value.exit_code == 6
    assert "did not start" in info.value.message
    assert "model.onnx is missing" in info.value.hint


def test_an_image_without_a_command_cannot_serve() -> None:
    with pytest.raises(SandboxError, match="no entrypoint"):
        ServerProcess(Sandbox("slim", python=PY), free_port())


_BIG_CHILD = "x = bytearray(60_000_000); import time; time.sleep(60)"


@pytest.mark.parametrize("parent", [
    # a parent that forks the real work, as `unshare --fork` does
    f"import subprocess, sys; subprocess.run([sys.executable, '-c', {_BIG_CHILD!r}])",
    # runc (Go) forks the container's init from whichever OS thread runs that goroutine:
    # /proc/PID/task/PID/children lists only the main thread's children
    "import subprocess, sys, threading; "
    f"t = threading.Thread(target=subprocess.run, args=([sys.executable, '-c', {_BIG_CHILD!r}],)); "
    "t.start(); t.join()",
], ids=["forked-by-main-thread", "forked-by-another-thread"])
def test_server_peak_rss_is_read_from_its_process_tree(parent: str) -> None:
    server = ServerProcess(Sandbox("slim", python=PY, command=(PY, "-c", parent)), free_port())
    try:
        deadline = time.monotonic() + 20
        while server.peak_rss_bytes() < 60_000_000 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.peak_rss_bytes() >= 60_000_000
    finally:
        server.stop()
    assert not server.alive()


def test_a_silent_probe_times_out(tmp_path: Path) -> None:
    script = tmp_path / "sleepy.py"
    script.write_text("import time; time.sleep(60)")
    probe = ProbeProcess(Sandbox("original", python=PY), str(script), "unused", {})
    try:
        with pytest.raises(SandboxError, match="did not answer model loading within 1 s"):
            probe.wait_ready(1.0)
    finally:
        probe.close()
    assert probe.proc.poll() is not None


def test_rootfs_commands_enter_the_image_as_its_user(tmp_path: Path) -> None:
    box = Sandbox("slim", rootfs=tmp_path, workdir="/app", user="1000:1000")
    argv = box.argv(["python3", "-V"])
    assert argv[:2] == ["unshare", "--mount"] and f"--root={tmp_path}" in argv
    assert argv[-2:] == ["python3", "-V"] and argv[argv.index("--setuid") + 1] == "1000"
    assert box.host_path("/app/model") == tmp_path / "app/model"
    assert "--setuid" not in Sandbox("x", rootfs=tmp_path, user="0:0").argv(["true"])


def test_wait_first_prediction_gives_up_when_the_process_dies() -> None:
    with pytest.raises(BenchError, match="exited"):
        client.wait_first_prediction(f"http://127.0.0.1:{free_port()}", lambda: False, 5)
