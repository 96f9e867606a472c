"""The gateway: box messages from MQTT into leads in InfluxDB, and case staff's commands on them.

    cli                    the `gateway` command
    desk/  ingest/         case staff's side | MQTT -> check -> dedupe -> points -> acknowledge
    store/                 LeadStore (InfluxDB, in memory), schema, the writer process
    dedupe/  transport/    lead book and merge policies | the MQTT link
    config                 the gateway's settings

Imports only go down this list (import-linter checks it, see pyproject.toml).
"""
