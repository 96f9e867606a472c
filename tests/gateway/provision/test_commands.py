"""The provisioning commands' files: modes, formats, and what they print (never a password or a key)."""

from __future__ import annotations

import stat
import tomllib

from edge.config import MqttConfig
from edge.patchgate import RemoteConfigSettings
from gateway.cli import main as gateway_main
from gateway.config import MqttSettings
from gateway.provision.accounts import Deployment
from gateway.provision.broker import password_line


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_provisioning_writes_owner_only_secrets_and_prints_none(tmp_path, capsys):
    folder = tmp_path / "deployment"
    assert gateway_main(["provision-box", "market-st-01", "--district", "old-town", "--dir", str(folder),
                         "--install-dir", "/etc/streetwatch"]) == 0
    assert gateway_main(["provision-box", "harbour-07", "--district", "harbour", "--auth", "cert",
                         "--dir", str(folder)]) == 0
    assert gateway_main(["provision-gateway", "gateway-1", "--dir", str(folder)]) == 0
    assert gateway_main(["provision-operator", "ops-anna", "--district", "old-town", "--dir", str(folder)]) == 0
    printed = capsys.readouterr()
    deployment = Deployment(folder)

    for secret in (deployment.ca_key, deployment.broker_dir / "server.key", deployment.broker_dir / "passwd",
                   deployment.bundle("market-st-01") / "mqtt-password", deployment.bundle("harbour-07") / "harbour-07.key",
                   deployment.bundle("ops-anna") / "operator.key"):
        assert mode(secret) == 0o600, secret
    assert mode(folder) == 0o700
    for name in ("market-st-01", "gateway-1", "ops-anna"):
        password = (deployment.bundle(name) / "mqtt-password").read_text().strip()
        assert len(password) >= 40 and password not in printed.out + printed.err
    key = (deployment.bundle("ops-anna") / "operator.key").read_text()
    assert all(line not in printed.out for line in key.splitlines() if line and not line.startswith(("#", "-")))
    # The operator's [remote_config] table, ready for `edge run --remote-config`, trusts its public key alone.
    remote = RemoteConfigSettings(**tomllib.loads((deployment.bundle("ops-anna") / "remote_config.toml").read_text())[
        "remote_config"])
    assert remote.trusted_keys == [(deployment.bundle("ops-anna") / "operator.pub").read_text().strip()]
    assert not remote.accept_unsigned

    # The password file holds Mosquitto's own PBKDF2-SHA512 hash, not the password.
    passwd = (deployment.broker_dir / "passwd").read_text()
    assert sorted(line.split(":")[0] for line in passwd.splitlines()) == ["gateway-1", "market-st-01", "ops-anna"]
    assert all(line.split(":", 1)[1].startswith("$7$101$") for line in passwd.splitlines())

    # Each [mqtt] table is ready for the config it goes into, and names files, not secrets.
    box = tomllib.loads((deployment.bundle("market-st-01") / "mqtt.toml").read_text())["mqtt"]
    assert MqttConfig.model_validate(box).password_file.as_posix() == "/etc/streetwatch/mqtt-password"
    assert box["url"] == "mqtts://127.0.0.1:8883"
    cert_box = MqttConfig.model_validate(tomllib.loads((deployment.bundle("harbour-07") / "mqtt.toml").read_text())["mqtt"])
    assert cert_box.url == "mqtts://127.0.0.1:8884" and cert_box.cert_file is not None and cert_box.username is None
    gateway = MqttSettings.model_validate(tomllib.loads((deployment.bundle("gateway-1") / "mqtt.toml").read_text())["mqtt"])
    assert gateway.client_id == "gateway-1"

    acl = (deployment.broker_dir / "acl").read_text()
    assert "user market-st-01\ntopic write city/old-town/market-st-01/detection" in acl
    assert "topic read city/old-town/market-st-01/config\n" in acl
    operator_block = acl.split("user ops-anna\n")[1].split("\n\n")[0].splitlines()
    assert sorted(operator_block) == ["topic read city/old-town/+/config/ack", "topic read city/old-town/+/status",
                                      "topic readwrite city/old-town/+/config"]
    assert "\npattern " not in acl and "topic read city/#" not in acl
    assert "allow_anonymous false" in deployment.security_conf.read_text()
    assert "ops-anna:" in printed.out     # the public key line for boxes' trusted_keys


def test_a_name_is_provisioned_once_and_names_are_checked(tmp_path, capsys):
    folder = str(tmp_path / "d")
    assert gateway_main(["provision-box", "b-1", "--district", "x", "--dir", folder]) == 0
    assert gateway_main(["provision-operator", "b-1", "--dir", folder]) == 2
    assert "already provisioned" in capsys.readouterr().err
    assert gateway_main(["provision-box", "Bad Name", "--district", "x", "--dir", folder]) == 2
    assert gateway_main(["provision-box", "b-2", "--district", "x", "--dir", folder]) == 0


def test_password_line_has_mosquittos_format():
    """``$7$`` PBKDF2-SHA512 as mosquitto_passwd writes it; that Mosquitto accepts it is what the broker tests show."""
    line = password_line("u", "s3cret", salt=bytes.fromhex("00112233445566778899aabb"))
    name, rest = line.split(":", 1)
    _, algo, iterations, salt64, hash64 = rest.split("$")
    assert (name, algo, iterations, salt64) == ("u", "7", "101", "ABEiM0RVZneImaq7")
    assert len(hash64) == 88 and "s3cret" not in line           # 64 bytes, base64


def test_init_makes_the_ca_and_the_broker_certificate_once(tmp_path, capsys):
    folder = tmp_path / "d"
    args = ["provision-init", "--dir", str(folder), "--port", "9883", "--cert-port", "9884",
            "--server-name", "127.0.0.1", "--server-name", "localhost"]
    assert gateway_main(args) == 0
    ca = (folder / "ca" / "ca.pem").read_bytes()
    conf = (folder / "broker" / "security.conf").read_text()
    assert "listener 9883 127.0.0.1" in conf and "listener 9884 127.0.0.1" in conf
    assert "require_certificate true\nuse_identity_as_username true" in conf
    assert gateway_main(args) == 0
    assert (folder / "ca" / "ca.pem").read_bytes() == ca       # kept, not replaced
    assert "security.conf" in capsys.readouterr().out
