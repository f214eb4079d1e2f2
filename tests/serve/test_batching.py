"""Dynamic batching: the grouping plan, the batcher with a recording model, and concurrent
HTTP clients on the real tiny model, coalesced and each answered with its own results."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from advisor.serve.app import App
from advisor.serve.batching import Batcher, ServerClosed, plan_groups
from advisor.serve.model import Model
from advisor.serve.server import serve_in_thread
from advisor.serve.settings import Settings


def test_plan_groups_cuts_where_padding_costs_more_than_a_run() -> None:
    assert plan_groups([5, 5, 5], run_cost=32) == [[0, 1, 2]]
    # two short, two long: padding the short ones to 120 costs more than a second run
    groups = plan_groups([120, 6, 118, 8], run_cost=32)
    assert sorted(map(sorted, groups)) == [[0, 2], [1, 3]]
    assert plan_groups([10, 11, 12], run_cost=0) == [[0], [1], [2]]
    assert sorted(i for g in plan_groups(list(range(64, 0, -1))) for i in g) == list(range(64))


def test_the_default_run_cost_splits_mixed_lengths_and_keeps_near_equal_ones() -> None:
    """Eight clients' sentences (token lengths as the bench's data gives them): a run costs
    about 7 padded tokens (RUN_COST_TOKENS), so texts 5+ tokens apart do not share one."""
    groups = plan_groups([12, 40, 27, 13, 26, 41, 58, 28])
    assert sorted(map(sorted, groups)) == [[0, 3], [1, 5], [2, 4, 7], [6]]
    assert plan_groups([30, 31, 30, 32]) == [[0, 2, 1, 3]]


class Recorder:
    """A model that records its runs: each text's result is the text itself, tagged."""

    def __init__(self, delay_s: float = 0.0, fail_on: str | None = None) -> None:
        self.runs: list[list[str]] = []
        self.delay_s = delay_s
        self.fail_on = fail_on

    def encode(self, texts: Sequence[str]) -> list[Any]:
        return [list(t) for t in texts]  # len() is the "token" count

    def infer(self, texts: Sequence[str], encodings: Sequence[Any]) -> list[Any]:
        if self.fail_on in texts:
            raise ValueError("boom")
        self.runs.append(list(texts))
        time.sleep(self.delay_s)
        return [f"<{t}>" for t in texts]


def test_a_lone_request_runs_alone_and_whole() -> None:
    model = Recorder()
    batcher = Batcher(model, max_batch=8, max_wait_s=0.5, workers=1)
    began = time.perf_counter()
    assert batcher.submit(["a", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"]).result(5) == [
        "<a>", "<bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb>"]
    assert time.perf_counter() - began < 0.25  # no company expected: no wait
    assert model.runs == [["a", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"]]
    batcher.close()


def test_concurrent_requests_share_runs_and_keep_their_order() -> None:
    model = Recorder(delay_s=0.05)
    batcher = Batcher(model, max_batch=16, max_wait_s=0.02, workers=1)
    futures = [batcher.submit([f"r{i}-a", f"r{i}-b"]) for i in range(8)]
    for i, f in enumerate(futures):
        assert f.result(5) == [f"<r{i}-a>", f"<r{i}-b>"]
    assert len(model.runs) < 8 and max(len(r) for r in model.runs) <= 16
    for run in model.runs:  # a request's texts stay together, in order
        for i in range(8):
            if f"r{i}-a" in run:
                assert run.index(f"r{i}-b") == run.index(f"r{i}-a") + 1
    batcher.close()


def test_a_failing_run_fails_only_its_requests() -> None:
    model = Recorder(delay_s=0.05, fail_on="poison")
    batcher = Batcher(model, max_batch=4, max_wait_s=0.0, workers=1)
    first = batcher.submit(["slow"])
    bad = batcher.submit(["x" * 100, "poison"])  # queued with "fine", but in a run of its own
    good = batcher.submit(["fine"])
    assert first.result(5) == ["<slow>"]
    with pytest.raises(ValueError, match="boom"):
        bad.result(5)
    assert good.result(5) == ["<fine>"]
    batcher.close()
    with pytest.raises(ServerClosed):
        batcher.submit(["late"])


def _post(port: int, texts: list[str]) -> list[dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/predict", body=json.dumps({"texts": texts}))
    resp = conn.getresponse()
    assert resp.status == 200
    doc = json.loads(resp.read())
    conn.close()
    return list(doc["predictions"])


def _runs(port: int) -> tuple[float, float]:
    from prometheus_client.parser import text_string_to_metric_families

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    fam = {f.name: f for f in text_string_to_metric_families(text)}["advisor_batch_texts"]
    values = {s.name: s.value for s in fam.samples}
    return values["advisor_batch_texts_count"], values["advisor_batch_texts_sum"]


def test_concurrent_http_clients_are_coalesced(tiny_artifacts: Path) -> None:
    model = Model(str(tiny_artifacts), intra_op_threads=1)
    settings = Settings(host="127.0.0.1", port=0, max_batch=32, max_wait_ms=20, access_log=False)
    app = App(model, settings)
    texts = [f"review number {i} " + "good " * (i % 5) for i in range(8)]
    alone = [model.predict([t])[0].as_json() for t in texts]
    with serve_in_thread(app) as srv:
        _post(srv.port, ["warm up"])  # one client: the recent peak is 1
        results: dict[int, list[dict[str, Any]]] = {}
        for _ in range(3):  # rounds of 8 at once: from the second on, the batcher expects 8
            barrier = threading.Barrier(8)

            def client(i: int, barrier: threading.Barrier) -> None:
                barrier.wait()
                results[i] = _post(srv.port, [texts[i]])

            threads = [threading.Thread(target=client, args=(i, barrier)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            for i in range(8):  # its own text's answer (same label; int8 scales per batch)
                assert results[i][0]["label"] == alone[i]["label"]
                assert results[i][0]["score"] == pytest.approx(alone[i]["score"], abs=0.05)
        runs, texts_run = _runs(srv.port)
    app.close()
    assert texts_run == 1 + 3 * 8
    assert runs < 1 + 3 * 8 / 2, f"{runs} model runs for {texts_run} texts"
