"""Gateway config: strict, with key-path errors; what it subscribes to; and which team a lead goes to."""

from pathlib import Path

import pytest

from gateway.cli import subscriptions
from gateway.config import GatewayConfigError, load_gateway_config
from gateway.ingest import INGESTED_KINDS
from gateway.routing import Router

MARKET = [[48.20, 16.37], [48.20, 16.38], [48.21, 16.38], [48.21, 16.37]]


def config_from(tmp_path: Path, text: str):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return load_gateway_config(path, {})


def test_polygons_first_in_order_then_the_district_then_the_default(tmp_path):
    config = config_from(tmp_path, f"""
[teams]
old-town = "old-town-patrol"
market = "market-team"

[[districts]]
name = "market"
polygon = {MARKET}

[[districts]]
name = "wide"
team = "wide-team"
polygon = [[48.0, 16.0], [48.0, 17.0], [49.0, 17.0], [49.0, 16.0]]
""")
    router = Router(config.teams, config.districts)
    assert router.route("old-town", 48.205, 16.375).team == "market-team"
    assert router.route("old-town", 48.205, 16.375).source == "area:market"
    assert router.route("old-town", 48.5, 16.5).team == "wide-team"
    assert router.route("old-town", 10.0, 10.0).team == "old-town-patrol"
    assert router.route("harbour", 10.0, 10.0).team == "harbour-street-team"
    assert router.route("harbour", 10.0, 10.0).source == "district:harbour"


@pytest.mark.parametrize("text, problem", [
    ("[dedupe]\nmerge_radius_m = -1\n", "dedupe.merge_radius_m: Input should be greater than 0"),
    ("[dedupe]\nhorizon_s = 100\n", "dedupe: Value error, horizon_s (100) must be at least 2 x merge_gap_s"),
    ("unknown = 1\n", "unknown: Extra inputs are not permitted"),
    ("[[districts]]\nname = \"x\"\npolygon = [[0, 0], [0, 1]]\n", "districts.0.polygon: List should have at least 3"),
    ("[[districts]]\nname = \"x\"\npolygon = [[0, 0], [0, 1], [91, 1]]\n",
     "districts.0.polygon.2.0: Input should be less than or equal to 90"),
    ("[retry]\ninitial_s = -1\n", "retry.initial_s: Input should be greater than or equal to 0"),
    ("serve_districts = [\"old-town\", \"Harbour\"]\n", "serve_districts.1: String should match pattern"),
])
def test_errors_name_the_key_path(tmp_path, text, problem):
    with pytest.raises(GatewayConfigError) as caught:
        config_from(tmp_path, text)
    assert problem in str(caught.value)


def test_subscriptions_cover_every_kind_for_all_districts_or_those_served(tmp_path):
    everything = subscriptions(config_from(tmp_path, ""))
    assert "$share/gateways/city/+/+/detection" in everything and len(everything) == len(INGESTED_KINDS)
    served = subscriptions(config_from(tmp_path, 'serve_districts = ["old-town", "harbour"]\n'))
    assert len(served) == 2 * len(INGESTED_KINDS)
    assert {topic.split("/")[3] for topic in served} == {"old-town", "harbour"}
    assert "$share/gateways/city/harbour/+/evidence/+" in served
