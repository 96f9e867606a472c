"""The lead desk: `gateway web`, one process serving case staff's pages over the gateway's store.

    site       the Starlette application: its routes, Server-Timing
    app        what every page needs: sessions, CSRF, rendering, login and pictures
    pages      what each page shows and does (queue, lead, reports, boxes)
    accounts   users, sessions and login throttling in a local SQLite file
    notify     the desk's clock: overdue escalation and webhooks, in a thread of the same process
    hooks      webhook delivery: the one module of the desk that speaks HTTP out
    drawing    the offline map (SVG from config polygons and box positions) and picture sizes
    server     uvicorn, with TLS when [desk] names a certificate
"""
