"""buildah as the case study uses it: no daemon, a store under ``$ADVISOR_CACHE``, ``bud --layers``.

Debian's ``buildah`` (1.28) builds Dockerfiles daemonlessly with ``--isolation chroot``; its
own layer cache (``--layers``) answers a rebuild whose inputs did not change, and ``push``
writes OCI layouts and docker-archives. Everything lives in one store
(``$ADVISOR_CACHE/casestudy/buildah``) so the cache survives between runs; nothing here
touches the machine's default ``/var/lib/containers``.

Known quirk worked around: ``FROM oci:/path`` (and ``buildah pull oci:/path``) derive an image
name from the path and reject one holding a dot-directory such as ``.cache``. A layout is
pulled by its relative name from its parent directory and tagged with a name of ours;
Dockerfiles then ``FROM`` that name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.errors import BuildError, MissingDependencyError


def cache_root() -> Path:
    """``$ADVISOR_CACHE/casestudy`` (default ``~/.cache/advisor/casestudy``)."""
    base = os.environ.get("ADVISOR_CACHE") or str(Path.home() / ".cache" / "advisor")
    return Path(base) / "casestudy"


@dataclass(frozen=True)
class Store:
    """One buildah store (images, layers, the build cache) in a directory of its own."""

    root: Path = field(default_factory=lambda: cache_root() / "buildah")

    def argv(self) -> list[str]:
        exe = shutil.which("buildah")
        if exe is None:
            raise MissingDependencyError("buildah (apt-get install buildah)", "dev")
        return [exe, "--root", str(self.root / "storage"), "--runroot", str(self.root / "run"),
                "--storage-driver", "overlay"]  # fmt: skip


@dataclass(frozen=True)
class Layer:
    created_by: str
    size_bytes: int  # the uncompressed layer tar
    diff_id: str


@dataclass(frozen=True)
class Built:
    tag: str
    image_id: str  # the config digest, hex
    layers: tuple[Layer, ...]
    cached: bool  # every step answered by buildah's layer cache
    seconds: float

    @property
    def size_bytes(self) -> int:
        return sum(layer.size_bytes for layer in self.layers)


@dataclass(frozen=True)
class BuildConfig:
    context: Path
    tag: str
    dockerfile: Path | None = None  # default: CONTEXT/Dockerfile
    build_args: Mapping[str, str] = field(default_factory=dict)
    volumes: Sequence[str] = ()  # buildah -v specs, HOST:CONTAINER[:OPTIONS], for RUN steps only
    on_output: Callable[[str], None] | None = None


def _run(store: Store, args: Sequence[str], what: str, cwd: Path | None = None) -> str:
    store.root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([*store.argv(), *args], cwd=cwd, capture_output=True, text=True,
                          check=False)  # fmt: skip
    if proc.returncode != 0:
        raise BuildError(f"{what}: {_one_line(proc.stderr)}", hint="buildah's own message, above")
    return proc.stdout


def _one_line(output: str) -> str:
    """buildah's last ``Error:`` line, without the Go struct dumps it sometimes appends."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    text = errors[-1][len("Error:") :].strip() if errors else (lines[-1] if lines else "no output")
    return re.sub(r"\s*&imagebuilder\.Step\{.*$", "", text)


def import_layout(store: Store, ref: str, name: str) -> str:
    """Pull ``oci:DIR:TAG`` into the store as ``localhost/NAME``; returns that name."""
    if not ref.startswith("oci:"):
        raise BuildError(f"not an OCI layout reference: {ref}", hint="use oci:DIR:TAG")
    path, _, tag = ref[len("oci:") :].rpartition(":")
    layout = Path(path).resolve()
    image_id = _run(store, ["pull", "--quiet", f"oci:{layout.name}:{tag}"], f"pulling {ref}",
                    cwd=layout.parent).strip().splitlines()[-1]  # fmt: skip
    full = f"localhost/{name}"
    _run(store, ["tag", image_id, full], f"tagging {ref}")
    return full


_STEP = re.compile(r"^STEP (\d+)/(\d+): (.*)$")


def build(store: Store, cfg: BuildConfig) -> Built:
    """``buildah bud --isolation chroot --layers``; a failure raises ``BuildError`` (exit 6)
    with buildah's own error and the failing instruction in one line."""
    dockerfile = cfg.dockerfile or cfg.context / "Dockerfile"
    argv = [*store.argv(), "bud", "--isolation", "chroot", "--layers", "--pull=never",
            "-f", str(dockerfile), "-t", cfg.tag]  # fmt: skip
    for key, value in sorted(cfg.build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    for volume in cfg.volumes:
        argv += ["-v", volume]
    store.root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    steps, cache_hits = 0, 0
    tail: list[str] = []
    with subprocess.Popen([*argv, str(cfg.context)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace") as proc:  # fmt: skip
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            if cfg.on_output:
                cfg.on_output(line)
            tail = [*tail[-40:], line]
            step = _STEP.match(line)
            if step and not step.group(3).upper().startswith("FROM "):
                steps += 1
            elif line.startswith("--> Using cache"):
                cache_hits += 1
        code = proc.wait()
    if code != 0:
        raise BuildError(_failure(tail), hint=f"fix {dockerfile.name}, or run buildah bud on it "
                         "to see the whole log")  # fmt: skip
    image_id = _run(store, ["inspect", "--type", "image", "--format", "{{.FromImageID}}", cfg.tag],
                    "inspecting the build").strip()  # fmt: skip
    return Built(cfg.tag, image_id, image_layers(store, cfg.tag), steps > 0 and cache_hits >= steps,
                 time.monotonic() - started)  # fmt: skip


def _failure(tail: list[str]) -> str:
    """``building at STEP "RUN ...": exit status 2 (last output: ...)`` in one line."""
    message = _one_line("\n".join(tail))
    errors = [i for i, line in enumerate(tail) if line.startswith("Error:")]
    before = [line.strip() for line in tail[: errors[-1] if errors else len(tail)]
              if line.strip() and not line.startswith(("STEP ", "subprocess exited", "time="))]  # fmt: skip
    if "exit status" in message and before:
        message += f" (last output: {before[-1][:300]})"
    return f"buildah: {message}"


def image_layers(store: Store, tag: str) -> tuple[Layer, ...]:
    """Each layer's ``created_by`` (from the history) and uncompressed size (from the store)."""
    info = json.loads(_run(store, ["inspect", "--type", "image", tag], "inspecting the image"))
    config = info["OCIv1"]
    diff_ids = config["rootfs"]["diff_ids"]
    history = [h for h in config.get("history", []) if not h.get("empty_layer")]
    layers_json = store.root / "storage" / "overlay-layers" / "layers.json"
    sizes = {entry.get("diff-digest", ""): int(entry.get("diff-size", 0))
             for entry in json.loads(layers_json.read_text())}  # fmt: skip
    out = []
    for i, diff_id in enumerate(diff_ids):
        created_by = history[i].get("created_by", "") if i < len(history) else ""
        out.append(Layer(created_by, sizes.get(diff_id, 0), diff_id))
    return tuple(out)


# Layers of OCI layouts are gzip level 1: on the quick image (2.3 GB of layer tars, load 7-12)
# buildah push took 107 s with its default gzip, 79 s at level 1 (8.6 % bigger), 56 s with
# zstd -1, but bench unpacks the original with umoci 0.4, which refuses zstd layers.
# benchmarks/casestudy/README.md, "Pushing", has the numbers.
OCI_COMPRESSION = ("--compression-format", "gzip", "--compression-level", "1")


def push(store: Store, tag: str, dest: str) -> dict[str, Any]:
    """Write the image to ``oci:DIR:TAG`` (``OCI_COMPRESSION``) or ``docker-archive:FILE[:REF]``
    (uncompressed tars, as the format has them), whole or not at all.

    An OCI layout already holding this image (same config digest) is kept as it is: pushing
    the case study's 10 GB again would cost minutes for nothing. Returns the manifest.
    """
    image_id = _run(store, ["inspect", "--type", "image", "--format", "{{.FromImageID}}", tag],
                    f"inspecting {tag}").strip()  # fmt: skip
    transport, _, rest = dest.partition(":")
    if transport == "oci":
        path_text, _, ref = rest.rpartition(":") if ":" in rest else (rest, "", "latest")
        path = Path(path_text)
        manifest = read_manifest(path)
        if manifest and manifest["config"]["digest"] == f"sha256:{image_id}" and _gzip_layers(manifest):
            return manifest  # (a zstd layout, pushed before OCI_COMPRESSION was gzip, is redone)
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        _run(store, ["push", "--quiet", *OCI_COMPRESSION, tag, f"oci:{tmp}:{ref}"],
             f"pushing {tag} to {dest}")
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
        return read_manifest(path) or {}
    if transport == "docker-archive":
        file_text, _, ref = rest.partition(":")
        path = Path(file_text)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        target = f"docker-archive:{tmp}" + (f":{ref}" if ref else "")
        _run(store, ["push", "--quiet", tag, target], f"pushing {tag} to {dest}")
        os.replace(tmp, path)
        return {}
    raise BuildError(f"unsupported destination {dest}", hint="use oci:DIR:TAG or docker-archive:FILE")


def _gzip_layers(manifest: dict[str, Any]) -> bool:
    return all(str(layer.get("mediaType", "")).endswith("+gzip") for layer in manifest.get("layers", []))


def read_manifest(layout: Path) -> dict[str, Any] | None:
    """The first manifest of an OCI layout, or None when there is none."""
    try:
        index = json.loads((layout / "index.json").read_text())
        digest = index["manifests"][0]["digest"].split(":", 1)[1]
        manifest: dict[str, Any] = json.loads((layout / "blobs" / "sha256" / digest).read_text())
    except (OSError, KeyError, IndexError, ValueError):
        return None
    return manifest


def remove_image(store: Store, tag: str) -> None:
    """Untag and delete an image (its layers go when no other image uses them)."""
    subprocess.run([*store.argv(), "rmi", "-f", tag], capture_output=True, check=False)


def image_ids(store: Store) -> set[str]:
    """Every image in the store, intermediate ones (``--layers`` cache entries) included."""
    return set(_run(store, ["images", "-a", "-q", "--no-trunc"], "listing images").split())


def remove_images(store: Store, ids: set[str]) -> None:
    """Delete these images (e.g. a variant's, with its cache entries); shared layers stay."""
    if ids:
        bare = sorted(i.removeprefix("sha256:") for i in ids)
        subprocess.run([*store.argv(), "rmi", "-f", *bare], capture_output=True, check=False)
