"""Fuzz advisor's tar walk and manifest readers with Hypothesis for a fixed time budget.

    .venv/bin/python benchmarks/fuzz/fuzz_readers.py --seconds 120 [--out benchmarks/fuzz]

Targets (each gets the budget):
  tar       ``walk_layer`` on structured tars (names with ``..``, non-UTF-8 bytes, every
            typeflag, lying sizes, PAX and GNU long-name records), then mutated (bit flips,
            cuts, splices), plain or gzipped, seekable or not.
  manifest  ``open_image`` on a real OCI layout whose manifest/config/index bytes are
            fuzzed JSON: mutations of a valid document and arbitrary nested JSON.
  predict   the server's ``parse_texts`` on fuzzed request bodies.

The property everywhere: the reader returns a result or raises ``BadInputError`` (or the
server's ``RequestError``); anything else is a finding. Findings are deduplicated by
exception type and location, shrunk by Hypothesis, written to ``results.json`` and
``report.md``, and then ignored so the search can go on to find other ones.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from advisor.advise.facts.capture import capture_for  # noqa: E402
from advisor.errors import BadInputError  # noqa: E402
from advisor.oci.layers import read_layers  # noqa: E402
from advisor.oci.loader import open_image  # noqa: E402
from advisor.oci.walk import walk_layer  # noqa: E402
from advisor.serve.app import RequestError, parse_texts  # noqa: E402
from advisor.serve.settings import Settings  # noqa: E402
from tests.security.craft import (  # noqa: E402
    END,
    IterStream,
    config_for,
    gz,
    header,
    member,
    pad,
    pax_member,
    write_layout,
)


@dataclass
class Finding:
    target: str
    signature: str
    exception: str
    example: str
    traceback: str
    count: int = 1


@dataclass
class Stats:
    target: str
    inputs: int = 0
    refused: int = 0
    accepted: int = 0
    batches: int = 0
    seconds: float = 0.0
    findings: dict[str, Finding] = field(default_factory=dict)


class Known(Exception):
    """A finding already recorded: counted, not re-shrunk."""


def _signature(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    inside = [f for f in frames if "/advisor/" in f.filename] or frames
    last = inside[-1]
    return f"{type(e).__name__} at {Path(last.filename).name}:{last.name}"


def _check(stats: Stats, fn: Callable[[], object], example: Callable[[], str],
           allowed: tuple[type[BaseException], ...], invariant: Callable[[object], str | None]) -> None:
    stats.inputs += 1
    try:
        result = fn()
    except allowed:
        stats.refused += 1
        return
    except Exception as e:
        sig = _signature(e)
        if sig in stats.findings:
            stats.findings[sig].count += 1
            raise Known() from e
        stats.findings[sig] = Finding(stats.target, sig, f"{type(e).__name__}: {str(e)[:300]}",
                                      example()[:2000], traceback.format_exc()[-2500:])
        raise
    stats.accepted += 1
    problem = invariant(result)
    if problem is not None:
        sig = f"invariant: {problem.split(':')[0]}"
        if sig not in stats.findings:
            stats.findings[sig] = Finding(stats.target, sig, problem, example()[:2000], "")
        else:
            stats.findings[sig].count += 1


# -- tar ------------------------------------------------------------------------------------

NAMES = st.one_of(
    st.sampled_from([b"a", b"dir/file", b"../../etc/passwd", b"/abs", b"./x", b"a/../../b",
                     b".wh.x", b"d/.wh..wh..opq", b"caf\xe9", b"\xff\xfe", b"", b"/", b"..",
                     b"usr/lib/python3/site-packages/p-1.dist-info/METADATA", b"lib/x.so.1",
                     b"app/config.json", b"app/.env"]),
    st.binary(min_size=0, max_size=120),
)
TYPES = st.sampled_from([b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"L", b"K",
                         b"x", b"g", b"D", b"S", b"V", b"Z"])
SIZE_FIELDS = st.one_of(
    st.none(),
    st.sampled_from([b"\xff" * 11 + b"\x00", b"\x80" + b"\x00" * 10 + b"\x05", b"99999999999\0",
                     b"-0000000001\0", b"           \0", b"7777777777 \0", b"\x80" + b"\xff" * 11]),
    st.binary(min_size=12, max_size=12),
)


@st.composite
def tar_members(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        keys = st.sampled_from(["path", "linkpath", "size", "uid", "gid", "mtime", "x"])
        values = st.one_of(st.sampled_from(["-1", "1e400", "nan", "9" * 40, "../../x", ""]),
                           st.text(max_size=30))
        return pax_member(draw(st.dictionaries(keys, values, max_size=4)))
    name = draw(NAMES)
    data = draw(st.binary(max_size=700))
    typeflag = draw(TYPES)
    size_field = draw(SIZE_FIELDS) if kind == 1 else None
    link = draw(NAMES) if typeflag in (b"1", b"2") else b""
    if kind == 2:  # a size that lies about the data that follows
        return header(name, draw(st.integers(0, 5000)), typeflag, link) + pad(data)
    return member(name, data, typeflag, link, size_field=size_field)


@st.composite
def tars(draw: st.DrawFn) -> tuple[bytes, str]:
    body = b"".join(draw(st.lists(tar_members(), max_size=8))) + (END if draw(st.booleans()) else b"")
    data = gz(body) if draw(st.booleans()) else body
    mutation = draw(st.integers(0, 3))
    if mutation == 1 and data:  # bit flips
        buf = bytearray(data)
        for pos in draw(st.lists(st.integers(0, len(buf) - 1), min_size=1, max_size=4)):
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        data = bytes(buf)
    elif mutation == 2 and data:  # a cut
        data = data[: draw(st.integers(0, len(data)))]
    elif mutation == 3:  # a splice of random bytes
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=64)) + data[at:]
    mode = draw(st.sampled_from(["seekable", "stream"]))
    return data, mode


def _tar_invariant(tree: object) -> str | None:
    entries = getattr(tree, "entries", {})
    for path, entry in entries.items():
        if path.startswith("/") or ".." in path.split("/"):
            return f"escaping path: {path!r}"
        if entry.size < 0:
            return f"negative size: {path!r} has {entry.size}"
    return None


def fuzz_tar(stats: Stats, batch: int) -> None:
    @settings(max_examples=batch, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(tars())
    def run(sample: tuple[bytes, str]) -> None:
        data, mode = sample
        stream: Any = io.BytesIO(data) if mode == "seekable" else IterStream([data])
        _check(stats, lambda: walk_layer(stream, 0, capture=capture_for),
               lambda: f"mode={mode} data={data!r}", (BadInputError,), _tar_invariant)

    run()


# -- manifests ------------------------------------------------------------------------------

LAYER = b"".join([member("etc/os-release", b"ID=debian\n"), member("app/a.py", b"1\n"), END])
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                      st.text(max_size=20), st.sampled_from(["sha256:" + "0" * 64, "application/vnd.oci.image.index.v1+json"]))
JSON = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                    max_leaves=20)


def _valid_docs(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    layout = write_layout(root, [LAYER])
    return layout.manifest, config_for([LAYER])


def _mutate(doc: Any, draw: st.DrawFn, depth: int = 0) -> Any:
    if isinstance(doc, dict) and doc and depth < 4:
        key = draw(st.sampled_from(sorted(doc)))
        action = draw(st.integers(0, 3))
        out = dict(doc)
        if action == 0:
            del out[key]
        elif action == 1:
            out[key] = draw(JSON)
        else:
            out[key] = _mutate(doc[key], draw, depth + 1)
        return out
    if isinstance(doc, list) and doc and depth < 4:
        i = draw(st.integers(0, len(doc) - 1))
        out_l = list(doc)
        out_l[i] = _mutate(doc[i], draw, depth + 1) if draw(st.booleans()) else draw(JSON)
        return out_l
    return draw(JSON)


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, bytes]:
    which = draw(st.sampled_from(["manifest", "config", "index"]))
    kind = draw(st.integers(0, 4))
    if kind == 0:
        body = json.dumps(draw(JSON)).encode()
    elif kind == 1:
        body = draw(st.sampled_from([b"[" * 3000 + b"]" * 3000, b'{"schemaVersion": ' + b"9" * 5000 + b"}",
                                     b"\xff\xfe{}", b"", b"null", b'{"a":' * 2000 + b"1" + b"}" * 2000]))
    else:
        base_m, base_c = draw(st.just(MANIFEST)), draw(st.just(CONFIG))
        base: Any = {"manifest": base_m, "config": base_c,
                     "index": {"schemaVersion": 2, "manifests": [dict(base_m["config"])]}}[which]
        mutated = base
        for _ in range(draw(st.integers(1, 3))):
            mutated = _mutate(mutated, draw)
        body = json.dumps(mutated).encode()
    return which, body


MANIFEST: dict[str, Any] = {}
CONFIG: dict[str, Any] = {}


def fuzz_manifest(stats: Stats, batch: int, scratch: Path) -> None:
    counter = [0]

    @settings(max_examples=batch, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(documents())
    def run(sample: tuple[str, bytes]) -> None:
        which, body = sample
        counter[0] += 1
        root = scratch / f"l{stats.inputs}-{counter[0]}"
        if which == "manifest":
            layout = write_layout(root, [LAYER], manifest=body)
        elif which == "config":
            layout = write_layout(root, [LAYER], config=body)
        else:
            layout = write_layout(root, [LAYER])
            from tests.security.craft import OCI_INDEX, put_blob, set_root
            set_root(root, {"mediaType": OCI_INDEX, **put_blob(root, body)})

        def read() -> object:
            with open_image(layout.ref) as image:
                return read_layers(image, capture_for)

        try:
            _check(stats, read, lambda: f"{which}: {body[:1500]!r}", (BadInputError,), lambda _r: None)
        finally:
            import shutil

            shutil.rmtree(root, ignore_errors=True)

    run()


# -- the server's request parser --------------------------------------------------------------

BODIES = st.one_of(
    st.binary(max_size=200),
    JSON.map(lambda d: json.dumps(d).encode()),
    st.builds(lambda t: json.dumps({"text": t}).encode(), JSON),
    st.builds(lambda t: json.dumps({"texts": t}).encode(), JSON),
    st.sampled_from([b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}", b'{"texts": [' + b"1" * 5000 + b"]}"]),
)


def fuzz_predict(stats: Stats, batch: int) -> None:
    cfg = Settings(max_batch=8, max_text_chars=1000)

    @settings(max_examples=batch, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(BODIES)
    def run(body: bytes) -> None:
        def check_texts(texts: object) -> str | None:
            ok = isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)
            return None if ok else f"bad result: {texts!r}"[:200]

        _check(stats, lambda: parse_texts(body, cfg), lambda: repr(body[:1500]), (RequestError,), check_texts)

    run()


# -- driver ---------------------------------------------------------------------------------------


def run_target(name: str, seconds: float, scratch: Path) -> Stats:
    stats = Stats(name)
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        stats.batches += 1
        try:
            if name == "tar":
                fuzz_tar(stats, 300)
            elif name == "manifest":
                fuzz_manifest(stats, 60, scratch)
            else:
                fuzz_predict(stats, 500)
        except Known:
            pass
        except Exception:  # a new finding: recorded by _check, shrunk by Hypothesis
            pass
    stats.seconds = time.monotonic() - began
    return stats


def write_report(all_stats: list[Stats], out: Path, seconds: float) -> None:
    doc = {
        "budget_seconds_per_target": seconds,
        "python": sys.version.split()[0],
        "targets": [{
            "target": s.target, "inputs": s.inputs, "accepted": s.accepted, "refused_cleanly": s.refused,
            "batches": s.batches, "seconds": round(s.seconds, 1),
            "findings": [f.__dict__ for f in s.findings.values()],
        } for s in all_stats],
    }
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = ["# Fuzzing advisor's readers (Hypothesis)", "",
             f"Budget: {seconds:.0f} s per target, `python benchmarks/fuzz/fuzz_readers.py --seconds {seconds:.0f}`.",
             "", "| target | inputs tried | accepted | refused cleanly | findings |", "|---|---:|---:|---:|---:|"]
    for s in all_stats:
        lines.append(f"| {s.target} | {s.inputs:,} | {s.accepted:,} | {s.refused:,} | {len(s.findings)} |")
    lines += ["", "## Findings", ""]
    for s in all_stats:
        for f in s.findings.values():
            lines += [f"### {s.target}: {f.signature} (hit {f.count}x)", "", f"`{f.exception}`", "",
                      "Minimal input:", "", "```", f.example[:400] + (" ..." if len(f.example) > 400 else ""), "```", ""]
    if not any(s.findings for s in all_stats):
        lines.append("None.")
    (out / "report.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0, help="budget per target")
    ap.add_argument("--targets", default="tar,manifest,predict")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = ap.parse_args()
    global MANIFEST, CONFIG
    with tempfile.TemporaryDirectory(prefix="advisor-fuzz-") as tmp:
        MANIFEST, CONFIG = _valid_docs(Path(tmp) / "valid")
        results = []
        for name in args.targets.split(","):
            stats = run_target(name, args.seconds, Path(tmp))
            print(f"{name}: {stats.inputs} inputs, {len(stats.findings)} findings", file=sys.stderr)
            results.append(stats)
    args.out.mkdir(parents=True, exist_ok=True)
    write_report(results, args.out, args.seconds)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
