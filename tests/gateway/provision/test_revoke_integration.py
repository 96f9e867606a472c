"""Revoking a box: its open session ends and its next connect is refused, by password and by certificate."""

from __future__ import annotations

import pytest

from gateway.cli import main as gateway_main
from gateway.provision.accounts import Deployment

from .conftest import assert_no_secrets, connected, mqtt_settings, probe

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["box-a", "box-b"])    # box-a logs in by password, box-b by certificate
def test_a_revoked_box_loses_its_session_and_cannot_come_back(deployment, secured, capsys, caplog, name):
    other = probe(mqtt_settings(deployment, "box-c"), "box-c")
    assert connected(other)
    box = probe(mqtt_settings(deployment, name), name)
    assert connected(box)

    code = gateway_main(["revoke", name, "--dir", str(deployment.folder), "--broker-pid-file", str(secured.pid_file)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert box.disconnected.wait(5)                            # the open session is ended
    assert not other.disconnected.is_set()                     # and only that one

    again = probe(mqtt_settings(deployment, name), name)
    assert not connected(again, timeout=5)                     # refused at its next connect
    for p in (other, box, again):
        p.close()
    assert Deployment(deployment.folder).accounts[name].revoked
    assert_no_secrets(deployment, printed.out, printed.err, caplog.text, secured.log_file.read_text())


def test_revoking_an_unknown_account_says_so(deployment, capsys):
    assert gateway_main(["revoke", "nobody", "--dir", str(deployment.folder)]) == 2
    assert "no account named 'nobody'" in capsys.readouterr().err
