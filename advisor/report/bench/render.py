"""``report.json`` (docs/DESIGN.md, "`bench` report.json") and ``report.md`` from a ``BenchReport``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from advisor.bench.model import SCHEMA_VERSION, BenchReport, ImageSizes, LoadRun, SideResult
from advisor.bench.stats import ratio
from advisor.units import human_bytes

#: The metrics compared side by side: (key, label, formatter name, lower is better).
SUMMARY_METRICS = (
    ("size_bytes", "Image size (uncompressed)", "bytes", True),
    ("compressed_size_bytes", "Image size (compressed, to pull)", "bytes", True),
    ("file_count", "Files", "count", True),
    ("accuracy", "Accuracy", "percent", False),
    ("cold_start_s", "Cold start to first prediction", "seconds", True),
    ("peak_rss_bytes", "Peak memory (RSS)", "bytes", True),
    ("throughput_per_s", "Throughput in-process (texts/s)", "rate", False),
)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _sizes_json(sizes: ImageSizes | None) -> dict[str, Any]:
    if sizes is None:
        return {"size_bytes": None, "compressed_size_bytes": None}
    return {
        "digest": sizes.digest,
        "size_bytes": sizes.size_bytes,
        "compressed_size_bytes": sizes.compressed_size_bytes,
        "layers_size_bytes": sizes.layers_size_bytes,
        "file_count": sizes.file_count,
        "pull_seconds": {k: round(v, 2) for k, v in sizes.pull_seconds().items()},
        "categories": dict(sizes.categories),
        "layers": [
            {
                "index": layer.index,
                "digest": layer.digest,
                "size_bytes": layer.size_bytes,
                "compressed_size_bytes": layer.compressed_size_bytes,
                "files": layer.files,
                "created_by": layer.created_by,
            }
            for layer in sizes.layers
        ],
    }


def _load_json(run: LoadRun) -> dict[str, Any]:
    return {
        "concurrency": run.concurrency,
        "batch": run.batch,
        "requests": run.requests,
        "errors": run.errors,
        "seconds": round(run.seconds, 3),
        "throughput_per_s": round(run.throughput_per_s, 2),
        "latency_ms": run.latency.to_json() if run.latency else None,
    }


def side_json(side: SideResult) -> dict[str, Any]:
    out: dict[str, Any] = {"reference": side.reference, **_sizes_json(side.sizes)}
    out.update(
        runtime=side.runtime,
        model_path=side.model_path,
        accuracy=_round(side.accuracy),
        cold_start_s=_round(side.cold_start_s, 3),
        peak_rss_bytes=side.peak_rss_bytes,
        latency_ms={case: s.to_json() for case, s in sorted(side.latency.items())},
        throughput_per_s=_round(side.throughput_per_s, 2),
        versions=dict(sorted(side.versions.items())),
    )
    if side.http_latency:
        out["http_latency_ms"] = {c: s.to_json() for c, s in sorted(side.http_latency.items())}
    if side.load:
        out["http_load"] = [_load_json(run) for run in side.load]
    if side.notes:
        out["notes"] = {k: v for k, v in sorted(side.notes.items()) if v is not None}
    return out


def metric(side: SideResult, key: str) -> float | None:
    """One summary metric of a side (sizes may be missing when models, not images, are compared)."""
    if key in ("size_bytes", "compressed_size_bytes", "file_count"):
        return None if side.sizes is None else float(getattr(side.sizes, key))
    value = getattr(side, key)
    return None if value is None else float(value)


def ratios(report: BenchReport) -> dict[str, Any]:
    """slim / original for every summary metric and every case's p50."""
    out: dict[str, Any] = {}
    for key, _, _, _ in SUMMARY_METRICS:
        out[key] = _round(ratio(metric(report.slim, key), metric(report.original, key)))
    out["latency_p50"] = {
        case: _round(ratio(report.slim.latency[case].p50, report.original.latency[case].p50))
        for case in sorted(report.original.latency)
        if case in report.slim.latency
    }
    return out


def report_json(report: BenchReport) -> dict[str, Any]:
    """The whole report as plain JSON data (contract keys first)."""
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "original": side_json(report.original),
        "slim": side_json(report.slim),
        "agreement": _round(report.agreement),
        "ratios": ratios(report),
        "data": {"path": report.data_path, "samples": report.samples},
        "cases": [case.name for case in report.cases],
        "environment": dict(report.environment),
    }
    if report.advice is not None:
        doc["advice"] = advice_summary(report.advice)
    return doc


def advice_summary(advice: Mapping[str, Any]) -> dict[str, Any]:
    """The advise report's recommendations with the image size before and after each one."""
    image = advice.get("image") or {}
    size = int(image.get("size_bytes") or 0)
    steps = []
    for rec in advice.get("recommendations") or []:
        saving = int(rec.get("estimated_savings_bytes") or 0)
        steps.append(
            {
                "id": str(rec.get("id", "")),
                "title": str(rec.get("title", "")),
                "estimated_savings_bytes": saving,
                "size_before_bytes": size,
                "size_after_bytes": max(0, size - saving),
            }
        )
        size = max(0, size - saving)
    return {
        "reference": str(image.get("reference", "")),
        "size_bytes": int(image.get("size_bytes") or 0),
        "recommendations": steps,
        "total_estimated_savings_bytes": int(advice.get("total_estimated_savings_bytes") or 0),
    }


# -- formatting ----------------------------------------------------------------------------

fmt_bytes = human_bytes  # advisor.units: one byte formatter for every report


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "n/a"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def fmt_ms(ms: float | None) -> str:
    return "n/a" if ms is None else (f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms")


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "n/a"
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.3f}x"


FORMATTERS: dict[str, Callable[[float | None], str]] = {
    "bytes": fmt_bytes,
    "count": lambda v: "n/a" if v is None else f"{int(v):,}",
    "percent": lambda v: "n/a" if v is None else f"{v * 100:.1f} %",
    "seconds": fmt_seconds,
    "rate": lambda v: "n/a" if v is None else f"{v:.1f}",
}


def summary_rows(report: BenchReport) -> list[tuple[str, str, str, str]]:
    """(metric, original, slim, slim/original) for the summary table."""
    rows = []
    for key, label, kind, _ in SUMMARY_METRICS:
        a, b = metric(report.original, key), metric(report.slim, key)
        fmt = FORMATTERS[kind]
        change = (
            f"{(b - a) * 100:+.1f} pts"
            if kind == "percent" and a is not None and b is not None
            else fmt_ratio(ratio(b, a))
        )
        rows.append((label, fmt(a), fmt(b), change))
    rows.append(("Agreement (same label)", "", f"{report.agreement * 100:.1f} %", ""))
    return rows


def latency_rows(report: BenchReport) -> list[tuple[str, ...]]:
    rows = []
    for case in report.cases:
        o, s = report.original.latency.get(case.name), report.slim.latency.get(case.name)
        h = report.slim.http_latency.get(case.name)
        rows.append(
            (
                case.name,
                *(fmt_ms(getattr(o, q, None)) for q in ("p50", "p95", "p99")),
                *(fmt_ms(getattr(s, q, None)) for q in ("p50", "p95", "p99")),
                fmt_ratio(ratio(getattr(s, "p50", None), getattr(o, "p50", None))),
                fmt_ms(getattr(h, "p50", None)),
            )
        )
    return rows


LATENCY_HEADER = (
    "case", "original p50", "p95", "p99", "slim p50", "p95", "p99", "slim/original p50", "slim HTTP p50",
)  # fmt: skip


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _md_layers(title: str, sizes: ImageSizes | None) -> list[str]:
    if sizes is None:
        return []
    rows = [
        (
            str(layer.index),
            fmt_bytes(layer.size_bytes),
            fmt_bytes(layer.compressed_size_bytes),
            f"{layer.files:,}",
            "`" + (layer.created_by[:90] or "-").replace("`", "'") + "`",
        )
        for layer in sizes.layers
    ]
    out = [f"### Layers of the {title} image", ""]
    return out + _md_table(("#", "size", "compressed", "files", "created by"), rows)


def _md_load(side: SideResult) -> list[str]:
    if not side.load:
        return []
    rows = [
        (
            str(r.concurrency),
            str(r.requests),
            str(r.errors),
            f"{r.throughput_per_s:.1f}",
            fmt_ms(r.latency.p50 if r.latency else None),
            fmt_ms(r.latency.p99 if r.latency else None),
        )
        for r in side.load
    ]
    out = ["## Slim server under load (HTTP, loopback)", ""]
    return out + _md_table(("clients", "requests", "errors", "texts/s", "p50", "p99"), rows)


def _md_pull(report: BenchReport) -> list[str]:
    o, s = report.original.sizes, report.slim.sizes
    if o is None or s is None:
        return []
    po, ps = o.pull_seconds(), s.pull_seconds()
    rows = [(bw, fmt_seconds(po[bw]), fmt_seconds(ps[bw])) for bw in po]
    return [
        "## Pull time (compressed bytes at line rate)",
        "",
        *_md_table(("bandwidth", "original", "slim"), rows),
    ]


def _md_advice(report: BenchReport) -> list[str]:
    if report.advice is None:
        return []
    summary = advice_summary(report.advice)
    rows = [
        (
            r["id"],
            r["title"],
            fmt_bytes(r["estimated_savings_bytes"]),
            fmt_bytes(r["size_before_bytes"]),
            fmt_bytes(r["size_after_bytes"]),
        )
        for r in summary["recommendations"]
    ]
    out = ["## Recommendations of `advisor advise` (before -> after)", ""]
    return out + _md_table(("id", "recommendation", "saves", "before", "after"), rows)


def report_markdown(report: BenchReport) -> str:
    env = report.environment
    lines = [
        "# advisor bench: original vs slim",
        "",
        f"- original: `{report.original.reference}` ({report.original.runtime}, model `{report.original.model_path}`)",
        f"- slim: `{report.slim.reference}` ({report.slim.runtime}, model `{report.slim.model_path}`)",
        f"- data: `{report.data_path}` ({report.samples} labelled texts)",
        f"- machine: {env.get('cpu') or env.get('machine')}, {env.get('cpu_count')} CPUs, "
        f"{env.get('threads')} threads per side, load average {env.get('loadavg')}, {env.get('date')}",
        "",
        "## Summary",
        "",
    ]
    lines += _md_table(("metric", "original", "slim", "slim/original"), summary_rows(report))
    lines += ["## Latency per case (model only, in-process, each image's own runtime)", ""]
    lines += _md_table(LATENCY_HEADER, latency_rows(report))
    lines += _md_load(report.slim) + _md_pull(report)
    lines += _md_layers("original", report.original.sizes) + _md_layers("slim", report.slim.sizes)
    lines += _md_advice(report)
    lines += ["## How this was measured", "", *method_notes(report), ""]
    return "\n".join(lines)


METHOD_NOTES = (
    "- Each side runs in its own image's root filesystem, with that image's Python:"
    " the original through its torch + transformers (`torch_probe.py`), the slim through its own"
    " server and, for model-only latency, its onnxruntime + tokenizers (`ort_probe.py`).",
    "- Cold start: original = process start to the first prediction of the probe; slim = server"
    " process start to its first successful `/predict`.",
    "- Peak memory: VmHWM of the original's probe process and of the slim server process.",
    "- Latency: the cases alternate between the sides round by round; inputs are real sentences"
    " cut to exactly the case's token count and padded to it on both sides.",
    "- Throughput in-process: texts/s at the largest case; the HTTP load test sends single texts.",
    "- Pull time: compressed size at the line rate (no latency, no decompression).",
)


def sandbox_note(env: Mapping[str, Any]) -> str | None:
    """One method note on how the images' code ran, from ``environment["sandbox"]``."""
    box = env.get("sandbox")
    if not isinstance(box, Mapping):
        return None
    if box.get("runtime") != "runc":
        return f"- The images' code ran as: {box.get('runtime')}."
    userns = "a user namespace" if box.get("user_namespace") else "no user namespace"
    return (
        f"- Sandbox: runc {box.get('runc_version')} with its own network namespace (only `lo`;"
        f" the client joins it), {userns}, Docker's default capabilities minus NET_RAW/MKNOD,"
        f" seccomp, a read-only root; limits by {box.get('limits')}. runc's own cost, measured"
        f" in this run ({box.get('runs')} starts of a one-line Python, p50):"
        f" {box.get('start_overhead_ms_p50')} ms more to start than the host's Python"
        f" ({box.get('start_ms_p50')} vs {box.get('host_start_ms_p50')} ms),"
        f" {box.get('teardown_ms_p50')} ms to tear down; it is inside both cold starts."
        " Requests reuse keep-alive connections made inside the namespace: no proxy, no extra hop."
    )


def method_notes(report: BenchReport) -> tuple[str, ...]:
    note = sandbox_note(report.environment)
    return (*METHOD_NOTES[:1], *([note] if note else []), *METHOD_NOTES[1:])
