"""Writing to InfluxDB, in a process of its own.

All of the gateway's Python work shares one interpreter lock: receiving,
checking, deduping and writing take turns on one core. Writing (encoding line
protocol, the HTTP requests, waiting out InfluxDB) is the part that needs none
of the ingest's state, so it runs in a child process, and the ingest hands it
each batch's points as plain tuples, which are cheap to pickle:

    ingest --batches--> writer process: join queued batches, write until stored --reports--> ingest acknowledges

* ``InfluxWriter`` writes one list of points until InfluxDB holds it: it waits
  out an unreachable InfluxDB with backoff, makes a missing database again, and
  dead-letters a point InfluxDB refuses. A field type conflict (a field that
  InfluxDB typed otherwise earlier in the shard) is learned from InfluxDB's
  answer: from then on that field, of that type, is taken out of the points of
  its measurement before they are written, and each such point is stored
  without it and dead-lettered whole with the reason, so one bad field never
  holds up the rest of a batch, later batches, or other boxes. Other refusals
  are narrowed down by halving the write. It runs in the child, and directly
  in tests.
* ``WriteQueue`` joins the batches queued behind one into one write, so under
  load one request (and one InfluxDB fsync) carries several batches.
* ``WriterProcess`` is the child as the ingest sees it: ``put`` a batch; each
  batch is reported stored, in order, to ``on_stored``. It takes up to two
  full writes' worth of batches: while one write is with InfluxDB the next one
  waits, already encoded (the child's batch thread encodes each batch as it
  arrives, while the write thread waits for InfluxDB's answer), so InfluxDB
  never waits for the gateway between writes.

The child ends with the gateway: it is killed when its parent dies, and it
stops when the batch pipe closes. Whatever it had not stored is redelivered by
the broker, since only stored batches are acknowledged.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import queue
import re
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from common.backoff import Waits
from common.logs import configure_logging
from common.processes import die_with_parent, first_word
from gateway.config import GatewayConfig, RetrySettings
from gateway.store import schema
from gateway.store.influx import InfluxClient, InfluxError, InfluxRejected, InfluxUnavailable
from gateway.store.influxdb import influx_client
from gateway.store.lineprotocol import EncodedPoint, LineProtocolError, Point, encode_point, encoded
from gateway.store.schema import Rejected

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
# InfluxDB 1.x: 'partial write: field type conflict: input field "g" on measurement "n" is type string, ...'
_CONFLICT = re.compile(r'input field \\?"(?P<field>.+?)\\?" on measurement \\?"(?P<measurement>.+?)\\?" '
                       r'is type (?P<type>\w+)')
CONFLICT_MEMORY_S = 3600.0   # shards roll over, and with them the field types: a learned conflict is tried again
MAX_LEARNED_PER_WRITE = 32
_END = b""                    # on the batch pipe: no more batches


# --------------------------------------------------------------------------- writing


class InfluxWriter:
    """Writes lists of points; never drops one while InfluxDB is away, dead-letters what it refuses."""

    def __init__(self, client: InfluxClient, retry: RetrySettings, stop: threading.Event, stats: Counter,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.retry = retry
        self.stop = stop
        self.stats = stats
        self.clock = clock
        # (measurement, field, InfluxDB type of the refused values) -> when learned (clock seconds)
        self.conflicts: dict[tuple[str, str, str], float] = {}

    def write_until_stored(self, points: list[Point]) -> bool:
        """True once InfluxDB holds the points (or their dead letters); False if stopped first."""
        if not points:
            return True
        backoff = Waits(self.retry.backoff())
        learned = 0
        while not self.stop.is_set():
            screened = self._screened(points)
            try:
                self.client.write(screened)
                return True
            except InfluxUnavailable as exc:
                log.warning("influx.unavailable retry_in_s=%.1f error=%s", backoff.next_s, exc)
            except InfluxRejected as exc:
                if exc.status == 404:  # the database went away: make it again
                    log.error("influx.database_missing db=%s error=%s", self.client.database, exc)
                    self._create_database()
                    continue
                if learned < MAX_LEARNED_PER_WRITE and self._learn_conflict(exc.message):
                    learned += 1
                    continue   # again without it: InfluxDB kept the rest of the partial write; rewriting is idempotent
                # Our own encoding or a refusal we cannot read: keep what InfluxDB accepts, dead-letter the rest.
                log.error("influx.rejected_batch points=%d error=%s", len(screened), str(exc)[:300])
                return self._write_halves(screened)
            backoff.wait(self.stop)
        return False

    # ------------------------------------------------------------------ field type conflicts

    def _learn_conflict(self, message: str) -> bool:
        """Remember the conflict InfluxDB names; False if it names none, or one already known."""
        found = _CONFLICT.search(message)
        if found is None:
            return False
        key = (found["measurement"], found["field"], found["type"])
        if key in self.conflicts and self.clock() - self.conflicts[key] < CONFLICT_MEMORY_S:
            return False
        self.conflicts[key] = self.clock()
        self.stats["field_conflicts"] += 1
        log.error("influx.field_type_conflict measurement=%s field=%s refused_type=%s: points with it are stored "
                  "without it and dead-lettered whole", *key)
        return True

    def _screened(self, points: list[Point]) -> list[Point]:
        """The points with known-conflicting fields taken out; each point changed is dead-lettered whole too."""
        if not self.conflicts:
            return points
        now = self.clock()
        for key, learned in list(self.conflicts.items()):
            if now - learned >= CONFLICT_MEMORY_S:
                del self.conflicts[key]
        bad: dict[str, dict[str, str]] = {}
        for measurement, field, kind in self.conflicts:
            bad.setdefault(measurement, {})[field] = kind
        out: list[Point] = []
        for point in points:
            fields_bad = bad.get(point.measurement)
            clashing = [name for name, kind in (fields_bad or {}).items()
                        if name in point.fields and _influx_type(point.fields[name]) == kind]
            if not clashing:
                out.append(point)
                continue
            kept = {name: value for name, value in point.fields.items() if name not in clashing}
            if kept:
                out.append(Point(point.measurement, point.tags, kept, point.time))
            reason = (f"field type conflict: {', '.join(clashing)} of this type cannot be stored in "
                      f"{point.measurement} (InfluxDB typed it otherwise earlier in the shard); stored without it")
            self.stats["rejected_by_influx"] += 1
            out.append(self._influx_dead_letter(point, reason))
        return out

    def _write_halves(self, points: list[Point]) -> bool:
        """Write what InfluxDB takes, halving a refused write down to the single points it refuses."""
        if len(points) == 1:
            return self._write_or_dead_letter(points[0])
        backoff = Waits(self.retry.backoff())
        while not self.stop.is_set():
            try:
                self.client.write(points)
                return True
            except InfluxUnavailable:
                backoff.wait(self.stop)
            except InfluxRejected:
                middle = len(points) // 2
                return self._write_halves(points[:middle]) and self._write_halves(points[middle:])
        return False

    def _write_or_dead_letter(self, point: Point) -> bool:
        backoff = Waits(self.retry.backoff())
        attempt: Point | None = point
        while attempt is not None:
            if self.stop.is_set():
                return False
            try:
                self.client.write([attempt])
                return True
            except InfluxUnavailable:
                backoff.wait(self.stop)
            except InfluxRejected as exc:
                self.stats["rejected_by_influx"] += 1
                log.error("influx.rejected_point measurement=%s error=%s", attempt.measurement, str(exc)[:300])
                # A refused dead letter is given up, so this ends after two refusals.
                attempt = self._influx_dead_letter(point, str(exc)) if attempt is point else None
        self.stats["lost_points"] += 1
        return True

    def _influx_dead_letter(self, point: Point, reason: str) -> Point:
        try:
            text = encode_point(point)
        except Exception as exc:  # noqa: BLE001 - any encoding failure is the reason itself
            text = f"{point.measurement} (unencodable: {exc})"
        refused = Rejected(f"(influx)/{point.measurement}", f"InfluxDB refused the point: {reason}", text.encode())
        return schema.rejected_point(refused, int(self.clock() * 1000), self.stats["rejected_by_influx"])

    def _create_database(self) -> None:
        try:
            self.client.create_database()
        except InfluxError as exc:
            log.warning("influx.create_database_failed error=%s", exc)
            Waits(self.retry.backoff()).wait(self.stop)


# --------------------------------------------------------------------------- joining batches


@dataclass(slots=True)
class Write:
    """One request's worth: the points of ``batches`` consecutive batches, ``messages`` messages in all."""

    points: list[Point]
    batches: int
    messages: int


class WriteQueue:
    """Batches waiting for InfluxDB, in order, as (points, messages); ``writes`` joins queued ones.

    ``put(None)`` ends ``writes`` once everything queued before it is taken.
    """

    _NOTHING = object()

    def __init__(self, max_messages: int, batches: int) -> None:
        self.max_messages = max_messages
        self._queue: queue.Queue[tuple[list[Point], int] | None] = queue.Queue(maxsize=batches)

    def put(self, batch: tuple[list[Point], int] | None, timeout: float | None = None) -> None:
        """Raises queue.Full after ``timeout`` seconds."""
        self._queue.put(batch, timeout=timeout)

    def writes(self) -> Iterator[Write]:
        """Each queued batch, joined with those queued behind it, up to ``max_messages`` (one batch may exceed it)."""
        held: Any = self._queue.get()
        while held is not None:
            write = Write(list(held[0]), 1, held[1])
            held = self._NOTHING
            while write.messages < self.max_messages:
                try:
                    queued = self._queue.get_nowait()
                except queue.Empty:
                    break
                if queued is None or write.messages + queued[1] > self.max_messages:
                    held = queued
                    break
                write.points.extend(queued[0])
                write.batches += 1
                write.messages += queued[1]
            yield write
            if held is self._NOTHING:
                held = self._queue.get()


# --------------------------------------------------------------------------- the child process, from the ingest


def _influx_type(value: object) -> str:
    """The InfluxDB type a field value is written as."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    return "string"


def to_wire(point: Point) -> tuple:
    """A point as a plain tuple: pickled in a third of the time of the dataclass."""
    if type(point) is EncodedPoint:
        return point.measurement, point.tags, point.fields, point.time, point.line
    return point.measurement, point.tags, point.fields, point.time


def from_wire(item: tuple) -> Point:
    return EncodedPoint(*item) if len(item) == 5 else Point(*item)


class WriterProcess:
    """The writer child, seen from the ingest.

    ``put`` hands a batch over, waiting while ``max_batches`` are handed over
    and not stored yet. A reader thread takes the child's reports and calls
    ``on_stored`` with the messages of each stored write, in order.
    """

    def __init__(self, config: GatewayConfig, on_stored: Callable[[list[Any]], None], stats: Counter) -> None:
        # A full write being stored and a full one waiting behind it: the next write is ready when one ends.
        self.max_batches = 2 * max(1, config.write_max_messages // config.batch_size) + 1
        self._config = config
        self._on_stored = on_stored
        self._stats = stats
        self._slots = threading.Semaphore(self.max_batches)
        self._pending: deque[list[Any]] = deque()
        self._ended = threading.Event()
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._batches: Connection | None = None
        self._reports: Connection | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Start the child and wait until it is ready to write; raises RuntimeError if it is not."""
        batches_out, batches_in = self._context.Pipe(duplex=False)
        reports_out, reports_in = self._context.Pipe(duplex=False)
        self._process = self._context.Process(
            target=_writer_main, name="influx-writer", daemon=True,
            args=(self._config, logging.getLogger().level, os.getpid(), self.max_batches, batches_out, reports_in))
        self._process.start()
        batches_out.close()
        reports_in.close()
        self._batches, self._reports = batches_in, reports_out
        first_word(self._process, self._reports, "writer process", START_TIMEOUT_S)   # "ready"
        self._reader = threading.Thread(target=self._read_reports, name="writer-reports", daemon=True)
        self._reader.start()
        log.info("writer.started pid=%d max_batches=%d", self._process.pid, self.max_batches)

    @property
    def alive(self) -> bool:
        return self._reader is not None and not self._ended.is_set()

    def put(self, points: list[Point], messages: list[Any], stop: threading.Event) -> bool:
        """Hand a batch over; False, and nothing handed over, if the writer ended or ``stop`` was set first."""
        while not self._slots.acquire(timeout=0.2):
            if stop.is_set() or not self.alive:
                return False
        if self.alive:
            self._pending.append(messages)  # before sending: the report may come back at once
            try:
                self._batches.send_bytes(pickle.dumps(([to_wire(p) for p in points], len(messages)), protocol=5))
                return True
            except OSError:  # the child is gone
                self._pending.pop()
        self._slots.release()
        return False

    def close(self, grace_s: float) -> None:
        """No more batches. The child stores what it holds, for up to ``grace_s`` seconds, then is stopped."""
        if self._process is None:
            return
        try:
            self._batches.send_bytes(_END)
        except OSError:
            pass  # already gone
        self._process.join(grace_s)
        if self._process.is_alive():
            log.warning("writer.stopping_unfinished pending_batches=%d", len(self._pending))
            self._process.terminate()   # gives up waiting for InfluxDB; the broker redelivers the rest
            self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        if self._reader is not None:
            self._reader.join(10)
        self._batches.close()

    def _read_reports(self) -> None:
        try:
            while True:
                try:
                    batches, stats = self._reports.recv()
                except (EOFError, OSError):
                    return
                stored: list[Any] = []
                for _ in range(batches):
                    stored.extend(self._pending.popleft())
                    self._slots.release()
                self._stats.update(stats)
                self._on_stored(stored)
        finally:
            self._ended.set()


# --------------------------------------------------------------------------- the child process, inside


def _writer_main(config: GatewayConfig, log_level: int, parent_pid: int, max_batches: int, batches: Connection,
                 reports: Connection) -> None:
    die_with_parent(parent_pid, "gateway-writer")
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole group; the ingest decides
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    configure_logging(log_level)
    waiting = WriteQueue(config.write_max_messages, batches=max_batches + 1)  # never full: the ingest waits first
    threading.Thread(target=_receive, args=(batches, waiting, stop), name="batches", daemon=True).start()
    stats: Counter = Counter()
    with influx_client(config) as client:
        writer = InfluxWriter(client, config.retry, stop, stats)
        reports.send("ready")
        for write in waiting.writes():
            if not writer.write_until_stored(write.points):
                return  # stopped while InfluxDB was away: the broker redelivers
            stats["writes"] += 1
            reports.send((write.batches, dict(stats)))
            stats.clear()


def _receive(batches: Connection, waiting: WriteQueue, stop: threading.Event) -> None:
    while True:
        try:
            data = batches.recv_bytes()
        except (EOFError, OSError):
            stop.set()  # the ingest is gone: nobody can acknowledge what is written now
            waiting.put(None)
            return
        if data == _END:
            waiting.put(None)
            return
        wire, messages = pickle.loads(data)
        waiting.put(([_with_line(from_wire(item)) for item in wire], messages))


def _with_line(point: Point) -> Point:
    """The point with its line made here, in the thread that takes batches off the pipe: it runs while the
    writer waits for InfluxDB's answer, so a write is sent as soon as the one before it is stored instead of
    first spending the encoding's time with InfluxDB idle. A point that cannot be encoded is left as it is,
    for the write to refuse and dead-letter."""
    if type(point) is EncodedPoint:
        return point
    try:
        return encoded(point)
    except LineProtocolError:
        return point
