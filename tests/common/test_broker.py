"""Broker addresses and broker settings, shared by the box and the gateway."""

import pytest

from common.broker import BrokerAddress, BrokerAddressError, BrokerSettings, Credentials


@pytest.mark.parametrize(
    "url, expected",
    [
        ("mqtt://127.0.0.1:1884", BrokerAddress("127.0.0.1", 1884, False)),
        ("mqtt://broker.local", BrokerAddress("broker.local", 1883, False)),
        ("mqtts://broker.local", BrokerAddress("broker.local", 8883, True)),
        ("mqtt://[::1]:1883", BrokerAddress("::1", 1883, False)),
    ],
)
def test_broker_urls(url, expected):
    assert BrokerAddress.parse(url) == expected


@pytest.mark.parametrize("url", ["http://x", "mqtt://", "mqtt://h:99999", "mqtt://h:port", "broker:1883"])
def test_bad_broker_urls(url):
    with pytest.raises(BrokerAddressError):
        BrokerAddress.parse(url)


def test_settings_read_the_password_from_a_file_and_name_the_client_certificate(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\nignored\n")
    settings = BrokerSettings(url="mqtts://broker:8883", username="gw", password_file=secret, ca_file=tmp_path / "ca",
                              cert_file=tmp_path / "crt", key_file=tmp_path / "key")
    assert settings.credentials() == Credentials("gw", "s3cret", str(tmp_path / "ca"), str(tmp_path / "crt"),
                                                 str(tmp_path / "key"))


def test_a_certificate_needs_its_key(tmp_path):
    with pytest.raises(ValueError, match="cert_file and key_file go together"):
        BrokerSettings(cert_file=tmp_path / "crt")


def test_the_password_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SW_TEST_PASSWORD", "from-env")
    assert BrokerSettings(username="gw", password_env="SW_TEST_PASSWORD").credentials().password == "from-env"


@pytest.mark.parametrize("table, problems", [
    ({"url": "mqtts://b:8883", "username": "box-1", "password_file": "p"}, []),
    ({"url": "mqtts://b:8884", "cert_file": "c.pem", "key_file": "c.key"}, []),
    ({"url": "mqtt://b:1883", "username": "box-1", "password_file": "p"}, ["mqtt.url"]),
    ({"url": "mqtts://b:8883"}, ["mqtt.username"]),
    ({}, ["mqtt.url", "mqtt.username"]),                     # the defaults: plain text, anonymous
])
def test_plain_text_and_anonymous_brokers_are_named_by_key(table, problems):
    found = BrokerSettings.model_validate(table).security_problems()
    assert [line.split(":")[0] for line in found] == problems


def test_an_insecure_broker_is_refused_unless_the_config_allows_it_and_then_it_is_logged(caplog):
    import logging

    from common.broker import InsecureAccessError

    log = logging.getLogger("test")
    with pytest.raises(InsecureAccessError) as refused:
        BrokerSettings().check_secure(log)
    assert refused.value.problems[-1] == "mqtt.insecure: set true to allow this explicitly"
    BrokerSettings(url="mqtts://b", username="u", password_file="p").check_secure(log)
    assert not caplog.records
    with caplog.at_level("WARNING"):
        BrokerSettings(insecure=True).check_secure(log, "mqtt://127.0.0.1:1883")
    assert "mqtt.insecure mqtt.url: mqtt://127.0.0.1:1883 is plain text" in caplog.text
