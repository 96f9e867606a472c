#!/usr/bin/env bash
# The test suite: unit tests, the shipped model on real frames, and
# integration tests on real Mosquitto and InfluxDB started by the fixtures.
# First the import contracts in pyproject.toml (layers, independence), so CI checks them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
