"""MQTT messages in, points out: check, dedupe, and hand over for writing; acknowledge once stored.

    validate   each message against the wire contract: accepted, or rejected with a reason
    pipeline   one batch through dedupe and seq tracking, into points
    restore    the dedupe state read back from the store on start and for late detections
    batches    Ingest: batches, case staff's changes, the writer process, the acknowledgements
"""
