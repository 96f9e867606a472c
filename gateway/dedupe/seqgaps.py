"""Gap accounting: which of a box's ``seq`` numbers never arrived.

Every box counts its detections, sensor readings and health reports with one
``seq`` that survives restarts. A jump forward opens a gap; a late message
inside a gap fills it, and the gap closes when nothing is missing any more. A
``seq`` at or below the highest one seen is a late message or a redelivery,
never a reset. Seqs the box announces it dropped under its size policy close
what they cover, counted apart (``policy``): nothing will ever fill them.

The same state says what a box may forget (``confirmation``): every seq up to
``upto`` and the runs of ``ranges`` above it have been seen. What lies below
the first seq seen of a box (``floor``) is unknown until it arrives, so a
gateway never confirms what it did not see.
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
    policy: int = 0                     # seqs of it the box announced dropped by its size policy
    backfilled: int = 0                 # seqs of it that arrived late

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
                self.backfilled += 1
                return True
        return False

    def close_by_policy(self, from_seq: int, to_seq: int) -> int:
        """The box gave up ``from_seq``..``to_seq``: they are missing no more; how many of them were."""
        kept: list[tuple[int, int]] = []
        closed = 0
        for first, last in self.missing_ranges:
            low, high = max(first, from_seq), min(last, to_seq)
            if low > high:
                kept.append((first, last))
                continue
            closed += high - low + 1
            kept.extend((a, b) for a, b in ((first, low - 1), (high + 1, last)) if a <= b)
        self.missing_ranges = kept
        self.policy += closed
        return closed


def format_ranges(ranges: list[tuple[int, int]]) -> str:
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


def parse_ranges(text: str) -> list[tuple[int, int]]:
    ranges = []
    for part in filter(None, (text or "").split(",")):
        first, _, last = part.partition("-")
        ranges.append((int(first), int(last or first)))
    return ranges


def add_range(ranges: list[tuple[int, int]], first: int, last: int) -> list[tuple[int, int]]:
    """``ranges`` (sorted, disjoint) with ``first``..``last`` added, touching runs merged."""
    merged: list[tuple[int, int]] = []
    for a, b in sorted([*ranges, (first, last)]):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


MAX_CONFIRMED_RANGES = 256


@dataclass
class BoxSeq:
    box: str
    district: str
    last_seq: int
    gaps: list[Gap] = field(default_factory=list)   # open ones only
    floor: int = 0    # seqs at or below it are unknown, except those in ``below``
    below: list[tuple[int, int]] = field(default_factory=list)

    def seen_below(self, seq: int, last: int | None = None) -> None:
        self.below = add_range(self.below, seq, seq if last is None else last)
        if self.below and self.below[0][0] <= 1 and self.below[0][1] >= self.floor:
            self.floor, self.below = 0, []   # everything from the first seq on is known

    def confirmation(self) -> tuple[int, list[tuple[int, int]]]:
        """(upto, ranges): every seq up to ``upto`` was seen, and the runs above it (at most 256)."""
        seen = list(self.below)
        start = self.floor + 1
        for first, last in sorted(r for gap in self.gaps for r in gap.missing_ranges):
            if first > start:
                seen.append((start, first - 1))
            start = max(start, last + 1)
        if start <= self.last_seq:
            seen.append((start, self.last_seq))
        runs: list[tuple[int, int]] = []
        for first, last in sorted(seen):
            runs = add_range(runs, first, last)
        upto = 0
        if runs and (runs[0][0] <= 1):
            upto = runs.pop(0)[1]
        if len(runs) > MAX_CONFIRMED_RANGES:
            runs = runs[:MAX_CONFIRMED_RANGES - 1] + runs[-1:]
        return upto, runs


class SeqTracker:
    """Per-box highest ``seq`` and open gaps; ``observe`` returns the gaps it changed."""

    def __init__(self) -> None:
        self.boxes: dict[str, BoxSeq] = {}

    def restore(self, box: str, district: str, last_seq: int, open_gaps: list[Gap], first_seq: int = 1) -> None:
        """A box as stored: its highest seq, its open gaps, and its lowest seq stored (what lies below is unknown)."""
        self.boxes[box] = BoxSeq(box, district, last_seq, [g for g in open_gaps if g.is_open],
                                 floor=max(0, first_seq - 1))

    def observe(self, box: str, district: str, seq: int, now_ms: int) -> list[Gap]:
        state = self.boxes.get(box)
        if state is None:
            self.boxes[box] = BoxSeq(box, district, seq, floor=seq - 1)
            return []
        if seq == state.last_seq + 1:
            state.last_seq = seq
            return []
        if seq > state.last_seq:
            gap = Gap(box, district, state.last_seq + 1, seq - 1, now_ms, [(state.last_seq + 1, seq - 1)])
            state.gaps.append(gap)
            state.last_seq = seq
            return [gap]
        if seq <= state.floor:
            state.seen_below(seq)
            return []
        return self._fill(state, seq)

    @staticmethod
    def _fill(state: BoxSeq, seq: int) -> list[Gap]:
        for gap in state.gaps:
            if gap.from_seq <= seq <= gap.to_seq and gap.fill(seq):
                if not gap.is_open:
                    state.gaps.remove(gap)
                return [gap]
        return []  # a redelivery, or older than anything tracked

    def expect(self, box: str, district: str, last_seq: int, now_ms: int) -> list[Gap]:
        """The box says it assigned seqs up to ``last_seq``: a tail not seen yet is a gap too."""
        state = self.boxes.get(box)
        if state is None or last_seq <= state.last_seq:
            return []
        gap = Gap(box, district, state.last_seq + 1, last_seq, now_ms, [(state.last_seq + 1, last_seq)])
        state.gaps.append(gap)
        state.last_seq = last_seq
        return [gap]

    def close_by_policy(self, box: str, district: str, from_seq: int, to_seq: int, now_ms: int) -> list[Gap]:
        """The box announced it dropped ``from_seq``..``to_seq`` under its size policy; the gaps that changed.

        A dropped tail beyond the highest seq seen becomes a gap closed by policy at once.
        """
        state = self.boxes.get(box)
        if state is None:
            state = self.boxes[box] = BoxSeq(box, district, to_seq, floor=from_seq - 1)
            state.seen_below(from_seq, to_seq)
        changed = []
        if to_seq > state.last_seq:
            tail = Gap(box, district, state.last_seq + 1, to_seq, now_ms, [(state.last_seq + 1, to_seq)])
            state.gaps.append(tail)
            state.last_seq = to_seq
        if from_seq <= state.floor:
            state.seen_below(from_seq, min(to_seq, state.floor))
        for gap in list(state.gaps):
            if gap.from_seq <= to_seq and from_seq <= gap.to_seq and gap.close_by_policy(from_seq, to_seq):
                if not gap.is_open:
                    state.gaps.remove(gap)
                changed.append(gap)
        return changed

    def confirmation(self, box: str) -> tuple[int, list[tuple[int, int]]] | None:
        state = self.boxes.get(box)
        return None if state is None else state.confirmation()

    def open_gaps(self) -> list[Gap]:
        return [gap for state in self.boxes.values() for gap in state.gaps]
