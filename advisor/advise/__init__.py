"""The advise pipeline: facts about an image (``facts/``), rules that turn them into findings
and recommendations (``rules/``), and the fix files they imply (``fixes/``)."""
