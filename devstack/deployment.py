"""The deployment the devstack's brokers are secured with, and the logins the demo and the tests use on them.

A ``DevDeployment`` is a deployment folder made by the provisioning code
(``gateway.provision.accounts``: the CA, the broker's certificate, the
password and ACL files, one bundle per account), plus two kinds of login that
exist only for the devstack:

- the **probe**, which every readiness check logs in with: a password entry
  and no ACL block, so it may connect and nothing else;
- **test-harness** logins (``kind="harness"``): read and write on every topic.
  They exist only in tests, for tests that are not about access control
  (publishing made-up detections for many boxes, watching every topic); a
  real deployment has no such account and ``gateway provision-*`` cannot make
  one.

Boxes, gateways and operators are the deployment's own accounts, with the
rights ``gateway provision-*`` gives them. ``login`` provisions an account the
first time it is asked for and hands back the same login after that, so a test
asks for what it needs by name. After a new account the broker files are
written whole again (the harness blocks appended to the provisioned ACL) and
the brokers started on this deployment are reloaded (SIGHUP), see
``devstack.services.Mosquitto``.

The harness logins are kept in ``devstack-harness.json`` in the deployment
folder, their passwords in ``devstack/NAME/mqtt-password`` (mode 0600).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from common.broker import BrokerSettings, Credentials, read_password
from gateway.provision import broker as broker_files
from gateway.provision.accounts import Deployment
from gateway.provision.pki import write_private

LoginKind = Literal["box", "gateway", "operator", "harness", "probe"]
HARNESS_FILE = "devstack-harness.json"
PROBE = "devstack-probe"


@dataclass(frozen=True)
class Login:
    """How one account logs in: a password file or a client certificate, and the deployment's CA."""

    username: str | None
    ca_file: Path
    password_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def settings(self, url: str) -> BrokerSettings:
        """This login's ``[mqtt]`` table for the broker at ``url``."""
        return BrokerSettings(url=url, username=self.username, password_file=self.password_file,
                              ca_file=self.ca_file, cert_file=self.cert_file, key_file=self.key_file)

    def credentials(self) -> Credentials:
        return self.settings("mqtts://127.0.0.1").credentials()

    def password(self) -> str | None:
        return read_password(None, self.password_file)

    def toml(self, url: str) -> str:
        """The ``[mqtt]`` table's lines (without the header) for a config file: names the password *file*."""
        fields = {"url": url, "username": self.username, "password_file": self.password_file,
                  "ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}
        return "".join(f"{key} = {json.dumps(str(value))}\n" for key, value in fields.items() if value is not None)


class DevDeployment:
    """A deployment folder for the devstack's brokers; made (CA, broker certificate) when it does not exist yet."""

    def __init__(self, folder: Path, *, host: str = "127.0.0.1", port: int = 8883, cert_port: int = 8884) -> None:
        self.folder = Path(folder).resolve()
        if not (self.folder / "accounts.json").exists():
            Deployment.init(self.folder, host=host, port=port, cert_port=cert_port)
        self._reloaders: list[Callable[[], None]] = []
        self.login(PROBE, "probe")

    @property
    def deployment(self) -> Deployment:
        """The provisioned accounts, read afresh (a ``gateway`` command may have changed them)."""
        return Deployment(self.folder)

    @property
    def ca_file(self) -> Path:
        return self.deployment.ca_cert

    @property
    def password_file(self) -> Path:
        return self.deployment.password_file

    @property
    def acl_file(self) -> Path:
        return self.deployment.acl_file

    def on_new_account(self, reload: Callable[[], None]) -> None:
        """Call ``reload`` after each new account (a broker started on this deployment registers its reload)."""
        if reload not in self._reloaders:
            self._reloaders.append(reload)

    def forget(self, reload: Callable[[], None]) -> None:
        if reload in self._reloaders:
            self._reloaders.remove(reload)

    # ---------------------------------------------------------------- logins

    def has_login(self, name: str) -> bool:
        return name in self._harness() or name in self.deployment.accounts

    def login(self, name: str, kind: LoginKind = "harness", *, district: str | None = None,
              districts: tuple[str, ...] = (), auth: Literal["password", "cert"] = "password") -> Login:
        """The login of account ``name``, provisioned now if it does not exist (then the brokers reload)."""
        if kind in ("harness", "probe"):
            created = self._ensure_harness(name, kind)
            login = Login(name, self.ca_file, password_file=self._harness_dir(name) / "mqtt-password")
        else:
            created = self._ensure_account(name, kind, district, districts, auth)
            login = self._account_login(name)
        if created:
            self.write_broker_files()
            for reload in list(self._reloaders):
                reload()
        return login

    def _ensure_account(self, name: str, kind: LoginKind, district: str | None, districts: tuple[str, ...],
                        auth: str) -> bool:
        deployment = self.deployment
        existing = deployment.accounts.get(name)
        wanted = [district] if kind == "box" else list(districts)
        if existing is not None:
            if existing.kind != kind or existing.districts != wanted or existing.revoked:
                raise ValueError(f"account {name!r} exists as {existing.kind} of {existing.districts}"
                                 f"{' (revoked)' if existing.revoked else ''}, not as {kind} of {wanted}")
            return False
        if kind == "box" and district is None:
            raise ValueError("a box login needs its district")
        deployment.add(name, kind, districts=wanted, auth=auth)
        return True

    def _account_login(self, name: str) -> Login:
        bundle = self.deployment.bundle(name)
        if (bundle / "mqtt-password").exists():
            return Login(name, bundle / "ca.pem", password_file=bundle / "mqtt-password")
        return Login(None, bundle / "ca.pem", cert_file=bundle / f"{name}.pem", key_file=bundle / f"{name}.key")

    def _harness_dir(self, name: str) -> Path:
        return self.folder / "devstack" / name

    def _harness(self) -> dict[str, str]:
        path = self.folder / HARNESS_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def _ensure_harness(self, name: str, kind: LoginKind) -> bool:
        logins = self._harness()
        if name in logins:
            if logins[name] != kind:
                raise ValueError(f"login {name!r} exists as {logins[name]}, not as {kind}")
            return False
        if name in self.deployment.accounts:
            raise ValueError(f"{name!r} is a provisioned account, not a {kind} login")
        password = broker_files.new_password()
        write_private(self._harness_dir(name) / "mqtt-password", (password + "\n").encode())
        self._harness_dir(name).chmod(0o700)
        entries = broker_files.read_password_file(self.password_file)
        entries[name] = broker_files.password_line(name, password).partition(":")[2]
        broker_files.write_password_file(self.password_file, entries)
        logins[name] = kind
        (self.folder / HARNESS_FILE).write_text(json.dumps(logins, indent=2, sort_keys=True) + "\n")
        return True

    # ---------------------------------------------------------------- broker files

    def write_broker_files(self) -> None:
        """The provisioned password and ACL files, with the devstack's own logins added."""
        self.deployment.write_broker_files()
        harness = self._harness()
        entries = broker_files.read_password_file(self.password_file)
        missing = [name for name in harness if name not in entries]
        for name in missing:    # a provisioned password file written without them (not by ``Deployment.add``)
            password = (self._harness_dir(name) / "mqtt-password").read_text().strip()
            entries[name] = broker_files.password_line(name, password).partition(":")[2]
        if missing:
            broker_files.write_password_file(self.password_file, entries)
        grants = [broker_files.Grant(name, "test harness: every topic; exists only in tests", readwrite=("#",))
                  for name, kind in sorted(harness.items()) if kind == "harness"]
        if grants:
            with self.acl_file.open("a") as acl:
                acl.write("\n".join(line for grant in grants for line in [*grant.lines(), ""]) + "\n")
