"""``python -m tests.security.write_child DEST VARIANT``: write a multi-layer image, then exit.

The image is ~72 MB in six incompressible layers, so writing it takes long enough to be
killed in the middle. ``VARIANT`` seeds the bytes: ``old`` and ``new`` give two different
images. ``BEGIN`` is printed (flushed) just before the write starts.
"""

from __future__ import annotations

import random
import sys

from advisor.oci.writer import write_image

LAYERS = 6
LAYER_BYTES = 12 << 20


def layers(variant: str) -> list[dict[str, bytes]]:
    rng = random.Random(variant)
    return [{f"data/{variant}/layer{i}.bin": rng.randbytes(LAYER_BYTES), f"etc/v{i}": variant.encode()}
            for i in range(LAYERS)]


def main(dest: str, variant: str) -> int:
    spec = layers(variant)
    print("BEGIN", flush=True)
    written = write_image(dest, spec, {"config": {"Env": [f"VARIANT={variant}"]}})
    print("DONE", written.manifest_digest, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
