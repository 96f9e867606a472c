"""The quick subset of the fault-injection suite (``bench/faults.py --fast``): every fault loses nothing and
doubles nothing, on real boxes' outboxes, Mosquitto, `gateway run` and InfluxDB."""

import pytest

from devstack.faults import FAULTS, run_one

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.fast], ids=lambda f: f.name)
def test_the_stream_survives(fault, tmp_path):
    result = run_one(fault, tmp_path)
    assert result.recover_s is not None, f"the stream was not stored within the deadline: {result}"
    assert (result.lost, result.duplicated, result.duplicate_leads) == (0, 0, 0), result
    assert result.stored == result.assigned - sum(result.dropped.values())


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.name == "broker SIGKILL, gateway disconnected"],
                         ids=lambda f: f.name)
def test_chained_boxes_survive_a_broker_crash_with_the_gateway_away(fault, tmp_path):
    """Boxes that chain and seal, a gateway that requires verified messages: what the broker lost and the boxes
    send again verifies too (a seal of the newest message sent again), so nothing is lost or rejected."""
    result = run_one(fault, tmp_path, chains=True)
    assert result.recover_s is not None, f"the stream was not stored within the deadline: {result}"
    assert (result.lost, result.duplicated, result.duplicate_leads) == (0, 0, 0), result
