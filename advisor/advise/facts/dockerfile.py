"""The Dockerfile behind an image, recovered from the config's ``history[].created_by``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from advisor.oci.model import HistoryEntry

INSTRUCTIONS = (
    "RUN", "COPY", "ADD", "ENV", "WORKDIR", "USER", "CMD", "ENTRYPOINT", "EXPOSE", "LABEL",
    "ARG", "VOLUME", "HEALTHCHECK", "SHELL", "STOPSIGNAL", "ONBUILD", "MAINTAINER",
)


@dataclass(frozen=True, slots=True)
class Step:
    """One history entry as a Dockerfile line; ``layer`` is None for an empty layer."""

    index: int
    instruction: str
    arguments: str
    layer: int | None
    created_by: str

    @property
    def line(self) -> str:
        return f"{self.instruction} {self.arguments}".strip()


def normalize(created_by: str) -> tuple[str, str]:
    """(INSTRUCTION, arguments) of a created_by string from the classic builder or BuildKit."""
    text = created_by.strip()
    text = re.sub(r"\s*# buildkit$", "", text)
    text = re.sub(r"^\|\d+ (?:\S+=\S* )*", "", text)  # classic builder's ARG prefix "|2 A=b C=d"
    shell = re.match(r"^/bin/(?:ba)?sh -c\s+", text)
    if shell:
        text = text[shell.end():]
        nop = re.match(r"^#\(nop\)\s*", text)
        if not nop:
            return "RUN", text
        text = text[nop.end():]
    word, _, rest = text.partition(" ")
    if word.upper() in INSTRUCTIONS:
        rest = rest.strip()
        if word.upper() == "RUN":
            rest = re.sub(r"^/bin/(?:ba)?sh -c\s+", "", rest)
        return word.upper(), rest
    return "RUN", text


def recover_steps(history: Sequence[HistoryEntry], layer_count: int) -> list[Step]:
    """Steps in order; non-empty steps are matched to layers from the top (base history may be short)."""
    non_empty = [i for i, h in enumerate(history) if not h.empty_layer]
    offset = layer_count - len(non_empty)
    layer_of = {hist_i: n + offset for n, hist_i in enumerate(non_empty) if n + offset >= 0}
    steps = []
    for i, h in enumerate(history):
        instruction, args = normalize(h.created_by)
        steps.append(Step(i, instruction, args, layer_of.get(i), h.created_by))
    return steps


def is_pip_install(command: str) -> bool:
    return re.search(r"\bpip[0-9.]*\s+install\b|-m\s+pip\s+install\b|\buv\s+pip\s+install\b", command) is not None


def pip_without_no_cache(command: str, env: Sequence[str]) -> bool:
    if not is_pip_install(command) or "--no-cache-dir" in command:
        return False
    if re.search(r"PIP_NO_CACHE_DIR=(1|true|on|yes)", command, re.IGNORECASE):
        return False
    return not any(e.upper().startswith("PIP_NO_CACHE_DIR=") and e.split("=", 1)[1].lower() in ("1", "true", "on", "yes", "off", "0", "false") for e in env)


def apt_without_cleanup(command: str) -> bool:
    if re.search(r"\bapt(-get)?\s+(-\S+\s+)*install\b", command) is None:
        return False
    return re.search(r"rm\s+-[a-z]*r[a-z]*f?\s+[^;&|]*?/var/lib/apt/lists", command) is None


def copies_context(step: Step) -> bool:
    """``COPY . .`` / ``ADD . /app``: the whole build context goes into the layer."""
    if step.instruction not in ("COPY", "ADD"):
        return False
    args = [a for a in step.arguments.split() if not a.startswith("--")]
    if len(args) >= 2 and args[0] in (".", "./"):
        return True
    return bool(re.match(r"^dir:[0-9a-f]+ in ", step.arguments))  # classic builder's form
