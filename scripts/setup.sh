#!/usr/bin/env bash
# Installs what the project needs on Debian 12 (run as root): Mosquitto and
# InfluxDB from Debian, and a Python 3.11+ virtual environment in .venv with both roles
# (box and gateway) and the test tools installed.
# Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# chromium and chromium-driver: the lead desk's browser tests (headless, driven by Selenium).
APT_PACKAGES=(mosquitto influxdb socat openssl chromium chromium-driver)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # The project runs its own instances; the packaged system services are not needed.
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: Python 3.11 or newer is needed, {sys.executable} is {sys.version.split()[0]}")
PY

stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
    echo "setup: creating .venv"
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[edge,gateway,test]'
    rm -f .venv/.installed-*
    touch "$stamp"
fi

# The incident evaluation clips are rebuilt from their checksummed sources, not
# kept in the repository; a run with nothing to rebuild takes a fraction of a second.
.venv/bin/python tests/data/eval/make_eval.py
