"""No payload on any ingested topic crashes the ingest or slips past as half-valid.

Each message ends either as a dead letter with a reason, or as the valid data
it happens to be; and whatever ends up written, InfluxDB takes it as exactly
the points meant, so no topic or payload can inject line protocol.
"""

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract import Detection, Kind, Topic
from gateway.ingest.pipeline import check
from gateway.ingest.validate import Rejected
from gateway.transport.incoming import Incoming

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)
TOPICS = [str(Topic("old-town", "box-1", kind)) for kind in (Kind.DETECTION, Kind.SENSOR, Kind.HEALTH,
                                                               Kind.STATUS)]
TOPICS.append(str(Topic("old-town", "box-1", Kind.EVIDENCE, "d-1")))
VALID = json.loads(Detection(id="d-1", box="box-1", district="old-town", seq=1, ts=NOW - 1000, camera="north",
                             category="street_vending", label="person", score=0.8, bbox=(0.1, 0.1, 0.2, 0.2),
                             zone="plaza", track=1, dwell_s=60.0, lat=48.2, lon=16.3, model="m",
                             config="abcdef12").encode())
LABEL = 'x" y=1,evil=v 1 #=x'
MEASUREMENTS_WE_WRITE = {"detection", "lead", "sensor", "box_health", "box_status", "box_gap",
                         "evidence", "rejected"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=12), json_values, max_size=8)
# A valid detection with one field replaced: most of the interesting half-valid payloads.
mutated_detections = st.builds(lambda key, value: {**VALID, key: value}, st.sampled_from(sorted(VALID)), json_values)
payloads = (st.binary(max_size=300)
            | json_objects.map(lambda o: json.dumps(o).encode())
            | mutated_detections.map(lambda o: json.dumps(o).encode()))
nasty_names = st.text(alphabet=st.sampled_from(list('ab-_ ,=\\"\n\r\t#\x00/+')), min_size=1, max_size=12)
topics = st.sampled_from(TOPICS) | st.builds(lambda box, kind: f"city/old-town/{box}/{kind}", nasty_names,
                                              st.sampled_from(["detection", "health", "sensor", "status"]))


@pytest.fixture
def make_ingest_once(make_ingest):
    """One ingest for all examples of a test: state carries over, as in a long-running gateway."""
    made = []

    def once():
        if not made:
            made.append(make_ingest())
        return made[0]
    return once


@given(messages=st.lists(st.tuples(topics, payloads), min_size=1, max_size=6))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_message_ends_as_data_or_as_a_dead_letter_with_a_reason(make_ingest_once, influx, messages):
    ingest = make_ingest_once()
    batch = [Incoming(topic, payload, 0, 1, time.time()) for topic, payload in messages]
    verdicts = [check(message, ingest.now_ms()) for message in batch]
    points = ingest.handle(batch)
    assert ingest.write_until_stored(points)
    assert ingest.stats["rejected_by_influx"] == 0 and ingest.stats["lost_points"] == 0
    rejected = [p for p in points if p.measurement == "rejected"]
    refused = [v for v in verdicts if isinstance(v.outcome, Rejected)]
    assert len(rejected) >= len(refused)
    assert all(point.fields["reason"] for point in rejected)
    for verdict in verdicts:
        kind = None if isinstance(verdict.outcome, Rejected) else verdict.outcome.topic.kind
        if kind not in (None, Kind.EVIDENCE, Kind.DETECTION):   # a detection's point is made with its ledger entry
            assert verdict.point is not None


def test_nothing_was_injected(make_ingest_once, influx):
    ingest = make_ingest_once()
    hostile = [
        ("city/old-town/x\nevil,box=pwn v=1 1/detection", b"{}"),
        ("city/old-town/a b,c=d/health", b'"\n\\'),
        ("city/old-town/box-1/detection", json.dumps({**VALID, "label": LABEL}).encode()),
        ("city/old-town/box-1/detection", json.dumps({**VALID, "id": "d-2", "seq": 2,
                                                        "camera": "a,b=c d"}).encode()),
    ]
    points = ingest.handle([Incoming(t, p, 0, 1, time.time()) for t, p in hostile])
    assert ingest.write_until_stored(points)
    measurements = {row["name"] for row in influx.query("SHOW MEASUREMENTS")}
    assert measurements <= MEASUREMENTS_WE_WRITE and "evil" not in measurements
    boxes = {row["value"] for row in influx.query('SHOW TAG VALUES FROM "rejected" WITH KEY = "box"')}
    assert boxes <= {"box-1"}
    [row] = influx.query('SELECT "id" FROM "detection" GROUP BY "label"')
    assert row["label"] == LABEL and row["id"] == "d-1"
    assert len(influx.query('SELECT * FROM "rejected"')) == 3
