"""What the gateway knows about each box: last heard of, online, last seq, open gaps."""

from __future__ import annotations

from typing import Any

from gateway.store.history import SEQ_MEASUREMENTS
from gateway.store.influx import InfluxClient, quote_ident
from gateway.store.schema import NS_PER_MS, ms_to_ns


def list_boxes(client: InfluxClient, since_ms: int) -> list[dict[str, Any]]:
    """One summary per box heard of since ``since_ms``, sorted by district and box."""
    boxes: dict[str, dict[str, Any]] = {}
    since = f"time >= {ms_to_ns(since_ms)}"
    group = f"GROUP BY {quote_ident('box')}, {quote_ident('district')}"

    def box(row: dict[str, Any]) -> dict[str, Any]:
        return boxes.setdefault(row["box"], {"box": row["box"], "district": row["district"], "last_seen": None,
                                             "online": None, "last_seq": None, "open_gaps": 0, "missing": 0})

    for measurement in SEQ_MEASUREMENTS:
        for row in client.query(f"SELECT last({quote_ident('seq')}) FROM {quote_ident(measurement)} "
                                f"WHERE {since} {group}"):
            _seen(box(row), row["time"])
        for row in client.query(f"SELECT max({quote_ident('seq')}) FROM {quote_ident(measurement)} "
                                f"WHERE {since} {group}"):
            entry = box(row)
            entry["last_seq"] = max(entry["last_seq"] or 0, row["max"])
    for row in client.query(f"SELECT last({quote_ident('online')}) FROM {quote_ident('box_status')} "
                            f"WHERE {since} {group}"):
        entry = box(row)
        entry["online"] = bool(row["last"])
        _seen(entry, row["time"])
    for row in client.query_all(f"SELECT * FROM {quote_ident('box_gap')} WHERE {since}"):
        if row.get("status") == "open":
            entry = box(row)
            entry["open_gaps"] += 1
            entry["missing"] += row.get("missing", 0)
    return sorted(boxes.values(), key=lambda b: (b["district"], b["box"]))


def _seen(entry: dict[str, Any], time_ns: int) -> None:
    ms = time_ns // NS_PER_MS
    entry["last_seen"] = max(entry["last_seen"] or 0, ms)
