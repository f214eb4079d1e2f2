"""Latency cases: a batch size and a sequence length, named like ``b8_s128``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from advisor.errors import UsageError

_NAME = re.compile(r"^b(\d+)_s(\d+)$")


@dataclass(frozen=True, slots=True, order=True)
class BenchCase:
    batch: int
    seq: int

    @property
    def name(self) -> str:
        return f"b{self.batch}_s{self.seq}"

    @classmethod
    def parse(cls, name: str) -> BenchCase:
        match = _NAME.match(name.strip())
        if not match or int(match.group(1)) < 1 or int(match.group(2)) < 4:
            raise UsageError(f"bad latency case {name!r}", hint="write cases like b1_s128,b8_s128")
        return cls(int(match.group(1)), int(match.group(2)))


DEFAULT_CASES = (BenchCase(1, 32), BenchCase(1, 128), BenchCase(8, 128), BenchCase(32, 128))


def long_texts(texts: Sequence[str], count: int, min_words: int) -> list[str]:
    """``count`` texts of at least ``min_words`` words, made by joining the data's texts in order.

    The probes then cut them to exactly the case's token count, so every case is made of
    real sentences, the same ones on both sides.
    """
    if not texts:
        raise ValueError("no texts to build cases from")
    out: list[str] = []
    i = 0
    while len(out) < count:
        words: list[str] = []
        while len(words) < min_words:
            words.extend(texts[i % len(texts)].split())
            i += 1
        out.append(" ".join(words))
    return out
