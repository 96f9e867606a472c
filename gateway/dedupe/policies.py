"""The merge policies the [dedupe] settings describe."""

from __future__ import annotations

from gateway.config import DedupeSettings
from gateway.dedupe.leads import MergePolicies, MergePolicy


def merge_policies(dedupe: DedupeSettings) -> MergePolicies:
    """The configured defaults and their overrides by category, by district and by category within a district."""
    default = MergePolicy(dedupe.merge_radius_m, dedupe.merge_gap_s, dedupe.min_detections)
    return MergePolicies(default, dedupe.overrides())
