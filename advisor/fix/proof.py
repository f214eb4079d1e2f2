"""Proof that an image still works: its entrypoint's imports import, its entrypoint starts
and answers on its port, and its model gives the original's labels.

The checks run in a ``Session`` (``advisor.fix.sandbox``: runc, read-only root, ``lo`` only). The original image is proved
first: an entrypoint that cannot run before the fix is the input's fault, not the fix's.
``bisect`` then finds, by recommendation, which removal breaks a fixed image.
"""

from __future__ import annotations

import http.client
import json
import posixpath
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from advisor.errors import AdvisorError
from advisor.fix.model import Check, ProofReport
from advisor.fix.sandbox import Session, Started

_IMPORTS = r"""
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
bad = {}
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except BaseException as e:
        bad[name] = (type(e).__name__ + ": " + str(e))[:300]
print("ADVISOR-IMPORTS " + json.dumps(bad, sort_keys=True))
"""
_MARK = "ADVISOR-IMPORTS "
SETTLE_S = 3.0  # an entrypoint with no port counts as started once it lives this long


@dataclass(frozen=True)
class ProofSpec:
    """What to check: the entry script's static import closure (advise's ``AppCode``), and
    the labelled texts a model found in the image is scored on."""

    entry: str = ""  # the entry script's path in the image ("" when advise found none)
    modules: tuple[str, ...] = ()  # third-party top-level modules it imports
    local_modules: tuple[str, ...] = ()  # its own modules, by dotted name from its folder
    texts: tuple[str, ...] = ()  # scored when the image serves a model ("" none found)
    timeout_s: float = 120.0


def local_module_names(entry: str, files: Sequence[str]) -> tuple[str, ...]:
    """The dotted names of the entry script's local modules (the entry itself left out: it
    is the server, which the entrypoint check starts)."""
    root = posixpath.dirname(entry)
    names = []
    for f in files:
        if f == entry or not f.startswith(root + "/" if root else ""):
            continue
        rel = f[len(root) + 1:] if root else f
        rel = rel[: -len("/__init__.py")] if rel.endswith("/__init__.py") else rel.removesuffix(".py")
        names.append(rel.replace("/", "."))
    return tuple(sorted(set(names)))


def check_imports(session: Session, spec: ProofSpec) -> Check:
    names = [*spec.modules, *spec.local_modules]
    if not names:
        return Check("imports", True, "the entrypoint names no modules advise could read")
    if not session.python:
        return Check("imports", False, "no python3 on the image's PATH")
    root = posixpath.dirname("/" + spec.entry.lstrip("/")) or "/"
    code, out = session.run([session.python, "-c", _IMPORTS, root, *names], spec.timeout_s)
    line = next((ln for ln in out.splitlines() if ln.startswith(_MARK)), None)
    if line is None:
        tail = " | ".join(out.strip().splitlines()[-3:])
        return Check("imports", False, f"the import check did not run (status {code}): {tail}")
    bad = json.loads(line[len(_MARK):])
    if bad:
        first = "; ".join(f"{k}: {v}" for k, v in sorted(bad.items())[:5])
        return Check("imports", False, f"{len(bad)} of {len(names)} modules fail to import: {first}")
    return Check("imports", True, f"{len(names)} modules import")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(started: Started, port: int, method: str, path: str, body: bytes | None = None,
             timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        conn = started.connect(port, timeout)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data
    except (OSError, http.client.HTTPException, AdvisorError):  # not up yet, or exited
        return 0, b""


def _tail(started: Started) -> str:
    return " | ".join(started.logs().strip().splitlines()[-3:])


def _wait_answer(started: Started, ports: Sequence[int], timeout_s: float) -> tuple[int, int]:
    """(port, status) of the first port to answer any HTTP request, or (0, 0)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and started.alive():
        for port in ports:
            status, _ = _request(started, port, "GET", "/", timeout=2)
            if status:
                return port, status
        time.sleep(0.1)
    return 0, 0


def _predict(started: Started, port: int, texts: Sequence[str], timeout_s: float) -> list[str] | None:
    """The served labels for ``texts`` (POST /predict, batches of 16), None when it has no
    such API. Retried until ``timeout_s``: a server may answer before its model is loaded."""
    deadline = time.monotonic() + timeout_s
    while True:
        labels: list[str] = []
        status = 200
        for i in range(0, len(texts), 16):
            body = json.dumps({"texts": list(texts[i:i + 16])}).encode()
            status, data = _request(started, port, "POST", "/predict", body, timeout=60)
            if status != 200:
                break
            try:
                labels += [str(p["label"]) for p in json.loads(data)["predictions"]]
            except (ValueError, KeyError, TypeError):
                return None
        if status == 200:
            return labels
        if status in (404, 405) or time.monotonic() > deadline:
            return None
        time.sleep(0.5)


def check_entrypoint(session: Session, spec: ProofSpec) -> tuple[list[Check], list[str] | None]:
    """Start the entrypoint: it must answer on its port (or, without one, keep running or
    exit 0); with texts, its /predict labels are returned for the comparison."""
    if not session.entrypoint:
        return [Check("entrypoint", False, "the image has no entrypoint or cmd")], None
    port = _free_port()
    ports = [port, *[p for p in session.exposed_ports if p != port]]
    started = session.start(port)
    try:
        if not session.exposed_ports:
            time.sleep(SETTLE_S)
            if started.alive() or started.returncode == 0:
                return [Check("entrypoint", True, "started (no port exposed)")], None
            return [Check("entrypoint", False,
                          f"exited with status {started.returncode}: {_tail(started)}")], None
        answered, status = _wait_answer(started, ports, spec.timeout_s)
        if not answered:
            why = (f"exited with status {started.returncode}" if not started.alive()
                   else f"did not answer within {spec.timeout_s:.0f}s")
            return [Check("entrypoint", False, f"{why}: {_tail(started)}")], None
        checks = [Check("entrypoint", True, f"answered on port {answered} (HTTP {status})")]
        labels = _predict(started, answered, spec.texts, spec.timeout_s) if spec.texts else None
        return checks, labels
    finally:
        started.stop()


def prove(open_session: Callable[[str], AbstractContextManager[Session]], reference: str,
          spec: ProofSpec, baseline: list[str] | None = None) -> tuple[ProofReport, list[str] | None]:
    """Every check on ``reference``; with ``baseline`` labels, the predictions must match."""
    with open_session(reference) as session:
        checks = [check_imports(session, spec)]
        started, labels = check_entrypoint(session, spec)
        checks += started
    if spec.texts and started[0].ok:
        checks.append(_prediction_check(labels, baseline, len(spec.texts)))
    return ProofReport(reference, tuple(checks)), labels


def _prediction_check(labels: list[str] | None, baseline: list[str] | None, n: int) -> Check:
    if labels is None:
        if baseline is None:
            return Check("predictions", True, "a model is in the image but no POST /predict "
                         "answers: predictions not compared")
        return Check("predictions", False, "POST /predict answered before the fix, not after")
    if baseline is None:
        return Check("predictions", True, f"{len(labels)} labels from POST /predict")
    same = sum(a == b for a, b in zip(labels, baseline, strict=False))
    if len(labels) == len(baseline) == same:
        return Check("predictions", True, f"the same label for all {n} labelled texts")
    return Check("predictions", False, f"{n - same} of {n} labels differ from the original's")


def bisect(fixes: Sequence[str], passes: Callable[[tuple[str, ...]], bool]) -> tuple[list[str], list[str]]:
    """(kept, culprits): the fixes whose removals keep ``passes`` true, and those that break it.

    The empty set passes (the original was proved first). For each break, the shortest
    failing prefix (by binary search) ends in the culprit; it is left out and the rest
    tried again, so n fixes with k culprits take about k * log2(n) proofs.
    """
    kept = list(fixes)
    culprits: list[str] = []
    while kept and not passes(tuple(kept)):
        lo, hi = 0, len(kept)  # kept[:lo] passes, kept[:hi] fails
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if passes(tuple(kept[:mid])):
                lo = mid
            else:
                hi = mid
        culprits.append(kept.pop(hi - 1))
    return kept, culprits
