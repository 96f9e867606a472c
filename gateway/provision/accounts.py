"""The deployment folder: the CA, the broker's files, and one bundle per account.

    DIR/accounts.json          every account: kind, districts, login, certificate serial, revoked
    DIR/ca/ca.pem, ca.key      the deployment's CA (the key never leaves this folder)
    DIR/broker/                server.pem/.key, passwd, acl, crl.pem, security.conf (for mosquitto.conf)
    DIR/accounts/NAME/         what goes onto the account's machine: ca.pem, its password file or its
                               certificate and key, mqtt.toml (its [mqtt] table), for an operator
                               operator.key (Ed25519, signs config changes) and operator.pub, for a box
                               box.key (Ed25519, seals its hash chain) and security.toml (its
                               [security] table), for a gateway verify.toml
    DIR/box-keys/BOX.pub       the public half of each box's key, where gateways find it ([verify] keys_dir);
                               a revoked box's key moves to DIR/box-keys/revoked/

Every secret file is created mode 0600. No password or key is printed or
logged; ``mqtt.toml`` names the password *file*. The broker's files are
written whole from ``accounts.json`` after every change; the broker picks
them up on a reload (SIGHUP), see ``gateway.provision.commands``.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from common.files import private_dir
from common.signing import generate_signer, write_private_key
from contract import NAME_PATTERN
from gateway.provision import broker
from gateway.provision.pki import Authority, write_private

Kind = Literal["box", "gateway", "operator"]
Auth = Literal["password", "cert"]
_NAME_RE = re.compile(NAME_PATTERN)


class ProvisionError(ValueError):
    """A provisioning step that cannot be done; the message says why."""


@dataclass
class Account:
    name: str
    kind: Kind
    districts: list[str]
    auth: Auth
    serial: int | None = None          # of its client certificate, when auth is cert
    revoked: bool = False
    retired_serials: list[int] = field(default_factory=list)   # one-off certificates, revoked after use


@dataclass
class BrokerPlace:
    host: str
    port: int
    cert_port: int
    server_names: list[str] = field(default_factory=list)


class Deployment:
    """One deployment folder; ``Deployment.init`` makes it, the other methods add and revoke accounts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        state = json.loads((self.folder / "accounts.json").read_text())
        self.place = BrokerPlace(**state["broker"])
        self.accounts = {name: Account(**fields) for name, fields in state["accounts"].items()}

    # -------------------------------------------------------------- paths

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca" / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca" / "ca.key"

    @property
    def broker_dir(self) -> Path:
        return self.folder / "broker"

    @property
    def password_file(self) -> Path:
        return self.broker_dir / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.broker_dir / "acl"

    @property
    def box_keys(self) -> Path:
        """The boxes' public keys, one ``BOX.pub`` each: a gateway's ``[verify] keys_dir``."""
        return self.folder / "box-keys"

    @property
    def security_conf(self) -> Path:
        """Lines to add to mosquitto.conf (listeners, TLS, password and ACL files, CRL)."""
        return self.broker_dir / "security.conf"

    def bundle(self, name: str) -> Path:
        return self.folder / "accounts" / name

    @property
    def password_url(self) -> str:
        return f"mqtts://{self.place.host}:{self.place.port}"

    @property
    def cert_url(self) -> str:
        return f"mqtts://{self.place.host}:{self.place.cert_port}"

    # -------------------------------------------------------------- set-up

    @classmethod
    def init(cls, folder: Path, *, host: str = "127.0.0.1", port: int = 8883, cert_port: int = 8884,
             server_names: list[str] | None = None, ca_name: str = "streetwatch-ca") -> "Deployment":
        """Make the folder, the CA and the broker's certificate when none exist; keep what does."""
        folder = folder.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        state_file = folder / "accounts.json"
        names = server_names or [host]
        if not state_file.exists():
            place = BrokerPlace(host, port, cert_port, names)
            state_file.write_text(json.dumps({"broker": asdict(place), "accounts": {}}, indent=2) + "\n")
        deployment = cls(folder)
        (folder / "ca").mkdir(exist_ok=True)
        deployment.broker_dir.mkdir(exist_ok=True)
        if not deployment.ca_cert.exists():
            Authority.create(deployment.ca_cert, deployment.ca_key, ca_name)
        server = deployment.broker_dir / "server.pem"
        if not server.exists():
            deployment.authority().issue(deployment.place.host, server, deployment.broker_dir / "server.key",
                                         server_names=deployment.place.server_names)
        deployment.write_broker_files()
        return deployment

    def authority(self) -> Authority:
        return Authority.load(self.ca_cert, self.ca_key)

    # -------------------------------------------------------------- accounts

    def add(self, name: str, kind: Kind, *, districts: list[str] = (), auth: Auth = "password",
            install_dir: Path | None = None) -> Path:
        """A new account: its login, its broker entries and its bundle folder (returned)."""
        for what, value in [("name", name), *(("district", d) for d in districts)]:
            if not _NAME_RE.fullmatch(value):
                raise ProvisionError(f"{what} {value!r} does not match {NAME_PATTERN}")
        if name in self.accounts:
            state = "revoked" if self.accounts[name].revoked else "provisioned"
            raise ProvisionError(f"{name!r} is already {state}; a name is used once")
        if kind == "box" and len(districts) != 1:
            raise ProvisionError("a box belongs to exactly one district")
        if auth == "cert" and kind != "box":
            raise ProvisionError("client certificates are for boxes; gateways and operators log in with a password")
        bundle = self.bundle(name)
        if bundle.exists():
            shutil.rmtree(bundle)
        bundle.mkdir(parents=True, mode=0o700)
        place = install_dir if install_dir is not None else bundle
        shutil.copyfile(self.ca_cert, bundle / "ca.pem")
        account = Account(name, kind, list(districts), auth)
        lines = ["[mqtt]"]
        if auth == "cert":
            account.serial = self.authority().issue(name, bundle / f"{name}.pem", bundle / f"{name}.key")
            lines += [f'url = "{self.cert_url}"', f'ca_file = "{place / "ca.pem"}"',
                      f'cert_file = "{place / f"{name}.pem"}"', f'key_file = "{place / f"{name}.key"}"']
        else:
            password = broker.new_password()
            write_private(bundle / "mqtt-password", (password + "\n").encode())
            entries = broker.read_password_file(self.password_file)
            entries[name] = broker.password_line(name, password).partition(":")[2]
            broker.write_password_file(self.password_file, entries)
            lines += [f'url = "{self.password_url}"', f'username = "{name}"',
                      f'password_file = "{place / "mqtt-password"}"', f'ca_file = "{place / "ca.pem"}"']
        if kind == "gateway":
            lines.append(f'client_id = "{name}"   # the broker makes the user name the client id')
            (bundle / "verify.toml").write_text(
                "# A new deployment stores only messages their box's signed chain vouches for (SECURITY.md).\n"
                "[verify]\nrequire_verified = true\n"
                f'keys_dir = "{self.box_keys}"   # copy it to the gateway\'s machine if it runs elsewhere\n')
        if kind == "box":
            signer = generate_signer(name)
            write_private_key(signer, bundle / "box.key")
            private_dir(self.box_keys)
            (self.box_keys / f"{name}.pub").write_text(signer.public_entry() + "\n")
            (bundle / "security.toml").write_text(
                f"# box {name}: its own key chains and seals what it sends (contract.chain); paths as installed\n"
                f'[security]\nsigning_key_file = "{place / "box.key"}"\n')
        if kind == "operator":
            signer = generate_signer(name)
            write_private_key(signer, bundle / "operator.key")
            (bundle / "operator.pub").write_text(signer.public_entry() + "\n")
            (bundle / "remote_config.toml").write_text(
                f"# operator {name}: boxes that take config changes signed by this operator (edge run --remote-config)\n"
                f"[remote_config]\ntrusted_keys = [{json.dumps(signer.public_entry())}]\n")
        header = f"# {kind} {name}" + (f", district {districts[0]}" if kind == "box" else "") + \
                 f", {'client certificate' if auth == 'cert' else 'password'} login; paths as installed on it"
        (bundle / "mqtt.toml").write_text("\n".join([header, *lines]) + "\n")
        self.accounts[name] = account
        self._save()
        self.write_broker_files()
        return bundle

    def revoke(self, name: str) -> Account:
        """Refuse the account from the next reload on: its password entry and ACL go, its certificate is in the
        CRL. Its bundle stays, useless, for the record."""
        account = self.accounts.get(name)
        if account is None:
            raise ProvisionError(f"no account named {name!r}")
        account.revoked = True
        key = self.box_keys / f"{name}.pub"
        if key.exists():   # gateways no longer verify its seals (they read keys_dir when they start)
            private_dir(self.box_keys / "revoked")
            key.replace(self.box_keys / "revoked" / f"{name}.pub")
        entries = broker.read_password_file(self.password_file)
        entries.pop(name, None)
        broker.write_password_file(self.password_file, entries)
        self._save()
        self.write_broker_files()
        return account

    def one_off_certificate(self, name: str) -> tuple[Path, Path]:
        """A short-lived certificate in a revoked certificate account's name, to take over (and so end) the
        session its box still holds: Mosquitto 2.0.11 keeps a certificate client connected through a reload.
        Its serial is recorded now and is in the CRL from the next write on: use it once, then ``retire``."""
        account = self.accounts[name]
        if not account.revoked or account.auth != "cert":
            raise ProvisionError(f"{name!r} is not a revoked certificate account")
        folder = self.broker_dir / "takeover"
        folder.mkdir(mode=0o700, exist_ok=True)
        cert, key = folder / f"{name}.pem", folder / f"{name}.key"
        serial = self.authority().issue(name, cert, key, days=1)
        account.retired_serials.append(serial)
        self._save()    # recorded before use; the CRL written now still lets it in
        return cert, key

    def retire(self, name: str) -> None:
        """Put the one-off certificates of ``name`` into the CRL and delete them."""
        shutil.rmtree(self.broker_dir / "takeover", ignore_errors=True)
        self.write_broker_files()

    def write_broker_files(self) -> None:
        live = [a for a in self.accounts.values() if not a.revoked]
        grants = []
        for account in live:
            if account.kind == "box":
                grants.append(broker.box_grant(account.name, account.districts[0]))
            elif account.kind == "gateway":
                grants.append(broker.gateway_grant(account.name, account.districts))
            else:
                grants.append(broker.operator_grant(account.name, account.districts))
        acl = self.acl_file
        acl.write_text(broker.acl_text(grants))
        acl.chmod(0o600)
        passwd = self.password_file
        if not passwd.exists():
            broker.write_password_file(passwd, {})
        revoked = [a.serial for a in self.accounts.values() if a.revoked and a.serial is not None]
        revoked += [serial for a in self.accounts.values() for serial in a.retired_serials]
        self.authority().write_crl(self.broker_dir / "crl.pem", revoked)
        listeners = broker.Listeners(self.place.host, self.place.port, self.place.cert_port)
        self.security_conf.write_text(listeners.config_text(
            ca=self.ca_cert, cert=self.broker_dir / "server.pem", key=self.broker_dir / "server.key",
            passwd=passwd, acl=acl, crl=self.broker_dir / "crl.pem"))

    def _save(self) -> None:
        state = {"broker": asdict(self.place), "accounts": {n: asdict(a) for n, a in sorted(self.accounts.items())}}
        path = self.folder / "accounts.json"
        tmp = path.with_name("accounts.json.tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(path)
