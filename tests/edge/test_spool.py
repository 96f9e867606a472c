"""The disk spool: seq survives reopening, messages leave only when removed."""

import pytest

from edge.spool import Spool


def test_seq_is_kept_across_reopen(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    assert spool.append("t", lambda seq: f"m{seq}".encode()) == 1
    assert spool.append("t", lambda seq: f"m{seq}".encode()) == 2
    spool.close()
    reopened = Spool(tmp_path / "spool.db")
    assert reopened.append("t", lambda seq: f"m{seq}".encode()) == 3
    assert [m.payload for m in reopened.after(0, 10)] == [b"m1", b"m2", b"m3"]


def test_a_failed_build_takes_no_seq_and_stores_nothing(tmp_path):
    spool = Spool(tmp_path / "spool.db")

    def broken(seq: int) -> bytes:
        raise ValueError("bad message")

    with pytest.raises(ValueError):
        spool.append("t", broken)
    assert spool.depth() == 0 and spool.last_seq() == 0
    assert spool.append("t", lambda seq: b"x") == 1


def test_messages_leave_in_order_only_when_removed(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    for _ in range(5):
        spool.append("t", lambda seq: str(seq).encode())
    spool.append_raw("e", b"\xff\xd8\xffjpeg")
    first = spool.after(0, 3)
    assert [m.payload for m in first] == [b"1", b"2", b"3"]
    spool.remove([first[1].row])
    assert [m.payload for m in spool.after(0, 10)] == [b"1", b"3", b"4", b"5", b"\xff\xd8\xffjpeg"]
    assert [m.payload for m in spool.after(first[2].row, 10)] == [b"4", b"5", b"\xff\xd8\xffjpeg"]
    assert spool.depth() == 5 and spool.oldest_age_s() >= 0


def _detection(seq: int) -> bytes:
    return f'{{"seq": {seq}}}'.encode()


def test_past_max_size_the_oldest_telemetry_goes_first(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_bytes=200_000)
    for _ in range(20):
        spool.append("d", _detection)
    for _ in range(400):
        spool.append("h", lambda seq: b"t" * 1000, telemetry=True)
    topics = [m.topic for m in spool.after(0, 10_000)]
    assert topics.count("d") == 20                    # detections all kept
    assert 0 < topics.count("h") < 400
    assert spool.dropped()["telemetry"] > 0
    assert "keep" not in spool.dropped()


def test_a_full_disk_drops_telemetry_then_evidence_then_detections_loudly(tmp_path, caplog):
    spool = Spool(tmp_path / "spool.db", page_limit=60)   # 60 pages of 4 KiB stand in for a full disk
    for _ in range(10):
        spool.append("h", lambda seq: b"t" * 3000, telemetry=True)
    for _ in range(10):
        spool.append_raw("e", b"\xff\xd8\xff" + b"j" * 3000, evidence=True)
    for _ in range(120):
        spool.append("d", lambda seq: str(seq).encode() + b" " * 3000)
    dropped = spool.dropped()
    assert dropped["telemetry"] == 10 and dropped["evidence"] == 10 and dropped["keep"] > 0
    remaining = spool.after(0, 10_000)
    assert {m.topic for m in remaining} == {"d"}
    seqs = [int(m.payload.split()[0]) for m in remaining]
    assert seqs == sorted(seqs) and seqs[-1] == 130          # the newest detections are the ones kept
    assert any("spool.dropped class=keep" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


def test_a_confirmation_forgets_the_seqs_it_covers_and_only_those(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    for _ in range(10):
        spool.append("d", _detection)
    spool.append_raw("e", b"\xff\xd8\xffjpeg", evidence=True)
    assert not spool.confirmation_heard()
    gone = spool.confirm(3, [(5, 6), (9, 9)])
    assert len(gone) == 6
    assert [m.seq for m in spool.after(0, 100)] == [4, 7, 8, 10, None]   # evidence leaves on the PUBACK
    assert spool.confirmation_heard() and spool.confirmed_upto() == 3
    assert [m.seq for m in spool.seq_rows(7, 100, 10)] == [7, 8, 10]
    spool.close()
    assert Spool(tmp_path / "spool.db").confirmation_heard()              # kept across restarts


def test_seqs_dropped_by_policy_are_kept_as_ranges_until_confirmed(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_bytes=200_000)
    spool.append("d", _detection)
    for _ in range(400):
        spool.append("h", lambda seq: b"t" * 1000, telemetry=True)
    [(kind, first, last)] = spool.dropped_seqs()
    assert kind == "telemetry" and first == 2 and last == first + spool.dropped()["telemetry"] - 1
    spool.confirm(last, [])
    assert spool.dropped_seqs() == []


def test_a_spool_from_before_confirmed_delivery_gains_the_seq_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE outbox (row INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
                             qos INTEGER NOT NULL, retain INTEGER NOT NULL, class INTEGER NOT NULL,
                             created_ms INTEGER NOT NULL);
        INSERT INTO meta VALUES ('seq', 7);
        INSERT INTO outbox (topic, payload, qos, retain, class, created_ms) VALUES ('d', x'7b7d', 1, 0, 0, 1);
    """)
    db.commit()
    db.close()
    spool = Spool(path)
    assert [m.seq for m in spool.after(0, 10)] == [None]     # sent before: leaves on the PUBACK, as then
    assert spool.append("d", _detection) == 8
    assert [m.seq for m in spool.after(0, 10)] == [None, 8]
