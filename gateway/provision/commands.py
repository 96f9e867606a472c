"""The security commands of ``gateway``: provisioning, revoking, and signed config changes.

    gateway provision-init --dir DIR [--broker-host H] [--port N] [--cert-port N] [--server-name NAME ...]
    gateway provision-box BOX --district D [--auth password|cert] --dir DIR [--install-dir PATH]
    gateway provision-gateway NAME [--district D ...] --dir DIR [--install-dir PATH]
    gateway provision-operator NAME [--district D ...] --dir DIR [--install-dir PATH]
    gateway revoke NAME --dir DIR [--broker-pid-file FILE]
    gateway config push BOX --district D (--file patch.toml | --reset) --key operator.key --mqtt-config mqtt.toml

They print paths, names and the ``[mqtt]`` table (which names a password
*file*), never a password or a key.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import tomllib
from pathlib import Path

log = logging.getLogger("gateway.provision")

DEPLOYMENT_ENV = "STREETWATCH_DEPLOYMENT"
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NO_ANSWER = 3


def _no_gateway_config(parser: argparse.ArgumentParser) -> None:
    """These commands read no gateway config: ``gateway``'s main loads the defaults."""
    parser.set_defaults(config=None, influx=None, db=None)


def _deployment_flags(parser: argparse.ArgumentParser) -> None:
    _no_gateway_config(parser)
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get(DEPLOYMENT_ENV, "deployment")),
                        help=f"Deployment folder (default ${DEPLOYMENT_ENV}, else ./deployment).")


def _account_flags(parser: argparse.ArgumentParser) -> None:
    _deployment_flags(parser)
    parser.add_argument("--install-dir", type=Path, help=(
        "Where the account's files will be on its machine, for the paths in its [mqtt] table "
        "(default: the bundle folder itself)."))


def add_commands(commands) -> None:
    """Add the security commands to the ``gateway`` command's sub-parsers."""
    init = commands.add_parser("provision-init", help="Make the deployment folder, its CA and the broker's "
                               "certificate (kept when they exist), and the broker's security.conf.")
    _deployment_flags(init)
    init.add_argument("--broker-host", default="127.0.0.1", help="Address the broker listens on (default 127.0.0.1).")
    init.add_argument("--port", type=int, default=8883, help="TLS port for password logins (default 8883).")
    init.add_argument("--cert-port", type=int, default=8884, help="TLS port for client certificates (default 8884).")
    init.add_argument("--server-name", action="append", default=[], metavar="NAME",
                      help="Name or address clients use for the broker (repeatable; default the broker host).")
    init.set_defaults(handler=_init)

    box = commands.add_parser("provision-box", help="A box's broker identity, ACL entries and [mqtt] table.")
    box.add_argument("name", metavar="BOX")
    box.add_argument("--district", required=True)
    box.add_argument("--auth", choices=["password", "cert"], default="password", help=(
        "password (default): a revoked box's open session ends at the broker's reload; cert: a client "
        "certificate, refused at its next connect after the reload (see SECURITY.md)."))
    _account_flags(box)
    box.set_defaults(handler=_account, kind="box")

    for kind, what in (("gateway", "A gateway's login: reads the boxes' traffic."),
                       ("operator", "An operator's login and Ed25519 signing key: writes boxes' config.")):
        parser = commands.add_parser(f"provision-{kind}", help=what)
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("--district", action="append", default=[], help="Limit to this district (repeatable).")
        _account_flags(parser)
        parser.set_defaults(handler=_account, kind=kind, auth="password")

    revoke = commands.add_parser("revoke", help="Take an account's access away and reload the broker.")
    revoke.add_argument("name", metavar="NAME")
    _deployment_flags(revoke)
    revoke.add_argument("--broker-pid-file", type=Path, help="Mosquitto's pid file: send it SIGHUP to apply now.")
    revoke.set_defaults(handler=_revoke)

    config = commands.add_parser("config", help="Signed live config changes for boxes.")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    push = config_commands.add_parser("push", help="Sign a change, publish it retained and wait for the box's ack.")
    _no_gateway_config(push)
    push.add_argument("box", metavar="BOX")
    push.add_argument("--district", required=True)
    what = push.add_mutually_exclusive_group(required=True)
    what.add_argument("--file", type=Path, help="The patch, TOML or JSON (what may change: see the README).")
    what.add_argument("--reset", action="store_true", help="Return the box to its file config.")
    push.add_argument("--key", type=Path, required=True, help="The operator's private key file (operator.key).")
    push.add_argument("--mqtt-config", type=Path, required=True,
                      help="The operator's [mqtt] table (mqtt.toml from provisioning).")
    push.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait for the ack (default 30).")
    push.set_defaults(handler=_push)


# --------------------------------------------------------------------------- provisioning


def _init(args: argparse.Namespace, _config) -> int:
    from gateway.provision.accounts import Deployment

    deployment = Deployment.init(args.dir, host=args.broker_host, port=args.port, cert_port=args.cert_port,
                                 server_names=args.server_name or None)
    print(f"deployment {deployment.folder}")
    print(f"broker: add {deployment.security_conf} to mosquitto.conf (listeners {deployment.password_url}, "
          f"{deployment.cert_url})")
    return 0


def _account(args: argparse.Namespace, _config) -> int:
    from gateway.provision.accounts import Deployment, ProvisionError

    if not (args.dir / "accounts.json").exists():
        Deployment.init(args.dir)
        print(f"deployment {args.dir.resolve()} created with a new CA and broker certificate")
    deployment = Deployment(args.dir)
    districts = [args.district] if args.kind == "box" else args.district
    try:
        bundle = deployment.add(args.name, args.kind, districts=districts, auth=args.auth,
                                install_dir=args.install_dir)
    except ProvisionError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log.info("provision.added kind=%s name=%s auth=%s districts=%s", args.kind, args.name, args.auth,
             ",".join(districts) or "all")
    print(f"{args.kind} {args.name}: files in {bundle} (copy them to its machine"
          + (f" under {args.install_dir}" if args.install_dir else "") + ")")
    if args.kind == "operator":
        print(f"trusted key for boxes' [remote_config] trusted_keys: {(bundle / 'operator.pub').read_text().strip()} "
              f"(that table is in {bundle / 'remote_config.toml'})")
    if args.kind == "box":
        print(f"{bundle / 'security.toml'}: add its [security] table to the box's config (its signing key); the "
              f"public key is {deployment.box_keys / (args.name + '.pub')} ([verify] keys_dir of the gateways)")
    if args.kind == "gateway":
        print(f"{bundle / 'verify.toml'}: add its [verify] table to the gateway's config")
    print((bundle / "mqtt.toml").read_text().rstrip())
    print("reload the broker (SIGHUP) so that it takes the new entries")
    return 0


def _revoke(args: argparse.Namespace, _config) -> int:
    """Revoke, reload, and for a certificate box end the session the reload leaves open (see ``end_session``)."""
    from gateway.provision.accounts import Deployment, ProvisionError

    try:
        deployment = Deployment(args.dir)
        account = deployment.revoke(args.name)
    except (ProvisionError, FileNotFoundError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log.info("provision.revoked kind=%s name=%s auth=%s", account.kind, account.name, account.auth)
    if args.broker_pid_file is None:
        print(f"{account.name} revoked; reload the broker (SIGHUP) to apply"
              + ("; its open session ends when it next reconnects" if account.auth == "cert" else ""))
        return 0
    try:
        pid = int(args.broker_pid_file.read_text().split()[0])
        reload_broker(pid)
        if account.auth == "cert":
            end_session(deployment, account.name)
            reload_broker(pid)
    except (OSError, ValueError, IndexError) as exc:
        print(f"gateway: {account.name} revoked, but the broker could not be reloaded: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"{account.name} revoked; broker (pid {pid}) reloaded, its session ended")
    return 0


def reload_broker(pid: int, settle_s: float = 0.5) -> None:
    """SIGHUP: Mosquitto re-reads the password file, the ACL and the CRL, and drops password clients whose
    entry is gone. The signal is handled in the broker's next loop; ``settle_s`` gives it that time."""
    os.kill(pid, signal.SIGHUP)
    time.sleep(settle_s)


def end_session(deployment, name: str) -> None:
    """End a revoked certificate box's open session: Mosquitto 2.0.11 keeps certificate clients connected through
    a reload, so log in once with a one-off certificate in the box's name. The broker makes the user name the
    client id, so this login takes the box's session over (closing its connection, and with a clean start
    discarding its stored session); then that certificate is revoked as well."""
    from common.broker import Credentials
    from gateway.transport.operator import OperatorLink, OperatorLinkError

    cert, key = deployment.one_off_certificate(name)
    try:
        with OperatorLink(deployment.cert_url, name, Credentials(ca_file=str(deployment.ca_cert), cert_file=str(cert),
                                                                  key_file=str(key))):
            pass
        log.info("provision.session_ended name=%s", name)
    except OperatorLinkError as exc:
        log.warning("provision.session_not_ended name=%s error=%s", name, exc)
    finally:
        deployment.retire(name)


# --------------------------------------------------------------------------- config push


def read_patch(path: Path) -> dict:
    text = path.read_text()
    if path.suffix == ".json":
        patch = json.loads(text)
    else:
        patch = tomllib.loads(text)
    if not isinstance(patch, dict) or not patch:
        raise ValueError(f"{path}: a patch is a non-empty table")
    return patch


def _push(args: argparse.Namespace, _config) -> int:
    from common.broker import BrokerSettings
    from common.signing import SigningError, load_signer
    from common.validation import validation_problems
    from contract import ConfigAck, ContractError, Kind, Topic
    from contract.configpatch import ChangeBody, SignedChange, body_text
    from gateway.transport.operator import OperatorLink, OperatorLinkError
    from pydantic import ValidationError

    try:
        signer = load_signer(args.key)
        patch = None if args.reset else read_patch(args.file)
        table = tomllib.loads(args.mqtt_config.read_text()).get("mqtt", {})
        table.pop("client_id", None)
        settings = BrokerSettings.model_validate(table)
        topic = Topic(args.district, args.box, Kind.CONFIG)
    except (SigningError, OSError, ValueError, ContractError) as exc:
        if isinstance(exc, ValidationError):
            exc = "; ".join(validation_problems(exc))
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    ack_topic = str(Topic(args.district, args.box, Kind.CONFIG_ACK))
    try:
        with OperatorLink(settings.url, settings.username or signer.key_id, settings.credentials()) as link:
            link.subscribe(str(topic), ack_topic)
            counter = int(time.time() * 1000)
            current = link.retained(str(topic))
            if current:
                try:
                    counter = max(counter, SignedChange.decode(current).change().counter + 1)
                except ContractError:
                    pass   # an unsigned or broken retained message says nothing about counters
            body = ChangeBody(box=args.box, district=args.district, counter=counter, ts=int(time.time() * 1000),
                              patch=patch, reset=args.reset)
            text = body_text(body)
            envelope = SignedChange(body=text, key=signer.key_id, sig="-")
            envelope = envelope.model_copy(update={"sig": signer.sign(envelope.signed_bytes())})
            link.publish(str(topic), envelope.encode(), retain=True)
            log.info("config.pushed box=%s district=%s counter=%d key=%s reset=%s", args.box, args.district,
                     counter, signer.key_id, args.reset)
            answer = link.next_message(ack_topic, args.timeout)
    except OperatorLinkError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if answer is None:
        print(f"no answer from {args.box} within {args.timeout:g} s; the change stays retained and the box takes "
              "it when it connects", file=sys.stderr)
        return EXIT_NO_ANSWER
    ack = ConfigAck.decode(answer)
    if ack.status == "accepted":
        print(f"{args.box}: accepted (counter {counter}), config {ack.config}")
        return 0
    print(f"{args.box}: rejected: {ack.reason}", file=sys.stderr)
    return EXIT_REFUSED
