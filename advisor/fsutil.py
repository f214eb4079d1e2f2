"""Writing outputs without ever replacing what is not advisor's to replace.

An output path is one of three things, and each is written its own way:

- a path that does not exist, or a regular file: written to a temp file beside it and
  renamed over it, so readers see the old bytes or the whole new ones, never half;
- a symlink: followed, and its target written as above (the link itself stays);
- a device, FIFO or socket (``/dev/null``, ``/dev/stdout``, a named pipe): written in place.
  Renaming over one would replace the machine's ``/dev/null`` with a regular file when run
  as root, so it is opened and written like any program writing to it would.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def is_special(path: Path) -> bool:
    """True when ``path`` (links followed) is a device, FIFO or socket: written in place."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def replace_target(path: Path) -> Path:
    """The file a rename must land on for ``path``: its symlinks' final target, or itself."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


@contextmanager
def open_output(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Open ``path`` for writing as the module docstring says; the write lands on a clean exit.

    On an exception nothing is left: the temp file is removed and the old file is untouched.
    """
    if is_special(path):
        # Opened through the given name: /dev/stdout must resolve to this process's fd 1.
        with open(path, "wb") as f:
            yield f
        return
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    target = replace_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # a report, not a secret: mkstemp's 0600 would hide it from others
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` as :func:`open_output` does."""
    with open_output(path, mode) as f:
        f.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` as :func:`open_output` does. A file name that is not
    UTF-8 reaches reports as surrogate escapes (tar.py decodes with ``surrogateescape``); it is
    written as a visible ``\\udcXX`` escape, so the file stays valid UTF-8 (and valid JSON)."""
    write_bytes_atomic(path, text.encode("utf-8", "backslashreplace"))


def staging_dir_for(path: Path) -> Path:
    """Where to stage a large output bound for ``path``: beside its final target (so the
    rename is atomic), or the temp dir when ``path`` is a device or pipe written in place."""
    if is_special(path):
        return Path(tempfile.gettempdir())
    return replace_target(path).parent
