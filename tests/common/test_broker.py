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
