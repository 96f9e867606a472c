"""Storage: the only place that writes InfluxQL or line protocol.

    base        LeadStore (the interface), StoreError, StoreUnavailable
    influxdb    InfluxStore: LeadStore on InfluxDB, every InfluxQL statement
    memory      MemoryStore: LeadStore in this process
    schema      how messages and leads become points (schema v2)
    influx      InfluxClient: the one module that talks HTTP to InfluxDB
    lineprotocol  encoding points
    writer      the writer process: writes until stored, dead-letters what InfluxDB refuses
    evidence    evidence JPEGs on disk, by sha256
"""
