"""provision-box makes the box's signing key: private half in its bundle, public half where gateways look."""

from __future__ import annotations

import stat
import tomllib

from common.signing import load_signer, public_keys_in
from edge.config import SecurityConfig
from gateway.cli import main as gateway_main
from gateway.config import GatewayConfig
from gateway.provision.accounts import Deployment


def test_a_box_gets_its_own_key_and_a_new_gateway_requires_verified_messages(tmp_path, capsys):
    folder = tmp_path / "deployment"
    assert gateway_main(["provision-box", "market-st-01", "--district", "old-town", "--dir", str(folder)]) == 0
    assert gateway_main(["provision-gateway", "gateway-1", "--dir", str(folder)]) == 0
    printed = capsys.readouterr().out
    deployment = Deployment(folder)
    bundle = deployment.bundle("market-st-01")

    key_file = bundle / "box.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert all(line not in printed for line in key_file.read_text().splitlines()
               if line and not line.startswith(("#", "-")))
    security = SecurityConfig.model_validate(tomllib.loads((bundle / "security.toml").read_text())["security"])
    signer = security.signer()
    assert signer.key_id == "market-st-01"
    public = public_keys_in(deployment.box_keys)
    assert list(public) == ["market-st-01"]
    assert "topic write city/old-town/market-st-01/seal" in (deployment.broker_dir / "acl").read_text()

    verify = tomllib.loads((deployment.bundle("gateway-1") / "verify.toml").read_text())
    settings = GatewayConfig.model_validate(verify).verify
    assert settings.require_verified and settings.keys_dir == deployment.box_keys

    assert gateway_main(["revoke", "market-st-01", "--dir", str(folder)]) == 0
    assert public_keys_in(deployment.box_keys) == {}   # gateways started from now on refuse its seals
    assert load_signer(key_file).key_id == "market-st-01"
