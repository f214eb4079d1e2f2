"""Hand-made hostile tars and OCI layouts: every byte under the test's control.

Python's ``tarfile`` refuses to write most of what an attacker would (lying sizes, negative
base-256 numbers, names with ``..``), so headers are packed here field by field.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\0"


def header(
    name: bytes | str,
    size: int = 0,
    typeflag: bytes = b"0",
    linkname: bytes | str = b"",
    mode: int = 0o644,
    size_field: bytes | None = None,
    prefix: bytes = b"",
    checksum: bytes | None = None,
) -> bytes:
    """One 512-byte ustar header; ``size_field`` overrides the 12-byte size as given (lies)."""
    nb = name.encode("utf-8", "surrogateescape") if isinstance(name, str) else name
    lb = linkname.encode() if isinstance(linkname, str) else linkname
    block = bytearray(512)
    block[0 : len(nb[:100])] = nb[:100]
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(0, 8)
    block[116:124] = _octal(0, 8)
    block[124:136] = size_field if size_field is not None else _octal(size, 12)
    block[136:148] = _octal(0, 12)
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[157 : 157 + len(lb[:100])] = lb[:100]
    block[257:263] = b"ustar\0"
    block[263:265] = b"00"
    block[345 : 345 + len(prefix[:155])] = prefix[:155]
    chk = checksum if checksum is not None else f"{sum(block):06o}".encode() + b"\0 "
    block[148:156] = chk
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def member(name: bytes | str, data: bytes = b"", typeflag: bytes = b"0",
           linkname: bytes | str = b"", **kw: Any) -> bytes:
    return header(name, len(data), typeflag, linkname, **kw) + pad(data)


def pax_member(records: dict[str, str | bytes]) -> bytes:
    body = b""
    for key, value in records.items():
        v = value.encode() if isinstance(value, str) else value
        rec = b" " + key.encode() + b"=" + v + b"\n"
        n = len(rec) + 1
        while len(str(n).encode()) + len(rec) != n:
            n = len(str(n).encode()) + len(rec)
        body += str(n).encode() + rec
    return member("PaxHeaders/x", body, typeflag=b"x")


END = bytes(1024)


def tar(*members: bytes, end: bool = True) -> bytes:
    return b"".join(members) + (END if end else b"")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


class IterStream:
    """A non-seekable stream over generated chunks: huge tars that never sit in memory."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it: Iterator[bytes] = iter(chunks)
        self._buf = memoryview(b"")

    def read(self, n: int = -1) -> bytes:
        if n >= 0 and len(self._buf) >= n:
            out, self._buf = bytes(self._buf[:n]), self._buf[n:]
            return out
        parts, have = [bytes(self._buf)], len(self._buf)
        while n < 0 or have < n:
            chunk = next(self._it, None)
            if chunk is None:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        cut = len(data) if n < 0 else n
        self._buf = memoryview(data)[cut:]
        return data[:cut]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        return None


def many_files_tar(count: int, batch: int = 2000) -> Iterator[bytes]:
    """``count`` empty files in 1,000 directories, generated in batches."""
    for start in range(0, count, batch):
        yield b"".join(
            header(f"d{i % 1000:03d}/f{i:07d}") for i in range(start, min(count, start + batch))
        )
    yield END


# -- OCI layouts with any manifest, any lie ---------------------------------------------------


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put_blob(root: Path, data: bytes) -> dict[str, Any]:
    digest = _digest(data)
    path = root / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def config_for(layers_uncompressed: list[bytes], **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [_digest(t) for t in layers_uncompressed]},
        "config": {},
    }
    cfg.update(extra)
    return cfg


@dataclass
class Layout:
    root: Path
    ref: str
    manifest: dict[str, Any]


def write_layout(
    root: Path,
    layers: list[bytes],
    config: dict[str, Any] | bytes | None = None,
    media_type: str = LAYER_GZIP,
    compress: bool = True,
    manifest: dict[str, Any] | bytes | None = None,
) -> Layout:
    """An OCI layout holding ``layers`` (tars, gzipped when ``compress``) tagged ``latest``."""
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    blobs = [gz(t) if compress else t for t in layers]
    cfg = config if config is not None else config_for(layers)
    cfg_bytes = cfg if isinstance(cfg, bytes) else json.dumps(cfg).encode()
    cfg_desc = {"mediaType": OCI_CONFIG, **put_blob(root, cfg_bytes)}
    man: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg_desc,
        "layers": [{"mediaType": media_type, **put_blob(root, b)} for b in blobs],
    }
    body = manifest if isinstance(manifest, bytes) else json.dumps(manifest or man).encode()
    set_root(root, {"mediaType": OCI_MANIFEST, **put_blob(root, body)})
    return Layout(root, f"oci:{root}:latest", man)


def set_root(root: Path, descriptor: dict[str, Any]) -> None:
    entry = {**descriptor, "annotations": {"org.opencontainers.image.ref.name": "latest"}}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))


# -- running hostile work in a child process: hangs and memory are measured, not suffered ----


@dataclass
class Child:
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any]


def run_child(code: str, timeout: float = 60, env: dict[str, str] | None = None) -> Child:
    """Run ``code`` (which sets ``result``) in a fresh interpreter; report peak RSS too.

    The child prints one JSON line: ``result`` plus ``maxrss_mb`` (its own peak) and, when it
    raised, the exception's type and message.
    """
    wrapper = (
        "import json, resource, sys, traceback\n"
        "result = {}\n"
        "try:\n" + "".join(f"    {line}\n" for line in code.strip().splitlines()) +
        "except BaseException as e:\n"
        "    result['error_type'] = type(e).__name__\n"
        "    result['error_mro'] = [c.__name__ for c in type(e).__mro__]\n"
        "    result['error'] = str(e)[:500]\n"
        "    result['traceback'] = traceback.format_exc()[-3000:]\n"
        # VmHWM is this interpreter's own peak: ru_maxrss would inherit the forking parent's
        # (Linux folds the pre-exec mm's high-water mark into it; pytest may hold 1.5 GB).
        "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')]\n"
        "result['maxrss_mb'] = int(hwm[0].split()[1]) / 1024 if hwm else "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print('RESULT ' + json.dumps(result, default=str))\n"
    )
    proc = subprocess.run(
        [PY, "-c", wrapper], cwd=REPO, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    result = json.loads(line[7:]) if line else {}
    return Child(proc.returncode, proc.stdout, proc.stderr, result)
