"""Probe scripts run INSIDE an image's root filesystem with that image's own Python.

They import only the standard library and the image's own ML stack (never advisor), and
speak JSON lines over stdin/stdout (see ``_protocol.py``) so the host can alternate requests
between the original and the slim side.
"""

from __future__ import annotations

from pathlib import Path

PROBES_DIR = Path(__file__).resolve().parent
PROBE_FILES = ("_protocol.py", "torch_probe.py", "ort_probe.py")
