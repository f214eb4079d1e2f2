"""The rewritten Dockerfile, from what the image really has.

- A Python application: multi-stage, the venv built in a build stage, the slim variant of
  the image's own base family, CPU-only torch from ``TORCH_INDEX`` when the image ships CUDA
  torch, no pip/apt caches, a non-root user.
- No Python, but OS packages the user's layers installed: one stage on the image's own base,
  the same packages installed with their lists removed in the same RUN.
- Neither (dive's busybox test image): nothing to rewrite, no Dockerfile.

The bases and the torch version and index are ``ARG``s with the right defaults, so the file
builds unchanged, and CI (or a user with a mirror) points it at local bases and wheels with
``--build-arg``. The header lists only the fixes this rewrite applied.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from advisor.advise.advice import Advice
from advisor.advise.fixes.requirements import Requirements
from advisor.advise.rules.base import human

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
APP_UID = 10001
DEBIAN_CODENAMES = {"10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie"}
CONTEXT_RULES = ("vcs-git-dir", "app-notebooks", "dockerfile-copy-context")


def _rules(advice: Advice) -> set[str]:
    return {f.rule for f in advice.findings}


def slim_base(advice: Advice) -> str:
    """The slim python image of the image's own OS family and Python version."""
    major_minor = ".".join((advice.python_version or "3.11").split(".")[:2])
    os_id, version = advice.os.get("id", ""), advice.os.get("version_id", "")
    if os_id == "alpine" and version:
        return f"python:{major_minor}-alpine{'.'.join(version.split('.')[:2])}"
    codename = DEBIAN_CODENAMES.get(version.split(".")[0], "bookworm") if os_id in ("debian", "") else ""
    return f"python:{major_minor}-slim-{codename}" if codename else f"python:{major_minor}-slim"


def own_base(advice: Advice) -> str:
    """The image's own base family, as its os-release names it."""
    os_id, version = advice.os.get("id", ""), advice.os.get("version_id", "")
    if os_id == "debian":
        return f"debian:{DEBIAN_CODENAMES.get(version.split('.')[0], version)}-slim"
    return f"{os_id}:{version}" if os_id and version else ""


def _command(advice: Advice, default: str) -> list[str]:
    f = advice.facts
    lines = []
    if f.entrypoint:
        lines.append(f"ENTRYPOINT {json.dumps(list(f.entrypoint))}")
    if f.cmd:
        lines.append(f"CMD {json.dumps(list(f.cmd))}")
    return lines or [default]


def _expose(ports: Sequence[str]) -> list[str]:
    return [f"EXPOSE {p}" for p in ports]


def _install(reqs: Requirements) -> str:
    steps = ["python -m venv /opt/venv"]
    if reqs.torch_version:
        steps.append('/opt/venv/bin/pip install --no-cache-dir --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"')
    steps.append("/opt/venv/bin/pip install --no-cache-dir -r requirements.txt")
    steps.append(r"find /opt/venv -depth -type d \( -name __pycache__ -o -name tests \) -path '*site-packages*' -exec rm -rf {} +")
    return "RUN " + " \\\n && ".join(steps)


def _os_install(advice: Advice, packages: Sequence[str]) -> list[str]:
    """The OS packages the user's layers added, installed with cleanup in the same RUN."""
    if not packages:
        return []
    if advice.os.get("id") == "alpine":
        return ["RUN apk add --no-cache " + " ".join(packages)]
    return ["RUN apt-get update \\\n && apt-get install -y --no-install-recommends " + " ".join(packages)
            + " \\\n && rm -rf /var/lib/apt/lists/*"]


def _onnx_note(advice: Advice) -> list[str]:
    for f in advice.findings:
        if f.rule == "ml-onnx-export":
            expected = f.data.get("expected_image_bytes", 0)
            size = human(int(expected)) if isinstance(expected, int) else "?"
            return [f"# Smaller still (~{size}): serve the model with onnxruntime, no torch:",
                    f"#   advisor export {advice.facts.reference or 'IMAGE'} --output oci:slim:latest --quantize int8"]
    return []


def _non_root(advice: Advice) -> bool:
    return advice.facts.user.split(":", 1)[0] in ("", "0", "root")


def _header(advice: Advice, applied: list[str], args: list[str]) -> list[str]:
    lines = [f"# Rewritten by advisor from {advice.facts.reference or 'the analysed image'}. Fixes applied:"]
    lines += [f"#   - {fix}" for fix in applied]
    if args:
        lines.append("# Builds as it is; point it at your own bases or wheel index with --build-arg "
                     + ", ".join(args) + ".")
    return lines


def _python_dockerfile(advice: Advice, reqs: Requirements) -> str:
    rules = _rules(advice)
    base = slim_base(advice)
    applied = ["multi-stage build: the venv is built in its own stage, no compilers ship"]
    if reqs.torch_version and "ml-cuda-torch" in rules:
        applied.append(f"CPU-only torch {reqs.torch_version} from the CPU index, no CUDA libraries")
    if "py-dev-tools" in rules:
        applied.append("dev and test tools left out (requirements-dev.txt)")
    if rules & {"py-pip-cache", "dockerfile-pip-cache"}:
        applied.append("pip without its cache")
    if rules & {"os-apt-lists", "os-apt-archives", "dockerfile-apt-no-cleanup"} and advice.apt_packages:
        applied.append("apt lists and archives removed in the same RUN")
    if "os-full-base" in rules:
        applied.append(f"slim base ({base})")
    if rules & set(CONTEXT_RULES):
        applied.append(".dockerignore: .git, notebooks and data stay out of the context")
    if _non_root(advice):
        applied.append("runs as a non-root user")
    args = ["BUILD_BASE", "BASE"] + (["TORCH_VERSION", "TORCH_INDEX"] if reqs.torch_version else [])
    workdir = advice.facts.working_dir or "/app"
    torch_args = [f"ARG TORCH_VERSION={reqs.torch_version}", f"ARG TORCH_INDEX={CPU_INDEX}"] if reqs.torch_version else []
    user = [f"RUN useradd --create-home --uid {APP_UID} app"] if _non_root(advice) else []
    lines = [
        *_header(advice, applied, args),
        *_onnx_note(advice),
        f"ARG BUILD_BASE={base}",
        f"ARG BASE={base}",
        "FROM ${BUILD_BASE} AS build",
        *torch_args,
        "ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        "WORKDIR /build",
        "COPY requirements.txt .",
        _install(reqs),
        "",
        "FROM ${BASE}",
        'ENV PATH="/opt/venv/bin:$PATH" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1',
        *_os_install(advice, advice.apt_packages),
        *user,
        "COPY --from=build /opt/venv /opt/venv",
        f"WORKDIR {workdir}",
        "COPY --chown=app:app . ." if user else "COPY . .",
        *([f"USER {APP_UID}"] if user else []),
        *_expose(advice.facts.exposed_ports),
        *_command(advice, 'CMD ["python", "-m", "app"]'),
    ]
    return "\n".join(lines) + "\n"


def _os_dockerfile(advice: Advice, base: str) -> str:
    applied = ["OS packages installed with their package lists removed in the same RUN"]
    lines = [
        *_header(advice, applied, ["BASE"]),
        f"ARG BASE={base}",
        "FROM ${BASE}",
        *_os_install(advice, advice.apt_packages),
        f"WORKDIR {advice.facts.working_dir or '/'}",
        *_expose(advice.facts.exposed_ports),
        *_command(advice, 'CMD ["sh"]'),
    ]
    return "\n".join(lines) + "\n"


def render_dockerfile(advice: Advice, reqs: Requirements) -> str | None:
    """The rewritten Dockerfile, or None when the image gives nothing to rewrite."""
    if advice.python_version and (reqs.runtime or reqs.torch_version):
        return _python_dockerfile(advice, reqs)
    rules = _rules(advice)
    base = own_base(advice)
    if advice.apt_packages and base and rules & {"os-apt-lists", "os-apt-archives", "dockerfile-apt-no-cleanup"}:
        return _os_dockerfile(advice, base)
    return None
