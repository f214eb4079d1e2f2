"""Picking a renderer by format name: one rule for advise's and fix's reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from advisor.errors import UsageError

T = TypeVar("T")


def render_as(formats: Mapping[str, Callable[[T], str]], subject: T, fmt: str) -> str:
    """``formats[fmt](subject)``; an unknown format is a usage error naming the known ones."""
    try:
        renderer = formats[fmt]
    except KeyError as e:
        raise UsageError(f"unknown report format '{fmt}'", hint=f"use one of: {', '.join(formats)}") from e
    return renderer(subject)
