"""The MQTT link, the gateway's lowest layer towards the boxes.

    incoming   Incoming: one message as received (topic, payload, MQTT id, QoS, time)
    link       GatewayLink: persistent MQTT 5 session, manual acknowledgement, fast or plain receive path
    linkprocess  LinkProcess: a GatewayLink in a child process, as ``gateway run`` uses it
    fastread   the fast receive path: the one module that reaches into paho's internals (paho 2.2 only)
    operator   OperatorLink: an operator's short session for ``gateway config push`` (and ending a revoked session)
"""
