"""Render an ``Advice`` as text, json, markdown or one self-contained HTML page."""

from __future__ import annotations

from collections.abc import Callable

from advisor.advise.advice import Advice
from advisor.report.advise.html import render_html
from advisor.report.advise.jsonfmt import render_json, to_dict
from advisor.report.advise.markdown import render_markdown
from advisor.report.advise.text import render_text
from advisor.report.formats import render_as

FORMATS: dict[str, Callable[[Advice], str]] = {
    "text": render_text,
    "json": render_json,
    "markdown": render_markdown,
    "html": render_html,
}


def render(advice: Advice, fmt: str = "text") -> str:
    return render_as(FORMATS, advice, fmt)


__all__ = ["FORMATS", "render", "to_dict"]
