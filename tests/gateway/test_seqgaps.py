"""Per-box seq accounting: gaps open on a jump, narrow and close as late messages arrive."""

from gateway.dedupe.seqgaps import Gap, SeqTracker, format_ranges, parse_ranges

NOW = 1_795_813_200_000


def test_consecutive_seqs_open_nothing():
    tracker = SeqTracker()
    assert [tracker.observe("b", "d", seq, NOW) for seq in (5, 6, 7)] == [[], [], []]
    assert tracker.boxes["b"].last_seq == 7


def test_a_jump_opens_a_gap_that_late_messages_close():
    tracker = SeqTracker()
    tracker.observe("b", "d", 1, NOW)
    [gap] = tracker.observe("b", "d", 5, NOW)
    assert (gap.from_seq, gap.to_seq, gap.missing, gap.is_open) == (2, 4, 3, True)
    assert tracker.observe("b", "d", 3, NOW) == [gap] and gap.missing_ranges == [(2, 2), (4, 4)]
    assert tracker.observe("b", "d", 3, NOW) == []          # a redelivery of a late message
    assert tracker.observe("b", "d", 2, NOW) == [gap] and gap.is_open
    assert tracker.observe("b", "d", 4, NOW) == [gap] and not gap.is_open
    assert tracker.open_gaps() == []


def test_going_backwards_is_never_a_reset():
    tracker = SeqTracker()
    tracker.observe("b", "d", 100, NOW)
    assert tracker.observe("b", "d", 3, NOW) == []
    assert tracker.observe("b", "d", 101, NOW) == []
    assert tracker.boxes["b"].last_seq == 101


def test_boxes_are_independent_and_state_can_be_restored():
    tracker = SeqTracker()
    gap = Gap("b", "d", 10, 19, NOW, [(10, 12), (15, 19)])
    tracker.restore("b", "d", 20, [gap])
    tracker.observe("other", "d", 1, NOW)
    assert tracker.observe("b", "d", 13, NOW) == []          # arrived before the restart
    assert tracker.observe("b", "d", 11, NOW) == [gap] and gap.missing == 7


def test_ranges_round_trip():
    ranges = [(1, 1), (4, 9), (2**40, 2**41)]
    assert parse_ranges(format_ranges(ranges)) == ranges
    assert parse_ranges("") == []
