"""What the box and the gateway both need, once: the lowest layer of the project.

    common.validation   the strict config base and how a pydantic error is put in words
    common.backoff      bounded exponential backoff
    common.logs         logging set-up for the commands
    common.broker       broker addresses, credentials and the broker config table (no paho)
    common.mqtt         the one place a paho client is built (TLS, credentials, MQTT 5 session)

It imports neither ``edge`` nor ``gateway`` nor ``contract``; importing this
package itself imports nothing heavy (``common.mqtt`` alone imports paho).
"""
