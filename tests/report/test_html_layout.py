"""The HTML findings table in real headless Chromium at 1,400 and 800 px: rule ids on one
line, a paths column wide enough to read, the page using the width it has, no sideways scroll."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from advisor.advise.advice import build_advice
from advisor.report.advise import render
from tests.advise.test_advice import _combined
from tests.bench.chromium import FLAGS, chromium

# measures the laid-out page and writes the numbers into the DOM that --dump-dom prints
PROBE = """<script>
window.addEventListener('load', () => {
  const ids = [...document.querySelectorAll('td.id code')];
  const paths = [...document.querySelectorAll('td.paths')].map(td => td.getBoundingClientRect().width);
  const out = {
    ids: ids.length,
    body: document.body.getBoundingClientRect().width,
    scroll: document.documentElement.scrollWidth,
    wrapped_ids: ids.filter(c => c.getClientRects().length > 1 || c.getBoundingClientRect().height > 24).map(c => c.textContent),
    min_paths: Math.min(...paths),
  };
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _measure(html: Path, width: int, tmp: Path) -> dict[str, object]:
    exe = chromium()
    assert exe is not None
    proc = subprocess.run([exe, *FLAGS, f"--user-data-dir={tmp / f'profile{width}'}", f"--window-size={width},2000",
                           "--dump-dom", html.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout)
    assert m, proc.stderr[-2000:]
    return json.loads(m.group(1).replace("&quot;", '"'))  # type: ignore[no-any-return]


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_findings_table_reads_at_1400_and_800(tmp_path: Path) -> None:
    page = render(build_advice(_combined(with_model=True).context()), "html")
    html = tmp_path / "advise.html"
    html.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    wide = _measure(html, 1400, tmp_path)
    assert int(wide["ids"]) >= 19  # type: ignore[call-overload]  # the rule and severity of each finding
    assert wide["wrapped_ids"] == [] and float(wide["min_paths"]) >= 250  # type: ignore[arg-type]
    assert float(wide["body"]) >= 1250, wide  # type: ignore[arg-type]  # was 1,130 of 1,400 px
    narrow = _measure(html, 800, tmp_path)
    assert narrow["wrapped_ids"] == [] and float(narrow["min_paths"]) >= 150, narrow  # type: ignore[arg-type]
    assert int(narrow["scroll"]) <= 800, narrow  # type: ignore[call-overload]
