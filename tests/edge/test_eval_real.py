"""`edge eval` on part of the project's incident evaluation set: the shipped rules on real footage.

The whole set (and its held-out part) is measured by `edge eval tests/data/eval`
(numbers in BENCHMARKS.md); this runs a few clips on every test run.
"""

import json
from pathlib import Path

import pytest

from edge.cli import main as edge_main

pytestmark = pytest.mark.model

EVAL = Path(__file__).resolve().parents[2] / "tests" / "data" / "eval"
CLIPS = {
    "vtest-vendor-kerb": "a man stands by the cones that the detector also calls people",
    "hall-table": "a table left in a hall people cross",
    "vtest-taken-away": "a box taken away before its dwell time",
    "lot-cars-park": "cars park in the dumping zone and leave",
    "hall-bag-early": "a bag put down in the left-object finder's first seconds",
}


def test_a_few_clips_of_the_evaluation_set(capsys):
    missing = [name for name in CLIPS if not (EVAL / "clips" / f"{name}.mp4").is_file()]
    assert not missing, f"clips {missing} are not built: run bash scripts/setup.sh (tests/data/eval/make_eval.py)"
    assert edge_main(["--log-level", "WARNING", "eval", str(EVAL), "--clips", *CLIPS, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {row["clip"]: row for row in result["clips"]}
    for name, row in rows.items():
        assert row["matched"] == row["incidents"] and row["false"] == [], (name, CLIPS[name], row)
    assert result["overall"]["recall"] == 1.0 and result["overall"]["precision"] == 1.0
    assert result["overall"]["false_in_control"] == 0 and result["overall"]["control_min"] > 4
