"""`gateway` command: run the ingest, and the case-staff views of leads."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from gateway.config import GatewayConfig, GatewayConfigError, load_gateway_config


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="Gateway config (TOML). Flags override it.")
    parser.add_argument("--influx", metavar="URL", help="InfluxDB URL (default http://127.0.0.1:8086).")
    parser.add_argument("--db", metavar="NAME", help="Database name (default streetwatch).")


def main(argv: list[str] | None = None) -> int:
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
    listing.add_argument("--status", choices=["open", "claimed", "closed"], help="Only leads with this status.")
    listing.add_argument("--category", help="Only this category (street_vending, illegal_dumping, ...).")
    listing.add_argument("--district", help="Only this district.")
    listing.add_argument("--json", action="store_true", help="Print a JSON array instead of a table.")
    listing.set_defaults(handler=_leads_list)

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = load_gateway_config(args.config, {
            "influx.url": args.influx, "influx.db": args.db,
            "mqtt.url": getattr(args, "mqtt", None), "mqtt.client_id": getattr(args, "client_id", None),
            "evidence_dir": str(args.evidence_dir) if getattr(args, "evidence_dir", None) else None,
        })
    except GatewayConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    return args.handler(args, config)


def _influx_client(config: GatewayConfig):
    from gateway.influx import InfluxClient
    from gateway.store import PRECISION

    settings = config.influx
    password = os.environ.get(settings.password_env) if settings.password_env else None
    token = os.environ.get(settings.token_env) if settings.token_env else None
    return InfluxClient(settings.url, settings.db, username=settings.username, password=password, token=token,
                        ca_file=str(settings.ca_file) if settings.ca_file else None, precision=PRECISION)


def _run(args: argparse.Namespace, config: GatewayConfig) -> int:
    from edge.contract import shared_subscription
    from gateway.influx import InfluxError
    from gateway.ingest import INGESTED_KINDS, Ingest
    from gateway.mqtt import GatewayLink

    log = logging.getLogger("gateway")
    client = _influx_client(config)
    try:
        client.create_database()
    except InfluxError as exc:
        print(f"gateway: InfluxDB at {config.influx.url} is not usable: {exc}", file=sys.stderr)
        return 2
    ingest = Ingest(config, client)
    subscriptions = [shared_subscription(config.mqtt.share_group, kind) for kind in INGESTED_KINDS]
    password = os.environ.get(config.mqtt.password_env) if config.mqtt.password_env else None
    link = GatewayLink(config.mqtt.url, config.mqtt.client_id, subscriptions, ingest.offer,
                       username=config.mqtt.username, password=password,
                       ca_file=str(config.mqtt.ca_file) if config.mqtt.ca_file else None)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: ingest.stop())
    link.start()
    log.info("gateway.started mqtt=%s influx=%s db=%s", config.mqtt.url, config.influx.url, config.influx.db)
    try:
        ingest.run(link.ack)
    finally:
        link.stop()
        client.close()
        log.info("gateway.stopped %s", dict(ingest.stats.counts))
    return 0


def _leads_list(args: argparse.Namespace, config: GatewayConfig) -> int:
    from gateway.influx import InfluxError
    from gateway.store import list_leads

    try:
        with _influx_client(config) as client:
            leads = list_leads(client, status=args.status, category=args.category, district=args.district)
    except InfluxError as exc:
        print(f"gateway: cannot read leads from {config.influx.url}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(leads, indent=2))
        return 0
    print(format_leads_table(leads))
    return 0


def format_leads_table(leads: list[dict]) -> str:
    from datetime import datetime, timezone

    def when(ms: int | None) -> str:
        return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"

    header = f"{'LEAD':<13} {'STATUS':<8} {'CATEGORY':<16} {'DISTRICT':<10} {'ZONE':<16} {'DET':>4} {'SCORE':>5}  {'FIRST SEEN (UTC)':<19}  {'LAST SEEN (UTC)':<19}  BOXES"
    lines = [header]
    for lead in leads:
        lines.append(
            f"{lead['lead_id']:<13} {lead.get('status', '-'):<8} {lead.get('category', '-'):<16} "
            f"{lead.get('district', '-'):<10} {lead.get('zone', '-'):<16} {lead.get('detections', 0):>4} "
            f"{lead.get('score', 0.0):>5.2f}  {when(lead.get('first_seen')):<19}  {when(lead.get('last_seen')):<19}  "
            f"{','.join(lead.get('boxes', []))}"
        )
    lines.append(f"{len(leads)} lead(s)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
