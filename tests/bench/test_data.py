from __future__ import annotations

from pathlib import Path

import pytest

from advisor.bench.cases import DEFAULT_CASES, BenchCase, long_texts
from advisor.bench.data import accuracy, agreement, default_data_path, load_csv, same_label
from advisor.errors import BadInputError, UsageError

LABELS = ("NEGATIVE", "POSITIVE")


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_csv_keeps_order_extra_columns_and_limit(tmp_path: Path) -> None:
    path = _csv(tmp_path, 'text,label,source\n"good, really",1,rt\nbad,0,rt\nmeh,POSITIVE,x\n')
    data = load_csv(path)
    assert data.texts == ("good, really", "bad", "meh")
    assert data.labels == ("1", "0", "POSITIVE")
    assert len(load_csv(path, limit=2)) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [("text,score\na,1\n", "expected columns"), ("text,label\n", "no labelled rows")],
)
def test_load_csv_refuses_bad_files(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        load_csv(_csv(tmp_path, content))


def test_load_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cannot read") as info:
        load_csv(tmp_path / "nope.csv")
    assert info.value.exit_code == 3


def test_labels_match_by_name_index_or_label_n() -> None:
    assert same_label("POSITIVE", "1", LABELS)
    assert same_label("positive", "POSITIVE", LABELS)
    assert same_label("LABEL_0", "NEGATIVE", LABELS)
    assert not same_label("POSITIVE", "0", LABELS)
    assert not same_label("POSITIVE", "neutral", LABELS)


def test_accuracy_and_agreement() -> None:
    assert (
        accuracy(["POSITIVE", "NEGATIVE", "POSITIVE", "NEGATIVE"], ["1", "0", "0", "0"], LABELS)
        == 0.75
    )
    assert agreement(["POSITIVE", "NEGATIVE"], ["LABEL_1", "LABEL_1"], LABELS) == 0.5
    with pytest.raises(ValueError):
        accuracy(["POSITIVE"], ["1", "0"], LABELS)


def test_default_data_follows_advisor_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ADVISOR_CACHE", str(tmp_path))
    assert default_data_path() == tmp_path / "data" / "rotten_tomatoes_heldout_1000.csv"


def test_cases_parse_and_name() -> None:
    assert [c.name for c in DEFAULT_CASES] == ["b1_s32", "b1_s128", "b8_s128", "b32_s128"]
    assert BenchCase.parse("b8_s64") == BenchCase(8, 64)
    for bad in ("b0_s128", "8x128", "b1_s2"):
        with pytest.raises(UsageError):
            BenchCase.parse(bad)


def test_long_texts_joins_real_sentences_to_length() -> None:
    out = long_texts(["one two", "three four five"], count=3, min_words=4)
    assert len(out) == 3
    assert all(len(t.split()) >= 4 for t in out)
    assert out[0] == "one two three four five"
