"""Gap accounting: which of a box's ``seq`` numbers never arrived.

Every box counts its detections, sensor readings and health reports with one
``seq`` that survives restarts. A jump forward opens a gap; a late message
inside a gap fills it, and the gap closes when nothing is missing any more. A
``seq`` at or below the highest one seen is a late message or a redelivery,
never a reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Gap:
    box: str
    district: str
    from_seq: int
    to_seq: int
    opened_ms: int                      # when it was found; identifies its point
    missing_ranges: list[tuple[int, int]] = field(default_factory=list)  # inclusive, sorted, disjoint

    @property
    def missing(self) -> int:
        return sum(last - first + 1 for first, last in self.missing_ranges)

    @property
    def is_open(self) -> bool:
        return bool(self.missing_ranges)

    def fill(self, seq: int) -> bool:
        """Mark ``seq`` as arrived; True if it was missing."""
        for index, (first, last) in enumerate(self.missing_ranges):
            if first <= seq <= last:
                pieces = [(a, b) for a, b in ((first, seq - 1), (seq + 1, last)) if a <= b]
                self.missing_ranges[index:index + 1] = pieces
                return True
        return False


def format_ranges(ranges: list[tuple[int, int]]) -> str:
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


def parse_ranges(text: str) -> list[tuple[int, int]]:
    ranges = []
    for part in filter(None, (text or "").split(",")):
        first, _, last = part.partition("-")
        ranges.append((int(first), int(last or first)))
    return ranges


@dataclass
class BoxSeq:
    box: str
    district: str
    last_seq: int
    gaps: list[Gap] = field(default_factory=list)   # open ones only


class SeqTracker:
    """Per-box highest ``seq`` and open gaps; ``observe`` returns the gaps it changed."""

    def __init__(self) -> None:
        self.boxes: dict[str, BoxSeq] = {}

    def restore(self, box: str, district: str, last_seq: int, open_gaps: list[Gap]) -> None:
        self.boxes[box] = BoxSeq(box, district, last_seq, [g for g in open_gaps if g.is_open])

    def observe(self, box: str, district: str, seq: int, now_ms: int) -> list[Gap]:
        state = self.boxes.get(box)
        if state is None:
            self.boxes[box] = BoxSeq(box, district, seq)
            return []
        if seq == state.last_seq + 1:
            state.last_seq = seq
            return []
        if seq > state.last_seq:
            gap = Gap(box, district, state.last_seq + 1, seq - 1, now_ms, [(state.last_seq + 1, seq - 1)])
            state.gaps.append(gap)
            state.last_seq = seq
            return [gap]
        return self._fill(state, seq)

    @staticmethod
    def _fill(state: BoxSeq, seq: int) -> list[Gap]:
        for gap in state.gaps:
            if gap.from_seq <= seq <= gap.to_seq and gap.fill(seq):
                if not gap.is_open:
                    state.gaps.remove(gap)
                return [gap]
        return []  # a redelivery, or older than anything tracked

    def open_gaps(self) -> list[Gap]:
        return [gap for state in self.boxes.values() for gap in state.gaps]
