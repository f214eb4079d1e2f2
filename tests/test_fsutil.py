"""Outputs never replace what is not advisor's: devices, FIFOs and symlinks survive a write."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from advisor.fsutil import open_output, write_text_atomic


def _fake_null(tmp_path: Path) -> Path:
    """A real character device with /dev/null's numbers, made where it cannot hurt."""
    dev = tmp_path / "fakenull"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root (CAP_MKNOD)")
    return dev


def test_device_is_written_in_place_not_replaced(tmp_path: Path) -> None:
    dev = _fake_null(tmp_path)
    write_text_atomic(dev, "a report\n" * 1000)
    assert stat.S_ISCHR(dev.lstat().st_mode)
    assert os.major(dev.stat().st_rdev) == 1 and os.minor(dev.stat().st_rdev) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fakenull"]  # no temp left beside it


def test_fifo_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_text_atomic(fifo, "through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_text_atomic(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"


def test_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "made.txt")
    write_text_atomic(link, "x")
    assert link.is_symlink() and (tmp_path / "made.txt").read_text() == "x"


def test_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), open_output(path) as f:
        f.write(b"half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt"]


def test_regular_file_is_replaced_whole_and_readable(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.txt"
    write_text_atomic(path, "new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_docker_archive_to_a_device_keeps_the_device(tmp_path: Path) -> None:
    from advisor.oci.writer import write_image

    dev = _fake_null(tmp_path)
    write_image(f"docker-archive:{dev}", [{"a.txt": b"hello"}],
                {})
    assert stat.S_ISCHR(dev.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fakenull"]
