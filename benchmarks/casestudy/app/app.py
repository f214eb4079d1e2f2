"""Sentiment API: a transformers pipeline behind Flask (the case study's serving app).

POST /predict {"text": "..."} or {"texts": [...]} -> {"predictions": [{"label", "score"}]}
GET /health -> {"status": "ok"} once the model is loaded; GET /metadata -> model facts.
"""

import os

from flask import Flask, jsonify, request
from transformers import pipeline

MODEL_DIR = os.environ.get(
    "MODEL_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "model")
)
MAX_TEXTS = int(os.environ.get("MAX_BATCH", "64"))
MAX_BYTES = int(os.environ.get("MAX_REQUEST_BYTES", str(1 << 20)))

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = MAX_BYTES
classifier = pipeline("text-classification", model=MODEL_DIR, tokenizer=MODEL_DIR, device=-1)


def error(message, status):
    return jsonify({"error": message}), status


@app.errorhandler(404)
def not_found(_):
    return error("not found", 404)


@app.errorhandler(405)
def not_allowed(_):
    return error("method not allowed", 405)


@app.errorhandler(413)
def too_large(_):
    return error(f"request larger than {MAX_BYTES} bytes", 413)


@app.get("/health")
def health():
    return jsonify({"status": "ok"})


@app.get("/metadata")
def metadata():
    config = classifier.model.config
    return jsonify(
        {
            "model": os.path.basename(os.path.normpath(MODEL_DIR)),
            "task": "text-classification",
            "labels": [config.id2label[i] for i in sorted(config.id2label)],
            "runtime": "transformers",
        }
    )


@app.post("/predict")
def predict():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error("body must be a JSON object", 400)
    if "texts" in body:
        texts = body["texts"]
    elif "text" in body:
        texts = [body["text"]]
    else:
        return error('give "text" or "texts"', 400)
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return error('"texts" must be a non-empty list of strings', 400)
    if len(texts) > MAX_TEXTS:
        return error(f"at most {MAX_TEXTS} texts per request", 413)
    outputs = classifier(texts, truncation=True, max_length=512)
    return jsonify(
        {"predictions": [{"label": o["label"], "score": float(o["score"])} for o in outputs]}
    )


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")), threaded=False)
