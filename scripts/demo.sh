#!/usr/bin/env bash
# The demo: real Mosquitto and InfluxDB on free loopback ports, a box running
# the shipped detector on the demo clip, the gateway turning its detections
# into leads, and the leads printed at the end. Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m devstack.demo "$@"
