"""The labelled texts both sides are scored on: any CSV with ``text`` and ``label`` columns."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import BadInputError

HELDOUT_NAME = "rotten_tomatoes_heldout_1000.csv"
_LABEL_N = re.compile(r"^LABEL_(\d+)$")


@dataclass(frozen=True, slots=True)
class LabelledData:
    """Texts and their gold labels, as written in the CSV (an int index or a label name)."""

    path: str
    texts: tuple[str, ...]
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)


def default_data_path() -> Path:
    """The sample model's held-out CSV, written by ``sample_models/build_sentiment.py``."""
    root = Path(os.environ.get("ADVISOR_CACHE", "~/.cache/advisor")).expanduser()
    return root / "data" / HELDOUT_NAME


def load_csv(path: Path, limit: int | None = None) -> LabelledData:
    """Read ``text,label`` rows (other columns ignored), at most ``limit`` of them, in order."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = set(reader.fieldnames or ())
            if not {"text", "label"} <= columns:
                raise BadInputError(
                    f"{path}: expected columns 'text' and 'label', found {sorted(columns)}",
                    hint="give --data a CSV with a header line 'text,label'",
                )
            rows = [(r["text"], r["label"].strip()) for r in reader if r["text"]]
    except OSError as e:
        raise BadInputError(
            f"cannot read {path}: {e.strerror}", hint="check the --data path"
        ) from e
    except (csv.Error, UnicodeDecodeError) as e:
        raise BadInputError(f"{path} is not a UTF-8 CSV: {e}", hint="check the --data file") from e
    rows = rows[:limit] if limit else rows
    if not rows:
        raise BadInputError(f"{path} holds no labelled rows", hint="give --data a non-empty CSV")
    return LabelledData(str(path), tuple(t for t, _ in rows), tuple(label for _, label in rows))


def label_index(name: str, labels: Sequence[str]) -> int | None:
    """Class index of a predicted or gold label: its position in ``labels``, an int, or LABEL_N."""
    lowered = [x.lower() for x in labels]
    if name.lower() in lowered:
        return lowered.index(name.lower())
    if name.isdigit():
        return int(name)
    match = _LABEL_N.match(name)
    return int(match.group(1)) if match else None


def same_label(a: str, b: str, labels: Sequence[str]) -> bool:
    """Whether two labels (names or indices) name the same class under ``labels``."""
    if a.lower() == b.lower():
        return True
    ia, ib = label_index(a, labels), label_index(b, labels)
    return ia is not None and ia == ib


def accuracy(predicted: Sequence[str], gold: Sequence[str], labels: Sequence[str]) -> float:
    """Share of predictions that match the gold labels."""
    if len(predicted) != len(gold) or not gold:
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} labels")
    return sum(same_label(p, g, labels) for p, g in zip(predicted, gold, strict=True)) / len(gold)


def agreement(a: Sequence[str], b: Sequence[str], labels: Sequence[str]) -> float:
    """Share of inputs where both sides predict the same class."""
    return accuracy(a, b, labels)
