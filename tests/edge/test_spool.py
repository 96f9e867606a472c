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
    spool.remove(first[1].row)
    assert [m.payload for m in spool.after(0, 10)] == [b"1", b"3", b"4", b"5", b"\xff\xd8\xffjpeg"]
    assert [m.payload for m in spool.after(first[2].row, 10)] == [b"4", b"5", b"\xff\xd8\xffjpeg"]
    assert spool.depth() == 5 and spool.oldest_age_s() >= 0
