"""Fault-injection suite: real boxes (their outbox), Mosquitto, gateway and InfluxDB, a known stream, one fault each.

    .venv/bin/python bench/faults.py [--fast] [--only TEXT] [--run-dir DIR]

Prints one Markdown table row per fault (assigned, stored, lost, dropped by policy, duplicated, duplicate
leads, leads, time to recover) and exits 1 if any fault lost a message or doubled one. ``--fast`` runs the
subset the tests run (``pytest -m faults``). See devstack/faults.py for the faults and RELIABILITY.md for results.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.faults import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
