"""Box configs: the shipped ones validate, bad ones name the key and the problem."""

from pathlib import Path

import pytest

from edge.cli import main as edge_main
from edge.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "firmware_configs").glob("*.toml"))

MINIMAL = {
    "version": 1, "box": "box-1", "district": "old-town",
    "detector": {"model": "m.onnx"},
    "cameras": [{"name": "north", "source": "clip.mp4", "zones": [
        {"name": "plaza", "type": "no_vending", "polygon": [[0, 0], [1, 0], [1, 1]], "lat": 48.2, "lon": 16.3}]}],
}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_configs_validate(path):
    from edge.sensors import check_sensors

    config = load_config(path)
    assert config.detector is None or config.detector.model.is_file()
    assert check_sensors(config.sensors, config.sensor_profiles) == []
    assert len(config.config_hash()) == 16


def test_there_are_shipped_configs_for_each_kind_of_box():
    configs = [load_config(path) for path in SHIPPED]
    assert any(any(z.type == "no_vending" for c in b.cameras for z in c.zones) for b in configs)
    assert any(any(z.type == "dumping_hotspot" for c in b.cameras for z in c.zones) and b.sensors for b in configs)
    assert any(not b.cameras and len(b.sensors) >= 2 for b in configs)


def test_defaults_fill_in():
    config = parse_config(MINIMAL)
    assert config.rules.street_vending.dwell_s == 60.0
    assert config.mqtt.url == "mqtt://127.0.0.1:1883"


def _broken(path: list, value):
    import copy

    raw = copy.deepcopy(MINIMAL)
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (["box"], "Box 1", "box: String should match pattern"),
        (["detector", "threads"], 0, "detector.threads: Input should be greater than or equal to 1"),
        (["cameras", 0, "zones", 0, "type"], "no_parking", "cameras.0.zones.0.type: Input should be"),
        (["cameras", 0, "zones", 0, "polygon"], [[0, 0], [2, 0], [1, 1]], "cameras.0.zones.0: Value error, polygon point 1"),
        (["cameras", 0, "fps"], -1, "cameras.0.fps: Input should be greater than 0"),
        (["mqtt"], {"urll": "x"}, "mqtt.urll: Extra inputs are not permitted"),
        (["version"], 2, "version: Input should be 1"),
    ],
)
def test_bad_configs_name_the_key(path, value, expected):
    with pytest.raises(ConfigError) as caught:
        parse_config(_broken(path, value))
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


def test_validate_command_prints_every_problem(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('version = 1\nbox = "Bad"\ndistrict = "x"\nsurprise = 1\n')
    assert edge_main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "box: String should match pattern" in out
    assert "surprise: Extra inputs are not permitted" in out


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("version = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    config = parse_config(_broken(["spool"], {"path": "state/spool.db"}), base=tmp_path)
    assert config.spool.path == tmp_path / "state" / "spool.db"
    assert config.detector.model == tmp_path / "m.onnx"
    assert config.cameras[0].source == str(tmp_path / "clip.mp4")


def test_the_hash_does_not_depend_on_where_the_files_are(tmp_path):
    here = parse_config(_broken(["spool"], {"path": "a/spool.db"}), base=tmp_path)
    there = parse_config(_broken(["spool"], {"path": "b/spool.db"}), base=tmp_path / "elsewhere")
    assert here.config_hash() == there.config_hash()
    changed = parse_config(_broken(["cameras", 0, "fps"], 2.0), base=tmp_path)
    assert changed.config_hash() != here.config_hash()


def test_an_unknown_detector_type_is_refused_with_the_known_ones():
    from edge.detectors import registered_families

    with pytest.raises(ConfigError) as caught:
        parse_config(_broken(["detector", "type"], "nonsense"))
    [problem] = caught.value.problems
    assert problem.startswith("detector.type: ")
    assert all(repr(family) in problem for family in registered_families())


@pytest.mark.parametrize("family", ["nanodet", "ssd", "yolov5", "yolov8"])
def test_every_registered_detector_type_is_accepted(family):
    from edge.detectors import registered_families

    assert family in registered_families()
    assert parse_config(_broken(["detector", "type"], family)).detector.type == family


def test_the_config_learns_the_detector_types_without_loading_onnxruntime():
    import subprocess
    import sys

    loaded = subprocess.run([sys.executable, "-c", "import sys, edge.config; print('onnxruntime' in sys.modules)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"
