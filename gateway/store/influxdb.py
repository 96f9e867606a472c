"""The InfluxDB ``LeadStore``: every InfluxQL statement the gateway runs is in this module.

Reads go through ``InfluxClient.query`` (one statement, all series) and
``query_all`` (paged, for reads that may exceed the server's row limit).
Lead ids are "L" and hex digits and district names match the contract's
NAME_PATTERN, so both go into regular expressions without escaping.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Self

from gateway.config import GatewayConfig
from gateway.dedupe.seqgaps import Gap, parse_ranges
from gateway.store.base import (
    SEQ_MEASUREMENTS,
    BoxSeqState,
    LeadQuery,
    Row,
    SeenEvent,
    add_chain,
    add_evidence,
    add_gap,
    lead_event,
    new_box_summary,
    seen_at,
)
from gateway.store.influx import InfluxClient, InfluxRejected, quote_ident, quote_string
from gateway.store.lineprotocol import Point
from gateway.store.schema import BBOX_FIELDS, LEDGER_NAMES, NS_PER_MS, PRECISION, ms_to_ns

log = logging.getLogger(__name__)

IDS_PER_QUERY = 200
WINDOWS_PER_REQUEST = 200   # time windows of late detections read in one request (InfluxQL has no OR of times)
LEAD_TAGS = ("lead_id", "category", "district", "zone")
FORBIDDEN = 403
STATUS_READ_AHEAD = 4
# Every status a lead point may hold (claimed: leads from before dispatching).
LEAD_STATUSES = ("open", "claimed", "dispatched", "on_scene", "resolved", "closed")
# A lead's ledger, read from its detections, under the names ``gateway leads show`` prints.
LEDGER_COLUMNS = ", ".join(quote_ident(stored) if stored == name else f"{quote_ident(stored)} AS {quote_ident(name)}"
                           for stored, name in LEDGER_NAMES.items())


class InfluxStore:
    """The gateway's store in one InfluxDB database."""

    def __init__(self, client: InfluxClient) -> None:
        self.client = client

    @classmethod
    def open(cls, config: GatewayConfig) -> InfluxStore:
        return cls(influx_client(config))

    def create_database(self) -> None:
        """Make the database, or, for a login with rights on that database only (InfluxDB refuses it
        ``CREATE DATABASE``), make sure it exists and can be read."""
        try:
            self.client.create_database()
        except InfluxRejected as exc:
            if exc.status != FORBIDDEN:
                raise
            self._check_existing_database(exc)

    def _check_existing_database(self, refusal: InfluxRejected) -> None:
        database = self.client.database
        try:
            self.client.query("SHOW MEASUREMENTS LIMIT 1")
        except InfluxRejected as exc:
            raise InfluxRejected(
                f"database {database!r} cannot be made with this login ({refusal.message}) nor read ({exc.message}); "
                f"an InfluxDB admin makes it and gives this user its rights: CREATE DATABASE {quote_ident(database)}; "
                f"GRANT ALL ON {quote_ident(database)} TO <user>", status=exc.status) from None
        log.info("influx.database_ready db=%s created=no reason=login_not_admin", database)

    def write(self, points: Sequence[Point]) -> None:
        self.client.write(points)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ----------------------------------------------------------------- the gateway's own state

    def ledger_rows(self, since_ms: int, until_ms: int | None, districts: Sequence[str] = ()) -> list[Row]:
        window = f"time >= {ms_to_ns(since_ms)}" + (f" AND time < {ms_to_ns(until_ms)}" if until_ms else "")
        return self.client.query_all(f"SELECT {LEDGER_COLUMNS} FROM {quote_ident('detection')} "
                                     f"WHERE {window}{_district_filter(districts)}")

    def ledger_rows_in(self, windows: Sequence[tuple[int, int]], districts: Sequence[str] = ()) -> list[Row]:
        rows: list[Row] = []
        for start in range(0, len(windows), WINDOWS_PER_REQUEST):
            statements = [f"SELECT {LEDGER_COLUMNS} FROM {quote_ident('detection')} WHERE time >= {ms_to_ns(since)} "
                          f"AND time < {ms_to_ns(until)}{_district_filter(districts)}"
                          for since, until in windows[start:start + WINDOWS_PER_REQUEST]]
            for found in self.client.query_many(statements):
                rows.extend(found)
        return rows

    def ledgers(self, lead_ids: Sequence[str]) -> dict[str, list[Row]]:
        found: dict[str, list[Row]] = defaultdict(list)
        for chunk in _chunks(lead_ids):
            for row in self.client.query_all(f"SELECT {LEDGER_COLUMNS} FROM {quote_ident('detection')} "
                                             f"WHERE {_id_filter(chunk)}"):
                found[row["lead_id"]].append(row)
        return dict(found)

    def lead_rows(self, lead_ids: Sequence[str]) -> dict[str, Row]:
        found: dict[str, Row] = {}
        for chunk in _chunks(lead_ids):
            for row in self.client.query_all(f"SELECT * FROM {quote_ident('lead')} WHERE {_id_filter(chunk)}"):
                found[row["lead_id"]] = row
        return found

    def box_seqs(self, since_ms: int, districts: Sequence[str] = ()) -> list[BoxSeqState]:
        best: dict[str, BoxSeqState] = {}
        for measurement in SEQ_MEASUREMENTS:
            rows = self.client.query(f"SELECT max({quote_ident('seq')}), min({quote_ident('seq')}) "
                                     f"FROM {quote_ident(measurement)} "
                                     f"WHERE time >= {ms_to_ns(since_ms)}{_district_filter(districts)} "
                                     f"GROUP BY {quote_ident('box')}, {quote_ident('district')}")
            for row in rows:
                current = best.get(row["box"])
                if current is None:
                    best[row["box"]] = BoxSeqState(row["box"], row["district"], row["max"], row["min"])
                else:
                    best[row["box"]] = BoxSeqState(row["box"], row["district"], max(row["max"], current.last_seq),
                                                   min(row["min"], current.first_seq))
        return list(best.values())

    def open_gaps(self, since_ms: int, districts: Sequence[str] = ()) -> list[Gap]:
        rows = self.client.query_all(f"SELECT * FROM {quote_ident('box_gap')} "
                                     f"WHERE time >= {ms_to_ns(since_ms)}{_district_filter(districts)}")
        return [Gap(row["box"], row["district"], row["from_seq"], row["to_seq"], row["time"] // NS_PER_MS,
                    parse_ranges(row.get("ranges", "")), row.get("policy", 0), row.get("backfilled", 0)) for row in rows if row.get("status") == "open"]

    def events_since(self, since_ms: int) -> list[SeenEvent]:
        rows = self.client.query_all(f"SELECT * FROM {quote_ident('lead_event')} WHERE time >= {ms_to_ns(since_ms)}")
        return sorted((SeenEvent(row["lead_id"], row["time"], lead_event(row)) for row in rows),
                      key=lambda seen: seen.time_ns)

    # ----------------------------------------------------------------- the desk

    def leads(self, category: str | None = None, district: str | None = None) -> list[Row]:
        conditions = [f"{quote_ident(tag)} = {quote_string(value)}"
                      for tag, value in (("category", category), ("district", district)) if value]
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return self.client.query(f"SELECT * FROM {quote_ident('lead')}{where} GROUP BY *")

    def leads_where(self, query: LeadQuery) -> list[Row]:
        """A page (``limit``) in two statements: the page's lead ids, reading as few fields as will do, then
        those leads whole by their ``lead_id`` tag (the index finds them). One ``SELECT *`` over every lead
        would open a cursor per field and lead, several times slower with thousands of leads."""
        if query.limit is None:
            columns = ", ".join(quote_ident(name) for name in (*query.fields, *LEAD_TAGS)) if query.fields else "*"
            return self.client.query_all(f"SELECT {columns} FROM {quote_ident('lead')}{_lead_conditions(query)} "
                                         "ORDER BY time DESC")
        keys = self._newest_by_status(query) if _only_status_filter(query) else None
        if keys is None:
            keys = self.client.query(f"SELECT {quote_ident('status')}, {quote_ident('lead_id')} FROM "
                                     f"{quote_ident('lead')}{_lead_conditions(query)} ORDER BY time DESC "
                                     f"LIMIT {int(query.limit)}")
        if not keys:
            return []
        order = {row["lead_id"]: index for index, row in enumerate(keys)}
        rows = self.client.query(f"SELECT * FROM {quote_ident('lead')} WHERE {_id_filter(list(order))}")
        return sorted((row for row in rows if row["lead_id"] in order), key=lambda row: order[row["lead_id"]])

    def _newest_by_status(self, query: LeadQuery) -> list[Row] | None:
        """The page's ids from the newest leads, their status filtered here: InfluxDB 1.x reads the status
        of every lead about twice as fast without a condition on it. None when the newest
        ``STATUS_READ_AHEAD`` x ``limit`` leads do not fill the page (then InfluxDB filters)."""
        assert query.limit is not None
        ahead = STATUS_READ_AHEAD * query.limit
        newest = self.client.query(f"SELECT {quote_ident('status')}, {quote_ident('lead_id')} FROM "
                                   f"{quote_ident('lead')}{_lead_conditions(query, fields=False)} "
                                   f"ORDER BY time DESC LIMIT {ahead}")
        wanted = set(query.statuses)
        keys = [row for row in newest if not wanted or row.get("status") in wanted][:query.limit]
        return keys if len(keys) == query.limit or len(newest) < ahead else None

    def lead(self, lead_id: str) -> Row | None:
        rows = self.client.query(f"SELECT * FROM {quote_ident('lead')} WHERE {quote_ident('lead_id')} = "
                                 f"{quote_string(lead_id)} GROUP BY *")
        return rows[0] if rows else None

    def ledger(self, lead_id: str) -> list[Row]:
        bbox = ", ".join(quote_ident(name) for name in BBOX_FIELDS)
        rows = self.client.query_all(f"SELECT {LEDGER_COLUMNS}, {bbox} FROM {quote_ident('detection')} WHERE "
                                     f"{quote_ident('lead_id')} = {quote_string(lead_id)}")
        return sorted(rows, key=lambda row: row.get("n") or 0)

    def detection_rows(self, lead_id: str) -> list[Row]:
        return self.client.query_all(f"SELECT * FROM {quote_ident('detection')} WHERE {quote_ident('lead_id')} = "
                                     f"{quote_string(lead_id)}")

    def lead_events(self, lead_id: str) -> list[Row]:
        return self.client.query_all(f"SELECT * FROM {quote_ident('lead_event')} WHERE {quote_ident('lead_id')} = "
                                     f"{quote_string(lead_id)}")

    def boxes(self, since_ms: int) -> list[Row]:
        boxes: dict[str, Row] = {}
        since = f"time >= {ms_to_ns(since_ms)}"
        group = f"GROUP BY {quote_ident('box')}, {quote_ident('district')}"

        def box(row: Row) -> Row:
            return boxes.setdefault(row["box"], new_box_summary(row["box"], row["district"]))

        for measurement in SEQ_MEASUREMENTS:
            for row in self.client.query(f"SELECT last({quote_ident('seq')}) FROM {quote_ident(measurement)} "
                                         f"WHERE {since} {group}"):
                seen_at(box(row), row["time"])
            for row in self.client.query(f"SELECT max({quote_ident('seq')}) FROM {quote_ident(measurement)} "
                                         f"WHERE {since} {group}"):
                entry = box(row)
                entry["last_seq"] = max(entry["last_seq"] or 0, row["max"])
        for row in self.client.query(f"SELECT last({quote_ident('online')}) FROM {quote_ident('box_status')} "
                                     f"WHERE {since} {group}"):
            entry = box(row)
            entry["online"] = bool(row["last"])
            seen_at(entry, row["time"])
        for row in self.client.query_all(f"SELECT * FROM {quote_ident('box_gap')} WHERE {since}"):
            add_gap(box(row), row)
        for row in self.client.query(f"SELECT last({quote_ident('delivery')}) FROM {quote_ident('box_health')} "
                                     f"WHERE {since} {group}"):
            box(row)["delivery"] = row["last"]
        for row in self.client.query(f"SELECT last(*) FROM {quote_ident('box_evidence')} WHERE {since} {group}"):
            add_evidence(box(row), {name.removeprefix("last_"): value for name, value in row.items()})
        for row in self.client.query(f"SELECT last(*) FROM {quote_ident('box_chain')} WHERE {since} {group}"):
            add_chain(box(row), {name.removeprefix("last_"): value for name, value in row.items()})
        return sorted(boxes.values(), key=lambda b: (b["district"], b["box"]))


def influx_client(config: GatewayConfig) -> InfluxClient:
    """The InfluxDB client the configuration describes (passwords and tokens from the environment or files)."""
    settings = config.influx
    password, token = settings.password(), settings.token()
    return InfluxClient(settings.url, settings.db, username=settings.username, password=password, token=token,
                        ca_file=str(settings.ca_file) if settings.ca_file else None, precision=PRECISION)


def _only_status_filter(query: LeadQuery) -> bool:
    return query.team is None and query.box is None and query.opened_since_ms is None


def _lead_conditions(query: LeadQuery, fields: bool = True) -> str:
    """The WHERE clause of a desk query on ``lead`` points (or nothing); without ``fields``, on tags and time
    only."""
    conditions = [f"{quote_ident(name)} = {quote_string(value)}" for name, value in (
        ("category", query.category), ("district", query.district), ("zone", query.zone),
        ("team", query.team if fields else None)) if value is not None]
    if query.statuses and fields:
        # InfluxDB 1.x evaluates a conjunction of != much faster than a disjunction of =, so the shorter
        # of the two spellings is not the criterion: the complement is used whenever it is known and short.
        others = [status for status in LEAD_STATUSES if status not in query.statuses]
        if set(query.statuses) <= set(LEAD_STATUSES) and len(others) <= 2:
            conditions.extend(f"{quote_ident('status')} != {quote_string(status)}" for status in others)
        else:
            conditions.append("(" + " OR ".join(f"{quote_ident('status')} = {quote_string(status)}"
                                                for status in query.statuses) + ")")
    if query.box is not None and fields:
        conditions.append(f"{quote_ident('boxes')} =~ /(^|,){re.escape(query.box)}(,|$)/")
    if query.opened_since_ms is not None and fields:
        conditions.append(f"{quote_ident('opened_at')} >= {int(query.opened_since_ms)}")
    if query.since_ms is not None:
        conditions.append(f"time >= {ms_to_ns(query.since_ms)}")
    if query.until_ms is not None:
        conditions.append(f"time < {ms_to_ns(query.until_ms)}")
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _id_filter(lead_ids: Sequence[str]) -> str:
    return f"{quote_ident('lead_id')} =~ /^(?:{'|'.join(lead_ids)})$/"


def _district_filter(districts: Sequence[str]) -> str:
    """An InfluxQL condition on the district tag, or nothing for all districts."""
    return f" AND {quote_ident('district')} =~ /^(?:{'|'.join(districts)})$/" if districts else ""


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), IDS_PER_QUERY):
        yield items[start:start + IDS_PER_QUERY]
