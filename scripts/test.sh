#!/usr/bin/env bash
# The test suite: unit tests, the shipped model on real frames, and
# integration tests on real Mosquitto and InfluxDB started by the fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
