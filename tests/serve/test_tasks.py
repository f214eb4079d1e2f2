"""The three exported tasks served for real: tiny random models through ``advisor export``,
then the server in-process (or ``Model`` directly), checked against onnxruntime run by hand."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from advisor.serve.app import App
from advisor.serve.model import (
    SUPPORTED_TASKS,
    Embedding,
    Entity,
    Model,
    ModelError,
    Token,
    TokenLabels,
    TokenPrediction,
    aggregate_entities,
)
from advisor.serve.server import Server
from advisor.serve.settings import Settings
from advisor.slim.image import SERVED_TASKS
from tests.serve.conftest import ArtifactsFactory, serve_model
from tests.serve.tiny_artifacts import HIDDEN, TASK_LABELS, TOKEN_LABELS

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["Alice lives in Paris, isn't it?", "dull", "the plot makes no sense at all, really"]
LONG = "a gripping, beautiful film about a man who walks from Lisbon to Berlin in one winter"


@pytest.fixture(scope="module")
def token_model(task_artifacts: ArtifactsFactory) -> Model:
    return Model(str(task_artifacts("token-classification")), intra_op_threads=1)


@pytest.fixture(scope="module")
def feature_model(task_artifacts: ArtifactsFactory) -> Model:
    return Model(str(task_artifacts("feature-extraction")), intra_op_threads=1)


@pytest.fixture(scope="module")
def token_server(token_model: Model) -> Iterator[Server]:
    yield from _serve(token_model)


@pytest.fixture(scope="module")
def feature_server(feature_model: Model) -> Iterator[Server]:
    yield from _serve(feature_model)


def _serve(model: Model) -> Iterator[Server]:
    yield from serve_model(model, max_body_bytes=16384, max_batch=4, workers=2)


def call(srv: Server, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=10)
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    doc = json.loads(resp.read())
    conn.close()
    return resp.status, doc


def reference_run(artifacts: Path, texts: list[str]) -> tuple[np.ndarray, list[Any]]:
    """The graph's output for ``texts`` padded as one batch (int8 dynamic quantisation scales
    activations per batch, so the same batch is what must match), and the encodings."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    serving = json.loads((artifacts / "serving.json").read_text())
    tok = Tokenizer.from_file(str(artifacts / "tokenizer.json"))
    tok.enable_truncation(max_length=serving["max_length"])
    tok.enable_padding()
    enc = tok.encode_batch(texts)
    columns = {
        "input_ids": [e.ids for e in enc],
        "attention_mask": [e.attention_mask for e in enc],
        "token_type_ids": [e.type_ids for e in enc],
    }
    feeds = {n: np.array(columns[n], dtype=np.int64) for n in serving["inputs"]}
    session = ort.InferenceSession(str(artifacts / "model.onnx"), providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run(serving["outputs"], feeds)[0]
    return out, enc


# --- token-classification ---------------------------------------------------------------


def test_token_response_shape_and_offsets(token_server: Server) -> None:
    status, doc = call(token_server, "POST", "/predict", {"texts": TEXTS})
    assert status == 200 and len(doc["predictions"]) == len(TEXTS)
    for text, pred in zip(TEXTS, doc["predictions"], strict=True):
        assert set(pred) == {"tokens", "entities"}
        assert pred["tokens"], text
        ends = [0]
        for tok in pred["tokens"]:
            assert set(tok) == {"token", "start", "end", "label", "score"}
            assert tok["label"] in TOKEN_LABELS and 0 < tok["score"] <= 1
            assert ends[-1] <= tok["start"] < tok["end"] <= len(text)
            # the uncased WordPiece token is the lowercased slice it came from
            assert text[tok["start"] : tok["end"]].lower() == tok["token"].removeprefix("##")
            ends.append(tok["end"])
        for ent in pred["entities"]:
            assert set(ent) == {"entity", "score", "start", "end", "text"}
            assert ent["text"] == text[ent["start"] : ent["end"]]
        tokens = [Token(**t) for t in pred["tokens"]]
        assert [e.as_json() for e in aggregate_entities(text, tokens)] == pred["entities"]


def test_token_offsets_are_character_offsets_beyond_ascii(token_server: Server) -> None:
    text = "Zoë visited München 😀 today, naïvely"
    status, doc = call(token_server, "POST", "/predict", {"text": text})
    assert status == 200
    tokens = doc["predictions"][0]["tokens"]
    slices = [text[t["start"] : t["end"]] for t in tokens]
    assert slices == ["Zoë", "visited", "München", "😀", "today", ",", "naïve", "ly"]
    assert [t["token"] for t in tokens][:4] == ["zoe", "visited", "munchen", "[UNK]"]


def test_token_labels_equal_in_process_onnx(token_server: Server, task_artifacts: ArtifactsFactory) -> None:
    status, doc = call(token_server, "POST", "/predict", {"texts": TEXTS})
    assert status == 200
    logits, encodings = reference_run(task_artifacts("token-classification"), TEXTS)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    for enc, row, pred in zip(encodings, probs, doc["predictions"], strict=True):
        real = [i for i, special in enumerate(enc.special_tokens_mask) if not special]
        assert [t["token"] for t in pred["tokens"]] == [enc.tokens[i] for i in real]
        assert [t["label"] for t in pred["tokens"]] == [TOKEN_LABELS[int(row[i].argmax())] for i in real]
        assert [t["score"] for t in pred["tokens"]] == pytest.approx([float(row[i].max()) for i in real], abs=1e-5)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["B-X", "I-X", "O", "B-X"], [("X", 0, 1), ("X", 3, 3)]),
        (["B-X", "B-X", "I-X"], [("X", 0, 0), ("X", 1, 2)]),
        (["I-X", "I-X", "I-X"], [("X", 0, 2)]),  # no B-: I- starts an entity too
        (["B-X", "I-Y", "I-Y"], [("X", 0, 0), ("Y", 1, 2)]),
        (["PER", "PER", "O", "LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),  # no prefix at all
        (["O", "O", "O"], []),
        ([], []),
    ],
)
def test_aggregation_like_the_simple_pipeline(labels: list[str], expected: list[tuple[str, int, int]]) -> None:
    # word i spans text[4*i : 4*i+3]: "w0a w1b w2c ..."
    text = " ".join(f"w{i}{'abcdefgh'[i]}" for i in range(len(labels)))
    scores = [0.5 + 0.1 * i for i in range(len(labels))]
    tokens = [Token(f"w{i}", 4 * i, 4 * i + 3, label, scores[i]) for i, label in enumerate(labels)]
    got = aggregate_entities(text, tokens)
    want = [
        Entity(kind, pytest.approx(float(np.mean(scores[a : b + 1]))), 4 * a, 4 * b + 3,  # type: ignore[arg-type]
               text[4 * a : 4 * b + 3])
        for kind, a, b in expected
    ]
    assert list(got) == want


def test_entity_text_is_the_original_slice_across_subwords_and_case() -> None:
    text = "Hello New  York!"
    tokens = [Token("hello", 0, 5, "O", 0.9), Token("new", 6, 9, "B-LOC", 0.8),
              Token("yo", 11, 13, "I-LOC", 0.6), Token("##rk", 13, 15, "I-LOC", 0.7),
              Token("!", 15, 16, "O", 0.9)]
    (entity,) = aggregate_entities(text, tokens)
    assert (entity.entity, entity.start, entity.end, entity.text) == ("LOC", 6, 15, "New  York")
    assert entity.score == pytest.approx(0.7)


def test_token_head_skips_special_and_padding_tokens(task_artifacts: ArtifactsFactory) -> None:
    """Hand-made logits on real encodings: [CLS], [SEP] and padding get entity labels that
    must not show up, the real tokens spell out known entities."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(task_artifacts("token-classification") / "tokenizer.json"))
    tok.enable_padding()
    texts = ["Alice met Bob in Paris", LONG]
    enc = tok.encode_batch(texts)
    assert enc[0].tokens[:7] == ["[CLS]", "alice", "met", "bob", "in", "paris", "[SEP]"]
    assert enc[0].attention_mask[7] == 0  # padded to the long text
    wanted = ["B-PER", "B-PER", "O", "B-PER", "O", "B-LOC", "I-LOC"] + ["I-LOC"] * (len(enc[0]) - 7)
    logits = np.zeros((2, len(enc[0]), len(TOKEN_LABELS)), dtype=np.float32)
    for i, label in enumerate(wanted):
        logits[0, i, TOKEN_LABELS.index(label)] = 5.0
    pred = TokenLabels(TOKEN_LABELS, len(TOKEN_LABELS)).decode(texts, enc, logits)[0]
    assert isinstance(pred, TokenPrediction)
    assert [t.token for t in pred.tokens] == ["alice", "met", "bob", "in", "paris"]
    assert [(e.entity, e.text, e.start, e.end) for e in pred.entities] == [
        ("PER", "Alice", 0, 5), ("PER", "Bob", 10, 13), ("LOC", "Paris", 17, 22)]
    top = float(np.exp(5.0) / (np.exp(5.0) + len(TOKEN_LABELS) - 1))
    assert all(e.score == pytest.approx(top) for e in pred.entities)


# --- feature-extraction -----------------------------------------------------------------


def test_embedding_shape_unit_norm_and_equal_to_in_process_onnx(
    feature_server: Server, task_artifacts: ArtifactsFactory
) -> None:
    status, doc = call(feature_server, "POST", "/predict", {"texts": TEXTS})
    assert status == 200
    hidden, encodings = reference_run(task_artifacts("feature-extraction"), TEXTS)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)[..., None]
    mean = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
    want = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    for row, pred in zip(want, doc["predictions"], strict=True):
        assert set(pred) == {"embedding", "dim"} and pred["dim"] == HIDDEN
        got = np.array(pred["embedding"])
        assert got.shape == (HIDDEN,)
        assert np.linalg.norm(got) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(got, row, atol=1e-4)


def test_single_text_gives_one_embedding(feature_server: Server) -> None:
    status, doc = call(feature_server, "POST", "/predict", {"text": "dull"})
    assert status == 200 and len(doc["predictions"]) == 1
    assert len(doc["predictions"][0]["embedding"]) == HIDDEN


# --- both new tasks ---------------------------------------------------------------------


@pytest.mark.parametrize("task", ["token-classification", "feature-extraction"])
def test_padding_does_not_change_a_texts_result(task_artifacts: ArtifactsFactory, task: str) -> None:
    # fp32 artifacts: int8 dynamic quantisation scales activations per batch, so there padding
    # moves the numbers a little whatever the server does; fp32 isolates the server's masking.
    model = Model(str(task_artifacts(task, "none")), intra_op_threads=1)
    text = TEXTS[0]
    (alone,) = model.predict([text])
    padded = model.predict([text, LONG])[0]
    if isinstance(alone, Embedding):
        assert isinstance(padded, Embedding)
        np.testing.assert_allclose(padded.embedding, alone.embedding, atol=1e-5)
    else:
        assert isinstance(alone, TokenPrediction) and isinstance(padded, TokenPrediction)
        assert [(t.token, t.start, t.end, t.label) for t in padded.tokens] == [
            (t.token, t.start, t.end, t.label) for t in alone.tokens]
        assert [t.score for t in padded.tokens] == pytest.approx([t.score for t in alone.tokens], abs=1e-5)
        assert [e.text for e in padded.entities] == [e.text for e in alone.entities]


@pytest.mark.parametrize(
    ("task", "extra"),
    [
        ("text-classification", {}),
        ("token-classification", {"aggregation": "simple"}),
        ("feature-extraction", {"pooling": "mean", "normalized": True, "dim": HIDDEN}),
    ],
)
def test_metadata_reports_the_task(task_artifacts: ArtifactsFactory, task: str, extra: dict[str, Any]) -> None:
    app = App(Model(str(task_artifacts(task)), intra_op_threads=1), Settings())
    base = {"model_name", "task", "architecture", "labels", "onnx_file", "onnx_sha256",
            "quantization", "max_length", "advisor_version", "limits"}
    assert set(app.metadata) == base | set(extra)
    assert app.metadata["task"] == task
    assert app.metadata["labels"] == TASK_LABELS[task]
    assert {k: app.metadata[k] for k in extra} == extra


def test_metadata_over_http(feature_server: Server, token_server: Server) -> None:
    assert call(feature_server, "GET", "/metadata")[1]["task"] == "feature-extraction"
    assert call(token_server, "GET", "/metadata")[1]["task"] == "token-classification"


NO_TORCH_SERVE = r"""
import json, sys
sys.modules["torch"] = None          # any import of torch or transformers now fails
sys.modules["transformers"] = None
from advisor.serve.model import Model
from advisor.serve.app import App
from advisor.serve.settings import Settings
app = App(Model(sys.argv[1], 1), Settings())
print(json.dumps(app.predict(b'{"texts": ["Alice lives in Paris", "dull"]}')))
"""


@pytest.mark.parametrize("task", SUPPORTED_TASKS)
def test_serving_imports_no_torch_or_transformers(task_artifacts: ArtifactsFactory, task: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SERVE, str(task_artifacts(task))],
        capture_output=True, text=True, check=False, timeout=120, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["predictions"]) == 2


# --- the contract ---------------------------------------------------------------------


def test_the_image_build_accepts_exactly_the_served_tasks() -> None:
    assert set(SERVED_TASKS) == set(SUPPORTED_TASKS)


def _copy_with(src: Path, dest: Path, serving: dict[str, Any] | None = None,
               labels: list[str] | None = None) -> Path:
    for name in ("tokenizer.json", "model.onnx"):
        (dest / name).write_bytes((src / name).read_bytes())
    doc = json.loads((src / "serving.json").read_text()) | (serving or {})
    (dest / "serving.json").write_text(json.dumps(doc))
    (dest / "labels.json").write_text(json.dumps(
        labels if labels is not None else json.loads((src / "labels.json").read_text())))
    return dest


def test_a_labelled_task_without_labels_is_refused(task_artifacts: ArtifactsFactory, tmp_path: Path) -> None:
    art = _copy_with(task_artifacts("token-classification", "none"), tmp_path, labels=[])
    with pytest.raises(ModelError, match="token-classification model needs at least one label"):
        Model(str(art))


def test_labels_that_do_not_match_the_graph_are_refused(task_artifacts: ArtifactsFactory, tmp_path: Path) -> None:
    art = _copy_with(task_artifacts("token-classification", "none"), tmp_path, labels=["O", "B-X"])
    with pytest.raises(ModelError, match=r"scores 5 labels; labels\.json names 2"):
        Model(str(art))


def test_a_task_that_does_not_match_the_graph_is_refused(task_artifacts: ArtifactsFactory, tmp_path: Path) -> None:
    # a feature-extraction graph (last_hidden_state) declared as text-classification
    art = _copy_with(task_artifacts("feature-extraction", "none"), tmp_path,
                     serving={"task": "text-classification"}, labels=["A", "B"])
    with pytest.raises(ModelError, match="last_hidden_state"):
        Model(str(art))
