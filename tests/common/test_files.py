"""Owner-only folders and files for the spool and the evidence, and where secrets may come from."""

import stat

import pytest

from common.broker import BrokerSettings
from common.files import private_dir, private_file
from edge.spool import Spool
from gateway.config import GatewayConfigError, load_gateway_config
from gateway.store.evidence import EvidenceStore


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_folders_and_files_are_owner_only_and_existing_parents_keep_their_mode(tmp_path):
    tmp_path.chmod(0o755)
    private_file(tmp_path / "a" / "b" / "f")
    assert mode(tmp_path) == 0o755
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == 0o700
    assert mode(tmp_path / "a" / "b" / "f") == 0o600
    loose = tmp_path / "loose"
    loose.write_text("")
    loose.chmod(0o644)
    assert mode(private_file(loose)) == 0o600
    assert private_dir(tmp_path / "a") == tmp_path / "a"


def test_the_spool_and_the_evidence_are_owner_only(tmp_path):
    spool = Spool(tmp_path / "box" / "spool.db")
    spool.append("city/d/b/health", lambda seq: b"{}", telemetry=True)
    for name in ("spool.db", "spool.db-wal"):
        assert mode(tmp_path / "box" / name) == 0o600, name
    assert mode(tmp_path / "box") == 0o700
    store = EvidenceStore(tmp_path / "evidence")
    sha = store.save(b"\xff\xd8jpeg\xff\xd9")
    assert mode(store.path_for(sha)) == 0o600
    assert mode(tmp_path / "evidence") == mode(store.path_for(sha).parent) == 0o700


def test_gateway_secrets_come_from_files_or_the_environment(tmp_path, monkeypatch):
    secret = tmp_path / "influx-password"
    secret.write_text("s3cret-from-file\n")
    config = load_gateway_config(None, {"influx.username": "gw", "influx.password_file": str(secret)})
    assert config.influx.password() == "s3cret-from-file"
    monkeypatch.setenv("INFLUX_TOKEN", "t0ken")
    assert load_gateway_config(None, {"influx.token_env": "INFLUX_TOKEN"}).influx.token() == "t0ken"
    with pytest.raises(GatewayConfigError, match="influx: Value error, password_env and password_file"):
        load_gateway_config(None, {"influx.password_env": "X", "influx.password_file": str(secret)})
    with pytest.raises(GatewayConfigError, match="the URL holds credentials") as refused:
        load_gateway_config(None, {"influx.url": "http://gw:s3cret@127.0.0.1:8086"})
    assert "s3cret" not in str(refused.value)
    with pytest.raises(ValueError, match="the URL holds credentials"):
        BrokerSettings(url="mqtts://gw:s3cret@127.0.0.1:8883")
