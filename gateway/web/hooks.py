"""Webhook delivery: the one module of the desk that sends HTTP requests (httpx).

A notification is a JSON body POSTed with three headers:

    X-Streetwatch-Delivery    the notification's key, the same on every retry (receivers drop repeats by it)
    X-Streetwatch-Timestamp   seconds since the epoch when this attempt was signed
    X-Streetwatch-Signature   "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body)

A receiver recomputes the signature with the shared secret and compares in
constant time (``signature``); checking the timestamp's age stops replays.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time

import httpx

TIMEOUT_S = 10.0


class DeliveryFailed(Exception):
    """The receiver could not be reached or did not answer 2xx; a later retry may succeed."""


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookSender:
    def __init__(self, ca_file: str | None = None) -> None:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._http = httpx.Client(timeout=TIMEOUT_S, verify=verify, follow_redirects=False,
                                  headers={"User-Agent": "streetwatch-desk"})

    def send(self, url: str, secret: bytes, key: str, body: bytes) -> None:
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Streetwatch-Delivery": key,
                   "X-Streetwatch-Timestamp": timestamp, "X-Streetwatch-Signature": signature(secret, timestamp, body)}
        try:
            response = self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"cannot reach {url}: {exc!r}") from exc
        if not response.is_success:
            raise DeliveryFailed(f"{url} answered {response.status_code}")

    def close(self) -> None:
        self._http.close()
