"""``advisor bench``'s reports: report.json and report.md (``render``), report.html (``html``)."""
