"""Render a ``FixResult`` as text, json or one self-contained HTML page."""

from __future__ import annotations

from collections.abc import Callable

from advisor.fix.model import FixResult
from advisor.report.fix.html import render_html
from advisor.report.fix.jsonfmt import render_json, to_dict
from advisor.report.fix.text import render_text
from advisor.report.formats import render_as

FORMATS: dict[str, Callable[[FixResult], str]] = {
    "text": render_text,
    "json": render_json,
    "html": render_html,
}


def render(result: FixResult, fmt: str = "text") -> str:
    return render_as(FORMATS, result, fmt)


__all__ = ["FORMATS", "render", "to_dict"]
