"""Identities for the broker: the deployment's CA, the broker's certificate, and one account per box,
gateway and operator, with its broker entries (password file, ACL file, CRL) and its ``[mqtt]`` table.

    provision.pki        X.509 with ``cryptography``: CA, server and client certificates, the CRL
    provision.broker     the password file (Mosquitto's PBKDF2-SHA512 format), the ACL file, the listeners
    provision.accounts   the deployment folder: accounts, bundles per account, revocation
    provision.commands   the ``gateway provision-*``, ``gateway revoke`` and ``gateway config push`` commands

Nothing here talks to the broker except ``commands`` (a reload by SIGHUP, and
``config push`` through ``gateway.transport.operator``).
"""
