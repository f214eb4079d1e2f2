"""Run a case study image (no daemon) and check it serves: /health, /predict, a 400.

    python benchmarks/casestudy/smoke.py            # the fat image (built or cached first)
    python benchmarks/casestudy/smoke.py --variant fixed

Prints one JSON line: reference, seconds to ready, the predictions, and the error status.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import build  # noqa: E402

from advisor.sandbox import runner  # noqa: E402

TEXTS = ["A warm, funny and moving film.", "Dull, predictable and far too long."]


def post(running: runner.Running, body: bytes) -> tuple[int, Any]:
    conn = running.connection(timeout=60)
    conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    status, data = response.status, json.loads(response.read())
    conn.close()
    return status, data


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=sorted(build.VARIANTS), default="fat")
    p.add_argument("--model-dir", type=Path, help="as for build.py")
    a = p.parse_args()
    result = build.build(a.variant, a.model_dir, quiet=True)
    running = runner.run_image(result.reference, timeout=300)
    try:
        status, predictions = post(running, json.dumps({"texts": TEXTS}).encode())
        bad_status, _ = post(running, b'{"nope": 1}')
    finally:
        running.stop()
    print(json.dumps({"reference": result.reference, "ready_s": round(running.ready_s, 2), "status": status,
                      "predictions": predictions, "bad_request_status": bad_status}))
    return 0 if status == 200 and bad_status == 400 else 1


if __name__ == "__main__":
    raise SystemExit(main())
