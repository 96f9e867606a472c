"""Gateway config: strict, with key-path errors; what it subscribes to; and which team a lead goes to."""

from pathlib import Path

import pytest

from gateway.cli import subscriptions
from gateway.config import GatewayConfigError, load_gateway_config
from gateway.dedupe.leads import MergePolicy
from gateway.dedupe.policies import merge_policies
from gateway.dedupe.routing import Router
from gateway.ingest.batches import INGESTED_KINDS

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
    ("[dedupe]\nhorizon_s = 100\n", "dedupe: Value error, horizon_s (100) must be at least 2 x the largest "
                                     "merge_gap_s (900)"),
    ("[dedupe.categories.illegal_dumping]\nmerge_gap_s = 5000\n",
     "dedupe: Value error, horizon_s (7200) must be at least 2 x the largest merge_gap_s (5000)"),
    ("[dedupe.categories.street_vending]\nmerge_gap_s = -1\n",
     "dedupe.categories.street_vending.merge_gap_s: Input should be greater than 0"),
    ("[dedupe.districts.old-town.categories.street_vending]\nmin_detection = 1\n",
     "dedupe.districts.old-town.categories.street_vending.min_detection: Extra inputs are not permitted"),
    ("[dedupe.districts.\"Old Town\"]\nmerge_radius_m = 10\n", "dedupe.districts.Old Town.[key]: String should match"),
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


def test_the_readme_example_is_a_valid_config_and_means_what_it_says(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("Gateway config (all optional):", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    config = config_from(tmp_path, example)
    policies = merge_policies(config.dedupe)
    assert policies.for_("illegal_dumping", "old-town") == MergePolicy(30, 3600, 1)
    assert policies.for_("street_vending", "market") == MergePolicy(10, 900, 2)
    assert policies.for_("illegal_dumping", "market") == MergePolicy(10, 3600, 2)
