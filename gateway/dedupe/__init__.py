"""Turning detections into leads, in memory: no storage, no transport.

    leads      LeadBook: groups, leads, the merge rules and the ledger entry of each merge
    policies   the merge policies the [dedupe] settings describe
    geo        distances and a grid for near neighbours; point in polygon
    routing    which street team a lead goes to
    seqgaps    missing seq numbers per box
"""
