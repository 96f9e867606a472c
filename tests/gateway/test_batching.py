"""Batching: messages from socket reads become batches of at most batch_size, in order; batches that pile up
while a write runs go out as one write, in order, within the limit."""

import queue
import threading
import time

import pytest

from gateway.config import GatewayConfig
from gateway.ingest.batches import Ingest
from gateway.store.influx import InfluxClient
from gateway.store.lineprotocol import EncodedPoint, Point
from gateway.store.writer import WriteQueue, from_wire, to_wire
from gateway.transport.incoming import Incoming


def batch(name: str, size: int) -> tuple[list[str], int]:
    return [f"{name}{n}" for n in range(size)], size


def test_queued_batches_are_joined_in_order_up_to_the_limit():
    writes = WriteQueue(max_messages=5, batches=10)
    for name, size in (("a", 2), ("b", 2), ("c", 2), ("d", 1), ("e", 3)):
        writes.put(batch(name, size))
    writes.put(None)
    joined = [(write.points, write.batches, write.messages) for write in writes.writes()]
    assert joined == [(["a0", "a1", "b0", "b1"], 2, 4), (["c0", "c1", "d0"], 2, 3), (["e0", "e1", "e2"], 1, 3)]


def test_a_batch_larger_than_the_limit_is_written_alone():
    writes = WriteQueue(max_messages=3, batches=10)
    for name, size in (("a", 1), ("b", 7), ("c", 1)):
        writes.put(batch(name, size))
    writes.put(None)
    assert [write.messages for write in writes.writes()] == [1, 7, 1]


def test_a_lone_batch_is_handed_over_at_once():
    writes = WriteQueue(max_messages=100, batches=10)
    taken = []
    handed = threading.Event()

    def writer():
        for write in writes.writes():
            taken.append(write.points)
            handed.set()

    thread = threading.Thread(target=writer)
    thread.start()
    writes.put(batch("a", 1))
    assert handed.wait(5), "the writer waited for more batches instead of writing"
    writes.put(None)
    thread.join(5)
    assert taken == [["a0"]]


def test_the_queue_applies_backpressure():
    writes = WriteQueue(max_messages=10, batches=1)
    writes.put(batch("a", 1))
    with pytest.raises(queue.Full):
        writes.put(batch("b", 1), timeout=0.05)


def test_a_write_must_hold_at_least_one_batch():
    with pytest.raises(ValueError, match=r"write_max_messages \(100\) must be at least batch_size \(500\)"):
        GatewayConfig.model_validate({"write_max_messages": 100})


def test_points_cross_to_the_writer_process_unchanged():
    plain = Point("detection", {"box": "b 1"}, {"score": 0.5, "n": 2, "id": 'x"y'}, 1_700_000_000_000_000_000)
    made = EncodedPoint("sensor", {"box": "b1"}, {"pm25": 3.0}, 5, "sensor,box=b1 pm25=3.0 5")
    for point in (plain, made):
        back = from_wire(to_wire(point))
        assert type(back) is type(point) and back == point


def test_socket_reads_become_batches_of_at_most_batch_size_in_order(tmp_path):
    config = GatewayConfig.model_validate({"batch_size": 500, "batch_wait_s": 0.05, "evidence_dir": str(tmp_path)})
    with InfluxClient("http://127.0.0.1:9", "unused") as client:
        ingest = Ingest(config, client)
        messages = [Incoming("t", str(n).encode(), n + 1, 1, 0.0) for n in range(710)]
        for start, end in ((0, 300), (300, 700), (700, 710)):
            ingest.offer(messages[start:end])
        assert ingest.next_batch() == messages[:500]
        assert ingest.next_batch() == messages[500:]
        started = time.monotonic()
        assert ingest.next_batch() == []
        assert time.monotonic() - started < 1.0


def test_a_full_inbox_holds_back_the_transport_until_the_gateway_stops(tmp_path):
    """Blocking the transport's thread is the backpressure; once stopping, it must not block it for ever."""
    config = GatewayConfig.model_validate({"batch_size": 500, "evidence_dir": str(tmp_path)})
    with InfluxClient("http://127.0.0.1:9", "unused") as client:
        ingest = Ingest(config, client)
        burst = [Incoming("t", b"x", 1, 1, 0.0)]
        for _ in range(ingest.inbox.maxsize):
            ingest.offer(burst)
        offered = threading.Thread(target=ingest.offer, args=(burst,))
        offered.start()
        offered.join(0.5)
        assert offered.is_alive()   # held back while the ingest runs
        ingest.stop()
        offered.join(2)
        assert not offered.is_alive()
        assert ingest.inbox.qsize() == ingest.inbox.maxsize   # left unacknowledged, for the broker to redeliver
