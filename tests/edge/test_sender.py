"""The sender's delivery rules, on a real spool and a stand-in link: the PUBACK frees the window, the gateway's
confirmation frees the spool, unconfirmed messages are sent again with backoff, a box never confirmed falls back."""

import threading
import time

from contract import Confirmation, ResendRequest
from edge.sender import CONFIRMED, PUBACK, DeliveryPolicy, Sender
from edge.spool import Spool

NOW_MS = 1_795_813_200_000


class Link:
    """Connected; records what is published; the broker acknowledges when the test says so."""

    def __init__(self) -> None:
        self.connected = True
        self.generation = 1
        self.published: list[tuple[int, bytes]] = []
        self._mid = 0
        self.lock = threading.Lock()

    def publish(self, topic, payload, qos=1, retain=False):
        with self.lock:
            self._mid += 1
            self.published.append((self._mid, payload))
            return self._mid


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path, **policy):
    spool = Spool(tmp_path / "spool.db")
    clock = Clock()
    sender = Sender(spool, window=10, idle_s=0.01, policy=DeliveryPolicy(**policy), clock=clock)
    link = Link()
    sender.attach(link)
    return spool, sender, link, clock


def step(sender: Sender) -> None:
    """One round of the sender's loop, on this thread."""
    sender._apply_confirmations()
    sender._check_fallback()
    sender._forget_acknowledged()
    sender._send_some()
    sender._resend_due()


def ack_all(sender: Sender, link: Link) -> None:
    for mid, _ in list(link.published):
        sender.acknowledge(mid)
    link.published.clear()


def confirmation(upto, ranges=()):
    return Confirmation(box="b", district="d", ts=NOW_MS, upto=upto, ranges=list(ranges))


def test_the_puback_frees_the_window_and_the_confirmation_the_spool(tmp_path):
    spool, sender, link, _ = make(tmp_path)
    for _ in range(5):
        spool.append("d", lambda seq: str(seq).encode())
    step(sender)
    assert [p for _, p in link.published] == [b"1", b"2", b"3", b"4", b"5"]
    ack_all(sender, link)
    step(sender)
    assert spool.depth() == 5 and sender.in_flight() == 0 and sender.awaiting() == 5
    sender.confirmed(confirmation(2, [(4, 4)]))
    step(sender)
    assert [m.seq for m in spool.after(0, 10)] == [3, 5] and sender.awaiting() == 2


def test_unconfirmed_messages_are_sent_again_oldest_first_with_backoff_and_a_cap(tmp_path):
    spool, sender, link, clock = make(tmp_path, resend_after_s=10, resend_max_s=25, resend_in_flight=2)
    for _ in range(3):
        spool.append("d", lambda seq: str(seq).encode())
    step(sender)
    ack_all(sender, link)
    clock.now += 9
    step(sender)
    assert link.published == []
    clock.now += 1
    step(sender)
    assert [p for _, p in link.published] == [b"1", b"2"]          # the oldest two: the cap
    ack_all(sender, link)
    step(sender)
    assert link.published == []                                     # 3 waits while 1 and 2 are being re-sent
    clock.now += 19
    step(sender)
    assert link.published == []                                     # the second try waits 20 s
    clock.now += 1
    step(sender)
    assert [p for _, p in link.published] == [b"1", b"2"]
    ack_all(sender, link)
    sender.confirmed(confirmation(1))                               # a place comes free
    step(sender)
    assert [p for _, p in link.published] == [b"3"]
    assert sender.resent == 5


def test_a_resend_request_is_answered_at_once_from_the_spool(tmp_path):
    spool, sender, link, _ = make(tmp_path)
    for _ in range(4):
        spool.append("d", lambda seq: str(seq).encode())
    step(sender)
    ack_all(sender, link)
    sender.resend_requested(ResendRequest(box="b", district="d", ts=NOW_MS, from_seq=2, to_seq=3))
    step(sender)
    assert [p for _, p in link.published] == [b"2", b"3"]


def test_a_box_never_confirmed_falls_back_to_the_puback_and_a_confirmation_brings_it_back(tmp_path):
    spool, sender, link, clock = make(tmp_path, confirm_timeout_s=30, resend_after_s=1000)
    spool.append("d", lambda seq: b"1")
    step(sender)
    ack_all(sender, link)
    clock.now += 29
    step(sender)
    assert sender.mode == CONFIRMED and spool.depth() == 1
    clock.now += 1
    step(sender)
    assert sender.mode == PUBACK
    step(sender)
    assert spool.depth() == 0
    spool.append("d", lambda seq: b"2")
    step(sender)
    ack_all(sender, link)
    step(sender)
    assert spool.depth() == 0                                        # freed on the PUBACK
    sender.confirmed(confirmation(2))
    step(sender)
    assert sender.mode == CONFIRMED
    spool.append("d", lambda seq: b"3")
    step(sender)
    ack_all(sender, link)
    clock.now += 100
    step(sender)
    assert spool.depth() == 1 and sender.mode == CONFIRMED           # once heard, it waits for confirmations


def test_messages_without_seq_leave_on_the_puback(tmp_path):
    spool, sender, link, _ = make(tmp_path)
    spool.append_raw("e", b"\xff\xd8\xffjpeg", evidence=True)
    step(sender)
    ack_all(sender, link)
    step(sender)
    assert spool.depth() == 0


def test_the_thread_runs_the_same_rules(tmp_path):
    spool, sender, link, _ = make(tmp_path)
    sender.clock = time.monotonic
    spool.append("d", lambda seq: b"1")
    sender.start()
    try:
        deadline = time.monotonic() + 5
        while not link.published and time.monotonic() < deadline:
            time.sleep(0.01)
        ack_all(sender, link)
        sender.confirmed(confirmation(1))
        assert sender.drain(5)
    finally:
        sender.stop()
