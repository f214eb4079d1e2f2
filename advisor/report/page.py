"""The HTML scaffold every report shares: one self-contained page, inline CSS, no script,
no network (the reports are opened from disk, mailed, attached to CI runs)."""

from __future__ import annotations

from html import escape

#: What every page looks like; a report adds its own rules after these.
BASE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;color:#212529}
svg{max-width:100%;height:auto}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dee2e6}
table{border-collapse:collapse;font-size:.9rem}th{background:#f8f9fa}
th,td{border:1px solid #dee2e6;padding:4px 6px;vertical-align:top}
code{font-size:.85rem;word-break:break-all}figure{margin:.8rem 0}
figcaption{font-size:.85rem;color:#495057}
"""


def page(title: str, body: str, css: str = "") -> str:
    """A whole HTML document: ``title`` in the tab, ``body`` as given, ``css`` after BASE_CSS."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{BASE_CSS}{css}</style></head><body>"
        f"{body}</body></html>\n"
    )
