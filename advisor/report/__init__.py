"""Reports for people and scripts: ``advise`` (text, json, markdown, html) and ``bench``
(report.json, report.md, report.html), with their SVG charts."""
