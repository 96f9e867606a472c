"""The fast receive path: the one module that reaches into paho's private internals.

paho reads a packet with three ``recv`` calls, waits in ``select`` before
every packet and parses an MQTT 5 property set for every PUBLISH; at a few
thousand messages per second that costs more than everything else the gateway
does. ``FastClient`` keeps paho for the session, subscriptions, keep-alive,
reconnects and writing, and changes only the receive side:

* the socket is read in large chunks into a buffer (``_BufferedSocket``) that
  reports what it holds through ``pending()``, which paho already asks of TLS
  sockets before it waits in ``select``, so nothing waits in the buffer;
* one ``loop_read`` handles up to ``READ_BURST`` packets;
* when the buffer holds no whole packet, one more chunk is read onto it first
  (over TLS each read brings one record, and Mosquitto sends a PUBLISH per
  record);
* a QoS 1 PUBLISH that lies whole in the buffer is cut out of it here, and,
  without properties, decoded here and handed straight on; any other packet
  (or one still arriving) goes through paho as before;
* the messages of one ``loop_read`` are handed on as one list;
* a batch of acknowledgements goes out as one write.

It relies on paho's private ``_in_packet``, ``_packet_read``,
``_handle_publish``, ``_msgtime_mutex``, ``_last_bytes_received`` and
``_packet_queue``, which are written against paho 2.2. ``supported()`` says
whether the installed paho is that version and has them; where it is not, the
link uses plain paho (``gateway.transport.link``) instead.
"""

from __future__ import annotations

import ssl
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt import __version__ as PAHO_VERSION
from paho.mqtt.exception import MalformedPacket

from gateway.transport.incoming import READ_BURST, Incoming

SUPPORTED_PAHO = "2.2."
READ_CHUNK = 256 * 1024
_QOS_BITS = 0x06
_RETAIN = 0x01
_QOS_1 = 0x02
_PUBLISH_QOS_MASK = 0xF6   # packet type and QoS bits; DUP and RETAIN may be anything
_PUBLISH_QOS_1 = 0x32
_PUBACK = struct.Struct("!BBH")
_INTERNALS = ("_packet_read", "_handle_publish", "_loop_rc_handle", "_packet_queue", "_create_socket")


def supported(version: str | None = None) -> bool:
    """True when paho (``version``, or the installed one) is the release this module was written against."""
    version = PAHO_VERSION if version is None else version
    return version.startswith(SUPPORTED_PAHO) and all(hasattr(paho.Client, name) for name in _INTERNALS)



class _BufferedSocket:
    """A socket read in large chunks; ``pending()`` says how many bytes wait in the buffer."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._offset = 0
        self._failed: OSError | None = None   # what the socket raised in ``fill``, raised again by ``recv``
        self._ended = False                   # the socket returned b"" (closed) in ``fill``

    def recv(self, size: int) -> bytes:
        if self._offset >= len(self._buffer):
            if self._failed is not None:
                failed, self._failed = self._failed, None
                raise failed
            if self._ended:
                return b""
            chunk = self._sock.recv(READ_CHUNK)  # raises when nothing is there, returns b"" at the end
            if not chunk:
                return chunk
            self._buffer, self._offset = chunk, 0
        start = self._offset
        self._offset = min(start + size, len(self._buffer))
        return self._buffer[start:self._offset]

    def fill(self) -> bool:
        """Read one more chunk onto what the buffer holds; False if the socket has nothing now.

        Over TLS one read returns one record, and Mosquitto sends each PUBLISH in a record of its own, so
        without this the buffer never holds a whole packet when one is looked for. An error or the end of
        the stream is kept for ``recv`` to report where paho reads."""
        if self._failed is not None or self._ended:
            return False
        try:
            chunk = self._sock.recv(READ_CHUNK)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError as exc:
            self._failed = exc
            return False
        if not chunk:
            self._ended = True
            return False
        if self._offset < len(self._buffer):
            self._buffer = self._buffer[self._offset:] + chunk
        else:
            self._buffer = chunk
        self._offset = 0
        return True

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buffer) - self._offset + inner

    def take_qos1_publish(self) -> tuple[int, bytes] | None:
        """The header byte and body of a QoS 1 PUBLISH if one lies whole at the buffer's head, taken out of it."""
        buffer, start = self._buffer, self._offset
        end = len(buffer)
        if end - start < 2 or buffer[start] & _PUBLISH_QOS_MASK != _PUBLISH_QOS_1:
            return None
        length, shift, position = 0, 0, start + 1
        while True:  # the remaining length: 7 bits a byte, at most 4 bytes
            if position >= end or shift > 21:
                return None
            byte = buffer[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if end - position < length:
            return None
        self._offset = position + length
        return buffer[start], buffer[position:self._offset]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class FastClient(paho.Client):
    """paho's client with the cheaper receive path described in the module docstring."""

    def __init__(self, on_messages: Callable[[list[Incoming]], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_messages = on_messages
        self._burst: list[Incoming] = []

    def deliver(self, message: Incoming) -> None:
        """Hand ``message`` on with the rest of this read, in the order received."""
        self._burst.append(message)

    def _create_socket(self) -> Any:
        return _BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> paho.MQTTErrorCode:
        try:
            return self._read_burst(max_packets)
        finally:
            if self._burst:
                burst, self._burst = self._burst, []
                self._on_messages(burst)

    def _read_burst(self, max_packets: int) -> paho.MQTTErrorCode:
        if self._sock is None:
            return paho.MQTTErrorCode.MQTT_ERR_NO_CONN
        taken = 0
        for _ in range(max(max_packets, READ_BURST)):
            sock = self._sock
            if sock is None:
                return paho.MQTTErrorCode.MQTT_ERR_NO_CONN
            whole = None
            if self._in_packet["command"] == 0:
                whole = sock.take_qos1_publish()
                if whole is None and sock.fill():
                    whole = sock.take_qos1_publish()
            if whole is not None:
                taken += 1
                rc = self._publish_taken(*whole)
            else:
                rc = self._packet_read()
                if rc == paho.MQTTErrorCode.MQTT_ERR_AGAIN:
                    break
            if rc > 0:
                return self._loop_rc_handle(rc)
        if taken:
            with self._msgtime_mutex:
                self._last_bytes_received = paho.time_func()  # as paho's own reads note it, for keep-alive
        return paho.MQTTErrorCode.MQTT_ERR_SUCCESS

    def _publish_taken(self, command: int, packet: bytes) -> paho.MQTTErrorCode:
        """A whole QoS 1 PUBLISH cut from the buffer; paho decodes it if this module does not (retained ones)."""
        if not command & _RETAIN and self._delivered_qos1(packet):
            return paho.MQTTErrorCode.MQTT_ERR_SUCCESS
        self._in_packet = _in_packet(command, packet)
        try:
            return super()._handle_publish()
        except MalformedPacket:
            return paho.MQTTErrorCode.MQTT_ERR_PROTOCOL
        finally:
            self._in_packet = _in_packet()

    def _handle_publish(self) -> paho.MQTTErrorCode:
        command = self._in_packet["command"]
        if command & _QOS_BITS == _QOS_1 and not command & _RETAIN and self._delivered_qos1(self._in_packet["packet"]):
            return paho.MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._handle_publish()

    def _delivered_qos1(self, packet: bytes | bytearray) -> bool:
        """Decode and hand on a QoS 1 PUBLISH body without properties; False if paho must decode it."""
        if self._protocol != paho.MQTTv5 or len(packet) < 2:
            return False
        topic_end = 2 + ((packet[0] << 8) | packet[1])
        # Topic, packet id, and a property length of zero; anything else is paho's to decode.
        if len(packet) < topic_end + 3 or packet[topic_end + 2] != 0:
            return False
        try:
            topic = packet[2:topic_end].decode()
        except UnicodeDecodeError:
            return False
        mid = (packet[topic_end] << 8) | packet[topic_end + 1]
        self._burst.append(Incoming(topic, bytes(packet[topic_end + 3:]), mid, 1, time.time()))
        return True

    def ack_many(self, mids: Iterable[int]) -> None:
        """PUBACKs for these QoS 1 messages, sent as one write."""
        packet = b"".join(_PUBACK.pack(paho.PUBACK, 2, mid) for mid in mids)
        if packet:
            self._packet_queue(paho.PUBACK, packet, 0, 0)


def _in_packet(command: int = 0, packet: bytes = b"") -> dict[str, Any]:
    """paho's record of the packet being read: idle, or holding a whole packet."""
    return {"command": command, "have_remaining": int(bool(command)), "remaining_count": [], "remaining_mult": 1,
            "remaining_length": len(packet), "packet": bytearray(packet), "to_process": 0, "pos": 0}
