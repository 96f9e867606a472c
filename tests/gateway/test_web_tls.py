"""`gateway web` with a certificate in its config serves HTTPS itself, with Secure session cookies."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys

import httpx
import pytest

from devstack.pki import make_pki

from .conftest import ROOT, wait_for
from .desk_fixtures import PASSWORD
from .test_web_browser import free_port

pytestmark = pytest.mark.integration


def test_the_desk_serves_https_from_the_certificate_in_its_config(influxdb, influx_db_name, tmp_path):
    pki = make_pki(tmp_path, "desk-user")
    (cert, key), (ca_file, _) = pki["server"], pki["ca"]
    ca = ssl.create_default_context(cafile=str(ca_file))
    port = free_port()
    config = tmp_path / "desk.toml"
    config.write_text(f'evidence_dir = "{tmp_path / "evidence"}"\n[influx]\n{influxdb.influx_table()}'
                      f'db = "{influx_db_name}"\n[desk]\naccounts = "{tmp_path / "desk.sqlite3"}"\n'
                      f'listen = "127.0.0.1:{port}"\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    added = subprocess.run([sys.executable, "-m", "gateway.cli", "users", "add", "sam", "--role", "supervisor",
                            "--config", str(config)], input=PASSWORD + "\n", capture_output=True, text=True,
                           cwd=ROOT, timeout=60)
    assert added.returncode == 0, added.stderr
    desk = subprocess.Popen([sys.executable, "-m", "gateway.cli", "web", "--config", str(config)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up() -> bool:
            try:
                return httpx.get(f"https://127.0.0.1:{port}/login", verify=ca, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, 0.2)
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=ca) as client:
            form = client.get("/login")
            assert "secure" in form.headers["set-cookie"].lower()
            token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
            answer = client.post("/login", data={"name": "sam", "password": PASSWORD, "login_token": token})
            assert answer.status_code == 303
            [session] = [c.lower() for c in answer.headers.get_list("set-cookie") if c.startswith("desk_session=")]
            assert "secure" in session and "httponly" in session and "samesite=lax" in session
            assert client.get("/").status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
    finally:
        desk.terminate()
        desk.wait(15)
