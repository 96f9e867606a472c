"""`gateway` command: run the ingest, case staff's lead commands, and the box overview."""

from __future__ import annotations

import argparse
import gc
import getpass
import json
import logging
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common.logs import configure_logging
from gateway.config import GatewayConfig, GatewayConfigError, load_gateway_config

EXIT_USAGE = 2
EXIT_REFUSED = 1
GC_YOUNG_THRESHOLD = 20_000   # Python's default is 700


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="Gateway config (TOML). Flags override it.")
    parser.add_argument("--influx", metavar="URL", help="InfluxDB URL (default http://127.0.0.1:8086).")
    parser.add_argument("--db", metavar="NAME", help="Database name (default streetwatch).")


def _add_lead_command(lead_commands, name: str, help: str) -> argparse.ArgumentParser:
    """A ``leads`` subcommand about one lead: the connection flags and the lead's ID."""
    command = lead_commands.add_parser(name, help=help)
    _add_connection_flags(command)
    command.add_argument("lead_id", metavar="ID")
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Turns box detections into enforcement leads.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO).")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="Consume the boxes' MQTT traffic into InfluxDB and leads.")
    _add_connection_flags(run)
    run.add_argument("--mqtt", metavar="URL", help="Broker URL (default mqtt://127.0.0.1:1883).")
    run.add_argument("--evidence-dir", type=Path, help="Where evidence JPEGs are stored.")
    run.add_argument("--client-id", help="MQTT client id of this gateway process (default gateway-1).")
    run.set_defaults(handler=_run)

    leads = commands.add_parser("leads", help="Enforcement leads for case staff.")
    lead_commands = leads.add_subparsers(dest="leads_command", required=True)
    listing = lead_commands.add_parser("list", help="List leads, oldest first.")
    _add_connection_flags(listing)
    listing.add_argument("--status", choices=["open", "dispatched", "on_scene", "resolved", "closed"],
                         help="Only leads with this status.")
    listing.add_argument("--category", help="Only this category (street_vending, illegal_dumping, ...).")
    listing.add_argument("--district", help="Only this district.")
    listing.add_argument("--json", action="store_true", help="Print a JSON array instead of a table.")
    listing.set_defaults(handler=_leads_list)

    show = _add_lead_command(lead_commands, "show", help="One lead: its fields, ledger, evidence and history.")
    show.add_argument("--evidence-dir", type=Path, help="Where evidence JPEGs are stored.")
    show.add_argument("--json", action="store_true", help="Print JSON instead of text.")
    show.set_defaults(handler=_leads_show)

    claim = _add_lead_command(lead_commands, "claim",
                              help="Take an open lead on: it is dispatched to you, in its team.")
    claim.add_argument("--by", required=True, metavar="NAME", help="Who takes it on.")
    claim.set_defaults(handler=_leads_claim)

    dispatch = _add_lead_command(lead_commands, "dispatch",
                                 help="Send an open (or dispatched) lead to a team or officer.")
    dispatch.add_argument("--team", help="Team to send it to (default: the team it was routed to).")
    dispatch.add_argument("--officer", metavar="NAME", help="The officer of that team who goes.")
    dispatch.add_argument("--by", metavar="NAME", help="Who dispatches it (default: the login name).")
    dispatch.set_defaults(handler=_leads_dispatch)

    scene = _add_lead_command(lead_commands, "on-scene", help="Mark a dispatched lead as attended on site.")
    scene.add_argument("--by", metavar="NAME", help="Who is on scene (default: the officer it went to).")
    scene.set_defaults(handler=_leads_on_scene)

    resolve = _add_lead_command(lead_commands, "resolve", help="Mark a lead on scene as handled, with a site photo.")
    resolve.add_argument("--photo", type=Path, required=True, metavar="FILE", help="Site photo, JPEG or PNG, "
                         "at most 10 MiB.")
    resolve.add_argument("--note", metavar="TEXT", help="Free text for the record.")
    resolve.add_argument("--by", metavar="NAME", help="Who resolved it (default: the officer it went to).")
    resolve.add_argument("--evidence-dir", type=Path, help="Where evidence (and site photos) are stored.")
    resolve.set_defaults(handler=_leads_resolve)

    close = _add_lead_command(lead_commands, "close", help="Close a lead with an outcome: confirmed once resolved, "
                              "rejected or duplicate at any time before.")
    close.add_argument("--outcome", required=True, choices=["confirmed", "rejected", "duplicate"])
    close.add_argument("--note", metavar="TEXT", help="Free text for the record.")
    close.add_argument("--by", metavar="NAME", help="Who closes it (default: the login name).")
    close.set_defaults(handler=_leads_close)

    preview = commands.add_parser(
        "preview", help="What other dedupe settings would make of the stored detections, before you change them.")
    _add_connection_flags(preview)
    preview.add_argument("--with", dest="candidate", type=Path, required=True, metavar="FILE",
                         help="A gateway config whose [dedupe] table holds the settings to try.")
    preview.add_argument("--hours", type=float, default=24.0, help="How far back to replay (default 24).")
    preview.add_argument("--json", action="store_true", help="Print a JSON array instead of a table.")
    preview.set_defaults(handler=_preview)

    web = commands.add_parser("web", help="The lead desk: case staff's pages, the clocks and the webhooks.")
    _add_connection_flags(web)
    web.add_argument("--listen", metavar="HOST:PORT", help="Where to serve (default [desk] listen, 127.0.0.1:8080).")
    web.add_argument("--evidence-dir", type=Path, help="Where evidence JPEGs (and site photos) are stored.")
    web.set_defaults(handler=_web)

    users = commands.add_parser("users", help="Desk accounts.")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    add = user_commands.add_parser("add", help="Add a desk user; the password is read from stdin or --password-file.")
    add.add_argument("--config", type=Path, help="Gateway config (TOML): [desk] accounts names the file.")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", required=True, choices=["officer", "dispatcher", "supervisor", "operator"])
    add.add_argument("--team", help="The officer's street team (needed for officers).")
    add.add_argument("--password-file", type=Path, metavar="FILE", help="Read the password from this file's first "
                     "line instead of stdin.")
    add.set_defaults(handler=_users_add, influx=None, db=None)
    listed = user_commands.add_parser("list", help="Desk users, roles and teams.")
    listed.add_argument("--config", type=Path, help="Gateway config (TOML).")
    listed.set_defaults(handler=_users_list, influx=None, db=None)

    boxes = commands.add_parser("boxes", help=(
        "Boxes: last seen, online, last seq, seq gaps (open, back-filled, dropped by policy), delivery mode, "
        "evidence disk use and budget, chain verification (ok, broken, unsigned; unverified messages)."))
    _add_connection_flags(boxes)
    boxes.add_argument("--json", action="store_true", help="Print a JSON array instead of a table.")
    boxes.set_defaults(handler=_boxes)

    from gateway.provision.commands import add_commands   # provision-*, revoke, config push

    add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level.upper())
    try:
        config = load_gateway_config(args.config, {
            "influx.url": args.influx, "influx.db": args.db,
            "mqtt.url": getattr(args, "mqtt", None), "mqtt.client_id": getattr(args, "client_id", None),
            "evidence_dir": str(args.evidence_dir) if getattr(args, "evidence_dir", None) else None,
        })
    except GatewayConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return args.handler(args, config)


def _open_store(config: GatewayConfig):
    from gateway.store.influxdb import InfluxStore

    return InfluxStore.open(config)


def _store_command(config: GatewayConfig, use, show, failing: str) -> int:
    """Print what ``use`` returns from the store, as ``show`` puts it; a store that fails is a usage error,
    reported after ``failing``."""
    from gateway.store.base import StoreError

    try:
        with _open_store(config) as store:
            result = use(store)
    except StoreError as exc:
        print(f"gateway: {failing}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(show(result))
    return 0


def _read_and_print(config: GatewayConfig, what: str, read, show) -> int:
    return _store_command(config, read, show, f"cannot read {what} from {config.influx.url}")


def _now_ms() -> int:
    from gateway.store.schema import now_ms

    return now_ms()


# --------------------------------------------------------------------------- run


def _run(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.store.base import StoreError
    from gateway.ingest.batches import Ingest, Stopped, confirmation_sender, resend_request_sender
    from gateway.transport.linkprocess import LinkProcess

    from common.broker import InsecureAccessError

    log = logging.getLogger("gateway")
    problems = []
    for settings in (config.mqtt, config.influx):    # plain text or anonymous only where the config says so
        try:
            settings.check_secure(log)
        except InsecureAccessError as exc:
            problems += exc.problems
    if problems:
        print(f"gateway: {'; '.join(problems)}", file=sys.stderr)
        return EXIT_USAGE
    store = _open_store(config)
    ingest = Ingest(config, store)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: ingest.stop())
    try:
        ingest.wait_for_store()   # an InfluxDB that is away is waited for; one that refuses us is an error
    except Stopped:
        store.close()
        return 0
    except StoreError as exc:
        print(f"gateway: InfluxDB at {config.influx.url} is not usable: {exc}", file=sys.stderr)
        store.close()
        return EXIT_USAGE
    try:
        ingest.restore()  # before subscribing: every message meets the state it was written against
    except Stopped:
        store.close()
        return 0
    _tune_gc()
    link = LinkProcess(config.mqtt.url, config.mqtt.client_id, subscriptions(config), ingest.offer,
                       credentials=config.mqtt.credentials(), receive_maximum=receive_maximum(config),
                       fast=None if config.mqtt.fast_receive else False, on_session_lost=ingest.broker_session_lost,
                       on_ended=ingest.stop)
    try:
        # Ready before the first message arrives.
        ingest.start_writer(link.ack_all, confirmation_sender(link.publish), resend_request_sender(link.publish))
    except RuntimeError as exc:
        log.error("gateway.writer_failed error=%s", exc)
        store.close()
        return 1
    try:
        link.start()
    except RuntimeError as exc:
        log.error("gateway.link_failed error=%s", exc)
        ingest.close_writer()
        store.close()
        return 1
    log.info("gateway.started mqtt=%s influx=%s db=%s districts=%s", config.mqtt.url, config.influx.url,
             config.influx.db, ",".join(config.serve_districts) or "all")
    try:
        stopped_on_request = ingest.run()
    finally:
        ingest.stop()   # the link's reader must not wait for an inbox nobody drains any more
        link.stop()
        store.close()
        log.info("gateway.stopped %s", dict(ingest.stats))
    if link.failed:
        log.error("gateway.link_ended: the MQTT link process ended on its own; exiting so that a supervisor "
                  "restarts the gateway")
        return 1
    if not stopped_on_request:
        log.error("gateway.writer_ended: the writer process ended on its own; exiting so that a supervisor restarts "
                  "the gateway")
        return 1
    return 0


def subscriptions(config: GatewayConfig) -> list[str]:
    """Shared subscriptions for every ingested kind, from all districts or from those the gateway serves."""
    from contract import shared_subscription
    from gateway.ingest.batches import INGESTED_KINDS

    return [shared_subscription(config.mqtt.share_group, kind, district)
            for district in config.serve_districts or ["+"] for kind in INGESTED_KINDS]


def receive_maximum(config: GatewayConfig) -> int:
    """Unacknowledged messages the broker may send: a full write in flight, a full one waiting behind it (so
    that InfluxDB never waits for the ingest between writes), and two batches being read behind those."""
    return min(65_535, 2 * config.write_max_messages + 2 * config.batch_size)


def _tune_gc() -> None:
    """Fewer garbage collections: each batch makes tens of thousands of short-lived objects, and a full
    collection walks every lead in memory. The restored state is frozen: it lives as long as the process."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 10)


# --------------------------------------------------------------------------- leads


def _leads_list(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.desk.casework import list_leads

    return _read_and_print(
        config, "leads",
        lambda store: list_leads(store, status=args.status, category=args.category, district=args.district),
        lambda leads: json.dumps(leads, indent=2) if args.json else format_leads_table(leads))


def _leads_show(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.desk import casework
    from gateway.store.evidence import EvidenceStore

    def read(store) -> dict[str, Any]:
        record = casework.read_lead(store, args.lead_id)
        evidence = EvidenceStore(config.evidence_dir)
        ledger = casework.read_ledger(store, args.lead_id)
        for entry in ledger:
            if entry.get("evidence"):
                entry["evidence_path"] = str(evidence.path_for(entry["evidence"]))
                entry["evidence_exists"] = evidence.has(entry["evidence"])
        lead = {**record.tags, **record.fields}
        if lead.get("evidence"):
            lead["evidence_path"] = str(evidence.path_for(lead["evidence"]))
            lead["evidence_exists"] = evidence.has(lead["evidence"])
        lead["evidence_verified"] = evidence_verdict(lead, ledger)
        return {"lead": lead, "ledger": ledger, "events": casework.read_events(store, args.lead_id)}

    return _casework_command(config, read, lambda shown: json.dumps(shown, indent=2) if args.json
                             else format_lead_details(shown))


def _leads_claim(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.desk import casework

    return _casework_command(
        config, lambda store: casework.claim(store, args.lead_id, args.by, _now_ms()),
        lambda event: f"lead {args.lead_id} dispatched to {args.by} (team {event.details['team']})")


def _leads_dispatch(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.desk import casework

    actor = casework.Actor.system(args.by or getpass.getuser())
    return _casework_command(
        config, lambda store: casework.dispatch(store, args.lead_id, actor, _now_ms(), team=args.team,
                                                officer=args.officer),
        lambda event: f"lead {args.lead_id} dispatched to team {event.details['team']}"
                      + (f", officer {event.details['assignee']}" if event.details.get("assignee") else "")
                      + f" by {event.by}")


def _officer(store, args: argparse.Namespace):
    from gateway.desk import casework

    name = args.by or casework.read_lead(store, args.lead_id).fields.get("claimed_by") or getpass.getuser()
    return casework.Actor.system(name)


def _leads_on_scene(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.desk import casework

    return _casework_command(
        config, lambda store: casework.on_scene(store, args.lead_id, _officer(store, args), _now_ms()),
        lambda event: f"lead {args.lead_id} on scene: {event.by}")


def _leads_resolve(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.desk.photos import PhotoStore, resolve_with_photo

    try:
        data = args.photo.read_bytes()
    except OSError as exc:
        print(f"gateway: cannot read {args.photo}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    return _casework_command(
        config, lambda store: resolve_with_photo(store, PhotoStore(config.evidence_dir), args.lead_id,
                                                 _officer(store, args), _now_ms(), data, args.note),
        lambda event: f"lead {args.lead_id} resolved by {event.by} (site photo {event.details['photo']})")


def _leads_close(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.desk import casework

    by = args.by or getpass.getuser()
    return _casework_command(
        config, lambda store: casework.close(store, args.lead_id, args.outcome, by, args.note, _now_ms()),
        lambda event: f"lead {args.lead_id} closed ({event.outcome}) by {event.by}")


def _casework_command(config: GatewayConfig, action, describe) -> int:
    from gateway.desk.casework import CaseworkError

    try:
        return _store_command(config, action, describe, f"InfluxDB at {config.influx.url}")
    except CaseworkError as exc:   # raised by the action only: describing its result cannot refuse
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_REFUSED


# --------------------------------------------------------------------------- the desk


def _web(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.store.base import StoreError
    from gateway.web.notify import SecretMissing
    from gateway.web.server import serve

    store = _open_store(config)
    try:
        store.create_database()
        serve(config, store, args.listen)
    except StoreError as exc:
        print(f"gateway: InfluxDB at {config.influx.url} is not usable: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SecretMissing as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.close()
    return 0


def _users_add(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.web.accounts import AccountError
    from gateway.web.server import open_accounts

    try:
        if args.password_file:
            password = args.password_file.read_text().splitlines()[0] if args.password_file.stat().st_size else ""
        elif sys.stdin.isatty():
            password = getpass.getpass(f"password for {args.name}: ")
        else:
            password = sys.stdin.readline().rstrip("\n")
    except OSError as exc:
        print(f"gateway: cannot read the password: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    accounts = open_accounts(config)
    try:
        accounts.add_user(args.name, args.role, args.team, password)
    except AccountError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        accounts.close()
    print(f"user {args.name} added ({args.role}{', team ' + args.team if args.team else ''})")
    return 0


def _users_list(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.web.server import open_accounts

    accounts = open_accounts(config)
    try:
        for user in accounts.users():
            print(f"{user.name:<20} {user.role:<11} {user.team or '-'}")
    finally:
        accounts.close()
    return 0


# --------------------------------------------------------------------------- boxes


def _boxes(args: argparse.Namespace, config: GatewayConfig) -> int:
    since = _now_ms() - int(config.seq_lookback_s * 1000)
    return _read_and_print(config, "boxes", lambda store: store.boxes(since),
                           lambda boxes: json.dumps(boxes, indent=2) if args.json else format_boxes_table(boxes))


def _preview(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.dedupe.policies import merge_policies
    from gateway.desk.preview import compare, stored_detections

    if args.hours <= 0:
        print("gateway: --hours must be more than 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        candidate = load_gateway_config(args.candidate, {})
    except GatewayConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    until = _now_ms()

    def show(detections: list) -> str:
        differences = compare(detections, merge_policies(config.dedupe), merge_policies(candidate.dedupe))
        if args.json:
            return json.dumps([d.as_dict() for d in differences], indent=2)
        return format_preview_table(differences, args.hours)

    return _read_and_print(
        config, "detections",
        lambda store: stored_detections(store, until - int(args.hours * 3_600_000), until, config.serve_districts),
        show)


# --------------------------------------------------------------------------- formatting


def format_preview_table(differences: list, hours: float) -> str:
    header = (f"{'CATEGORY':<16} {'DISTRICT':<12} {'DETECTIONS':>10} {'LEADS NOW':>9} {'WITH':>6} "
              f"{'UNOPENED NOW':>12} {'WITH':>6}")
    lines = [header]
    for d in differences:
        lines.append(f"{d.category:<16} {d.district:<12} {d.detections:>10} {d.leads_now:>9} {d.leads_then:>6} "
                     f"{d.unopened_now:>12} {d.unopened_then:>6}")
    totals = [sum(getattr(d, name) for d in differences)
              for name in ("detections", "leads_now", "leads_then", "unopened_now", "unopened_then")]
    lines.append(f"{'all':<16} {'':<12} {totals[0]:>10} {totals[1]:>9} {totals[2]:>6} {totals[3]:>12} {totals[4]:>6}")
    lines.append(f"Replayed the last {hours:g} h of stored detections from empty, under the current settings (NOW) "
                 "and the candidate ones (WITH); closes by case staff are not replayed.")
    return "\n".join(lines)



def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def format_leads_table(leads: list[dict]) -> str:
    header = (f"{'LEAD':<13} {'STATUS':<10} {'CATEGORY':<16} {'DISTRICT':<10} {'ZONE':<16} {'DET':>4} {'SCORE':>5}  "
              f"{'FIRST SEEN (UTC)':<19}  {'LAST SEEN (UTC)':<19}  BOXES")
    lines = [header]
    for lead in leads:
        lines.append(
            f"{lead['lead_id']:<13} {lead.get('status', '-'):<10} {lead.get('category', '-'):<16} "
            f"{lead.get('district', '-'):<10} {lead.get('zone', '-'):<16} {lead.get('detections', 0):>4} "
            f"{lead.get('score', 0.0):>5.2f}  {_when(lead.get('first_seen')):<19}  {_when(lead.get('last_seen')):<19}  "
            f"{','.join(lead.get('boxes', []))}"
        )
    lines.append(f"{len(leads)} lead(s)")
    return "\n".join(lines)


def format_lead_details(shown: dict[str, Any]) -> str:
    lead = shown["lead"]
    lines = [
        f"lead {lead['lead_id']}  {lead.get('status', '-')}  {lead.get('category', '-')}",
        f"  district {lead.get('district', '-')}, zone {lead.get('zone', '-')}, "
        f"at {lead.get('lat', 0.0):.6f}, {lead.get('lon', 0.0):.6f}",
        f"  team {lead.get('team', '-')} (routed by {lead.get('route', '-')})",
        f"  {lead.get('detections', 0)} detection(s), best score {lead.get('score', 0.0):.2f}, "
        f"first seen {_when(lead.get('first_seen'))}, last seen {_when(lead.get('last_seen'))} UTC",
        f"  boxes {lead.get('boxes', '-')}",
        f"  dispatched to {lead.get('claimed_by', '-')}, outcome {lead.get('outcome', '-')}, "
        f"note {lead.get('note', '-')}",
    ]
    if lead.get("evidence"):
        state = "present" if lead.get("evidence_exists") else "MISSING"
        lines.append(f"  evidence {lead['evidence_path']} ({state})")
    else:
        lines.append("  evidence: none received yet")
    lines.append("  " + _verification_line(lead))
    if lead.get("chain_broken"):
        lines.append(f"  WARNING: the chain of box(es) {lead['chain_broken']} broke (forged or altered messages, or a "
                     "seal that did not verify); see gateway boxes")
    if lead.get("evidence_altered"):
        lines.append(f"  WARNING: a picture for detection {lead['evidence_altered']} did not match the sha256 its "
                     "detection named (altered after the box signed it); it was refused")
    lines.append("ledger:")
    lines.append(f"  {'N':>3} {'DETECTION':<34} {'TIME (UTC)':<19} {'BOX':<14} {'CAMERA':<10} {'ZONE':<14} "
                 f"{'RULE':<9} {'DIST_M':>6} {'GAP_S':>7} {'SCORE':>5} {'VERIFY':<10}  EVIDENCE")
    for entry in shown["ledger"]:
        evidence = "-"
        if entry.get("evidence"):
            evidence = f"{entry['evidence_path']} ({'present' if entry['evidence_exists'] else 'missing'})"
        lines.append(f"  {entry.get('n', 0):>3} {entry['detection_id']:<34} {_when(entry['time'] // 1_000_000):<19} "
                     f"{entry.get('box', '-'):<14} {entry.get('camera', '-'):<10} {entry.get('zone', '-'):<14} "
                     f"{entry.get('rule', '-'):<9} {entry.get('distance_m', 0.0):>6.1f} {entry.get('gap_s', 0.0):>7.1f} "
                     f"{entry.get('score', 0.0):>5.2f} {entry.get('verify') or '-':<10}  {evidence}")
    lines.append("events:")
    for event in shown["events"] or []:
        extra = " ".join(f"{key}={event[key]}" for key in ("outcome", "team", "assignee", "photo", "other",
                                                            "detection", "clock", "note") if event.get(key))
        lines.append(f"  {_when(event.get('at'))}  {event.get('event')}  {event.get('from_status')} -> "
                     f"{event.get('to_status')}  by {event.get('by')}  {extra}".rstrip())
    if not shown["events"]:
        lines.append("  (none)")
    return "\n".join(lines)


def evidence_verdict(lead: dict[str, Any], ledger: list[dict[str, Any]]) -> str:
    """Whether a lead's best picture verified: the file on disk hashes to the sha256 that a detection named, and
    that detection's chain verified (gateway.ingest.verify)."""
    import hashlib

    sha = lead.get("evidence")
    if not sha:
        return "none"
    if not lead.get("evidence_exists"):
        return "missing"
    with open(lead["evidence_path"], "rb") as f:
        if hashlib.sha256(f.read()).hexdigest() != sha:
            return "altered"   # the file changed after its detection named it
    named = [entry for entry in ledger if entry.get("evidence") == sha]
    return "verified" if any(entry.get("verify") == "verified" for entry in named) else "unverified"


def _verification_line(lead: dict[str, Any]) -> str:
    unverified = lead.get("unverified")
    if unverified is None:
        chain = "detections: verification not recorded (stored before the gateway verified chains)"
    elif unverified:
        chain = f"detections: UNVERIFIED ({unverified} of {lead.get('detections', 0)} not vouched for by their box's seal)"
    else:
        chain = "detections: verified (each vouched for by its box's signed chain)"
    verdict = {"verified": "verified (the file matches the sha256 its verified detection signed)",
               "unverified": "UNVERIFIED (its detection was not verified)",
               "altered": "ALTERED (the file no longer matches the sha256 its detection named)",
               "missing": "not on disk", "none": "none"}.get(lead.get("evidence_verified") or "none", "-")
    return f"{chain}; evidence: {verdict}"


def format_boxes_table(boxes: list[dict]) -> str:
    lines = [f"{'BOX':<20} {'DISTRICT':<14} {'ONLINE':<7} {'LAST SEEN (UTC)':<19}  {'LAST SEQ':>9} {'GAPS':>5} "
             f"{'MISSING':>8} {'BACKFILLED':>10} {'POLICY':>6} {'DELIVERY':<9} {'EVIDENCE MB':>13} {'CHAIN':<9} "
             f"{'UNVERIFIED':>10}"]
    warnings = []
    for box in boxes:
        online = {True: "yes", False: "no", None: "?"}[box["online"]]
        last_seq = "-" if box["last_seq"] is None else str(box["last_seq"])
        evidence = "-"
        if box.get("evidence_used") is not None:
            evidence = f"{box['evidence_used'] / 2**20:.1f}/{(box.get('evidence_budget') or 0) / 2**20:.0f}"
        lines.append(f"{box['box']:<20} {box['district']:<14} {online:<7} {_when(box['last_seen']):<19}  "
                     f"{last_seq:>9} {box['open_gaps']:>5} {box['missing']:>8} {box.get('backfilled', 0):>10} "
                     f"{box.get('dropped_by_policy', 0):>6} {box.get('delivery') or '-':<9} {evidence:>13} "
                     f"{(box.get('chain') or '-').upper() if box.get('chain') == 'broken' else box.get('chain') or '-':<9} "
                     f"{box.get('unverified', 0) + box.get('failed', 0):>10}")
        if box.get("chain") == "broken":
            warnings.append(f"warning: {box['box']}: its chain broke {box.get('chain_breaks', 0)} time(s), "
                            f"{box.get('failed', 0)} message(s) failed verification; last: {box.get('last_break')}")
        if box.get("evidence_refused"):
            warnings.append(f"warning: {box['box']}: evidence budget full, {box['evidence_refused']} picture(s) "
                            "refused (dead-lettered); close leads or raise [evidence] max_box_mb / max_total_mb")
        if box.get("delivery") == "puback":
            warnings.append(f"warning: {box['box']}: frees its spool on the broker's PUBACK (it heard no gateway "
                            "confirmation); a broker crash may lose its messages")
    lines.append(f"{len(boxes)} box(es)")
    return "\n".join(lines + warnings)


if __name__ == "__main__":
    sys.exit(main())
