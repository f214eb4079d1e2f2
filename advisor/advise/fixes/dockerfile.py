"""A rewritten multi-stage Dockerfile: slim base, CPU-only torch, no caches, non-root user."""

from __future__ import annotations

import json
from collections.abc import Sequence

from advisor.advise.advice import Advice
from advisor.advise.fixes.requirements import Requirements
from advisor.advise.rules.base import human

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
APP_UID = 10001


def slim_base(python_version: str) -> str:
    major_minor = ".".join((python_version or "3.11").split(".")[:2])
    return f"python:{major_minor}-slim-bookworm"


def _command(advice: Advice) -> list[str]:
    f = advice.facts
    lines = []
    if f.entrypoint:
        lines.append(f"ENTRYPOINT {json.dumps(list(f.entrypoint))}")
    if f.cmd:
        lines.append(f"CMD {json.dumps(list(f.cmd))}")
    return lines or ['CMD ["python", "-m", "app"]']


def _expose(ports: Sequence[str]) -> list[str]:
    return [f"EXPOSE {p}" for p in ports]


def _install(reqs: Requirements) -> str:
    steps = ["python -m venv /opt/venv"]
    if reqs.torch_version:
        steps.append(f"/opt/venv/bin/pip install --no-cache-dir --index-url {CPU_INDEX} torch=={reqs.torch_version}")
    steps.append("/opt/venv/bin/pip install --no-cache-dir -r requirements.txt")
    steps.append(r"find /opt/venv -depth -type d \( -name __pycache__ -o -name tests \) -path '*site-packages*' -exec rm -rf {} +")
    return "RUN " + " \\\n && ".join(steps)


def _apt(packages: Sequence[str]) -> list[str]:
    """The OS packages the user's layers added, installed with cleanup in the same RUN."""
    if not packages:
        return []
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


def render_dockerfile(advice: Advice, reqs: Requirements) -> str:
    base = slim_base(advice.python_version)
    workdir = advice.facts.working_dir or "/app"
    lines = [
        f"# Rewritten by advisor from {advice.facts.reference or 'the analysed image'}:",
        "# multi-stage build, slim base, CPU-only torch, no pip/apt caches, non-root user.",
        *_onnx_note(advice),
        f"FROM {base} AS build",
        "ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        "WORKDIR /build",
        "COPY requirements.txt .",
        _install(reqs),
        "",
        f"FROM {base}",
        'ENV PATH="/opt/venv/bin:$PATH" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1',
        *_apt(advice.apt_packages),
        f"RUN useradd --create-home --uid {APP_UID} app",
        "COPY --from=build /opt/venv /opt/venv",
        f"WORKDIR {workdir}",
        "COPY --chown=app:app . .",
        f"USER {APP_UID}",
        *_expose(advice.facts.exposed_ports),
        *_command(advice),
    ]
    return "\n".join(lines) + "\n"
