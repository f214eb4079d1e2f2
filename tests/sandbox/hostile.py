"""A hostile image for the sandbox, built on the cached Debian base with advisor's writer.

``/hostile/attacks.py NAME`` tries one escape and prints one line, ``BLOCKED name: why`` or
``ESCAPED name: what``; ``hostile.pth`` runs every attack (but the fork bomb) in any
Python the image starts without ``-S`` and exits, so the benchmark's probe runs them too. Targets on the host (a
loopback listener, a file, a process) are baked into ``/hostile/targets.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from advisor.oci.tarball import FileSpec

ATTACKS = r'''
import ctypes, errno, json, os, signal, socket, stat, subprocess, sys, time

T = json.load(open("/hostile/targets.json"))


def loopback():
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(("127.0.0.1", T["port"]))
        s.sendall(b"escaped uid=%d" % os.getuid())
        return "ESCAPED", "connected to the host's 127.0.0.1:%d" % T["port"]
    except OSError as e:
        return "BLOCKED", repr(e)


def host_file():
    try:
        return "ESCAPED", open(T["file"]).read()
    except OSError as e:
        return "BLOCKED", repr(e)


def mknod_block():
    try:
        os.mknod("/tmp/sda", stat.S_IFBLK | 0o600, os.makedev(8, 0))
        fd = os.open("/tmp/sda", os.O_RDONLY)
        return "ESCAPED", "opened a block device: %r" % os.read(fd, 16)
    except OSError as e:
        return "BLOCKED", repr(e)


def mount():
    libc = ctypes.CDLL(None, use_errno=True)
    for args in ((b"none", b"/tmp", b"tmpfs"), (b"proc", b"/tmp", b"proc"), (b"/", b"/tmp", None)):
        flags = 4096 if args[2] is None else 0  # MS_BIND
        if libc.mount(args[0], args[1], args[2], flags, None) == 0:
            return "ESCAPED", "mounted %r" % (args,)
    err = ctypes.get_errno()
    return "BLOCKED", "mount: %s" % os.strerror(err)


def setuid():
    out = subprocess.run(["/usr/local/bin/suid-id", "-u"], capture_output=True, text=True)
    euid = out.stdout.strip()
    if euid == "0" and os.getuid() != 0:
        return "ESCAPED", "the setuid binary ran as root"
    return "BLOCKED", "setuid binary ran as euid %s (uid %d)" % (euid, os.getuid())


def fork_bomb():
    children = []
    try:
        for _ in range(100000):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
        outcome = ("ESCAPED", "forked %d processes" % len(children))
    except OSError as e:
        outcome = ("BLOCKED", "fork failed after %d: %r" % (len(children), e))
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    for pid in children:
        os.waitpid(pid, 0)
    return outcome


def fill_tmp():
    written = 0
    chunk = b"x" * (1 << 20)
    try:
        with open("/tmp/fill", "wb") as f:
            for _ in range(1 << 14):  # 16 GiB
                f.write(chunk)
                f.flush()
                written += len(chunk)
        return "ESCAPED", "wrote %d bytes to /tmp" % written
    except OSError as e:
        return "BLOCKED", "/tmp full after %d bytes: %r" % (written, e)
    finally:
        if os.path.exists("/tmp/fill"):
            os.unlink("/tmp/fill")


def kill_host():
    try:
        os.kill(T["pid"], signal.SIGKILL)
        return "ESCAPED", "signalled pid %d" % T["pid"]
    except OSError as e:
        return "BLOCKED", repr(e)


def write_outside():
    escaped = []
    for path in ("/etc/passwd", "/hostile/new", "/usr/bin/new", "/root/new", "/var/new"):
        try:
            with open(path, "a") as f:
                f.write("owned\n")
            escaped.append(path)
        except OSError as e:
            last = e
    if escaped:
        return "ESCAPED", "wrote %s" % escaped
    return "BLOCKED", repr(last)


ALL = {f.__name__: f for f in (loopback, host_file, mknod_block, mount, setuid, fork_bomb,
                               fill_tmp, kill_host, write_outside)}


def report(names, stream):
    for name in names:
        verdict, why = ALL[name]()
        print("%s %s: %s" % (verdict, name, why), file=stream, flush=True)


if __name__ == "__main__":
    report(sys.argv[1:] or list(ALL), sys.stdout)
'''

SITECUSTOMIZE = b'''
import sys
sys.path.insert(0, "/hostile")
import attacks
names = [n for n in attacks.ALL if n != "fork_bomb"]
attacks.report(names, sys.stderr)
print("hostile: done " + ",".join(names), file=sys.stderr, flush=True)
import os
os._exit(0)  # the probe dies here: bench shows these lines as its last output
'''

SITE = "usr/local/lib/python3.11/dist-packages"


def build_hostile(dest: str, base_ref: str, targets: dict[str, object], user: str = "0:0") -> str:
    """Write the hostile image to ``dest`` (an ``oci:`` reference) and return it."""
    from advisor.oci.loader import open_image
    from advisor.oci.writer import write_image

    layer: dict[str, bytes | FileSpec] = {
        "hostile/attacks.py": ATTACKS.encode(),
        "hostile/targets.json": json.dumps(targets).encode(),
        # Debian's own sitecustomize shadows one in dist-packages; a .pth line runs anyway.
        f"{SITE}/hostile_site.py": SITECUSTOMIZE,
        f"{SITE}/hostile.pth": b"import hostile_site\n",
        # A setuid-root copy of id(1): with noNewPrivileges it must not raise the euid.
        "usr/local/bin/suid-id": FileSpec(source=Path("/usr/bin/id"), mode=0o4755, uid=0, gid=0),
    }
    with open_image(base_ref) as base:
        config = {"config": {"User": user, "Env": list(base.config.env), "WorkingDir": "/hostile",
                             "Cmd": ["python3", "-S", "/hostile/attacks.py"]}}  # fmt: skip
        write_image(dest, [layer], config, base=base)
    return dest
