"""The gateway's only HTTP client for InfluxDB, through the v1-compatible API.

InfluxDB 1.x, 2.x and 3.x all serve ``/ping``, ``/write`` and ``/query``.
Authentication is basic auth (1.x user and password) or ``Authorization:
Token ...`` (2.x and 3.x).

Errors are split by what the caller should do about them:

* :class:`InfluxUnavailable` — connection failures, timeouts, 5xx, 408 and 429:
  try again later, the data is fine;
* :class:`InfluxRejected` — any other refusal (4xx), including InfluxDB 1.x's
  "partial write": the data or the query is wrong, retrying will not help.

Queries ask for MessagePack rather than JSON: Go's JSON encoder prints the float
3.0 as ``3`` (and -0.0 as ``-0``), so a JSON reader cannot tell float fields
from integers.  A server that does not speak MessagePack answers in JSON, which
is read as a fallback.
"""

from __future__ import annotations

import json
import ssl
import struct
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from gateway.store.base import StoreError, StoreUnavailable
from gateway.store.lineprotocol import LineProtocolError, Point, encode_points

__all__ = [
    "InfluxClient",
    "InfluxError",
    "InfluxRejected",
    "InfluxUnavailable",
    "quote_ident",
    "quote_string",
]

PRECISIONS = ("s", "ms", "u", "ns")
RETRYABLE_STATUSES = frozenset({408, 429})
MSGPACK = "application/x-msgpack"
ERROR_TEXT_LIMIT = 2000
NO_USER_YET = "create admin user first"


class InfluxError(StoreError):
    """Something went wrong talking to InfluxDB."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class InfluxUnavailable(InfluxError, StoreUnavailable):
    """InfluxDB could not be reached or is overloaded; retrying later may succeed."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class InfluxRejected(InfluxError):
    """InfluxDB refused the data or the query; ``message`` is the server's reason."""

    @property
    def partial(self) -> bool:
        """True for InfluxDB 1.x's partial write: some points were stored, some not."""
        return "partial write" in self.message


def quote_ident(name: str) -> str:
    """Quote an InfluxQL identifier (database, measurement, tag or field name)."""
    _refuse_nul(name)
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def quote_string(value: str) -> str:
    """Quote an InfluxQL string literal."""
    _refuse_nul(value)
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def _refuse_nul(text: str) -> None:
    # The InfluxQL scanner takes NUL for the end of the query, and has no escape for it.
    if "\0" in text:
        raise ValueError(f"InfluxQL cannot quote a NUL character: {text!r}")


class InfluxClient:
    """Write points to and query one InfluxDB database over HTTP(S).

    ``precision`` is the unit of point times on write and of ``time`` in query
    results; the gateway uses nanoseconds (``gateway.store.schema.PRECISION``).
    """

    def __init__(
        self,
        url: str,
        database: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        ca_file: str | None = None,
        precision: str = "ms",
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"InfluxDB URL must be http:// or https://, got {url!r}")
        if not database:
            raise ValueError("database name must not be empty")
        if token is not None and (username is not None or password is not None):
            raise ValueError("give either a token or a username and password, not both")
        if password is not None and username is None:
            raise ValueError("a password needs a username")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")

        self.url = str(parsed).rstrip("/")
        self.database = database
        self.precision = precision
        self._msgpack_accepted = True
        headers = {"User-Agent": "streetwatch-gateway"}
        if token is not None:
            headers["Authorization"] = f"Token {token}"
        auth = httpx.BasicAuth(username, password or "") if username is not None else None
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            auth=auth,
            timeout=timeout,
            verify=_tls_verification(ca_file),
        )

    # -- public API ---------------------------------------------------------------------

    def ping(self) -> bool:
        """True if the server answers ``/ping``."""
        try:
            response = self._http.get("/ping")
        except httpx.HTTPError:
            return False
        return response.is_success

    def create_database(self) -> None:
        """Create the database if it does not exist (InfluxDB 1.x; 2.x/3.x map buckets)."""
        self._statement(f"CREATE DATABASE {quote_ident(self.database)}")

    def write(self, points: Sequence[Point] | bytes) -> None:
        """Write points, or ready line protocol bytes, in the client's precision.

        Raises InfluxRejected also for a point that cannot be encoded.
        """
        if isinstance(points, (bytes, bytearray, memoryview)):
            body = bytes(points)
        else:
            try:
                body = encode_points(points)
            except LineProtocolError as exc:
                raise InfluxRejected(f"cannot encode point: {exc}") from exc
        if not body:
            return
        response = self._send(
            "POST",
            "/write",
            params={"db": self.database, "precision": self.precision},
            content=body,
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        if not response.is_success:
            raise _error_from(response)

    def query(self, influxql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run InfluxQL and return the rows of its first statement.

        Rows of all series are concatenated; each row maps column to value and
        also carries the series' tags (from GROUP BY).  ``params`` binds
        ``$name`` placeholders.  Raises InfluxRejected if any statement failed.
        """
        results = self._statement(influxql, params)
        return _rows(results[0]) if results else []

    def query_all(self, influxql: str, page_size: int = 5000) -> list[dict[str, Any]]:
        """Like ``query``, for results larger than the server's row limit: pages with LIMIT/OFFSET.

        Only for statements without GROUP BY (LIMIT would count per series) and
        without a LIMIT of their own.
        """
        rows: list[dict[str, Any]] = []
        while True:
            page = self.query(f"{influxql} LIMIT {page_size} OFFSET {len(rows)}")
            rows.extend(page)
            if len(page) < page_size:
                return rows

    def query_many(self, statements: Sequence[str], page_size: int = 5000) -> list[list[dict[str, Any]]]:
        """The rows of each statement, all sent in one request (statements without GROUP BY or LIMIT).

        A statement whose first page is full is read on in pages of its own.
        """
        if not statements:
            return []
        results = self._statement("; ".join(f"{s} LIMIT {page_size}" for s in statements))
        rows_of: list[list[dict[str, Any]]] = [[] for _ in statements]
        for index, result in enumerate(results):
            rows_of[result.get("statement_id", index)] = _rows(result)
        for index, statement in enumerate(statements):
            if len(rows_of[index]) >= page_size:
                rows_of[index] = self.query_all(statement, page_size)
        return rows_of

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<InfluxClient {self.url} db={self.database!r}>"

    # -- HTTP ---------------------------------------------------------------------------

    def _statement(
        self, influxql: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """POST to /query (accepted for every statement) and return checked results."""
        form = {"q": influxql, "db": self.database, "epoch": self.precision}
        if params:
            form["params"] = json.dumps(dict(params))
        response = self._query_response(form)
        if not response.is_success:
            raise _error_from(response)
        return _checked_results(_decode_body(response), response.status_code)

    def _query_response(self, form: dict[str, str]) -> httpx.Response:
        if self._msgpack_accepted:
            response = self._send("POST", "/query", data=form, headers={"Accept": MSGPACK})
            if response.status_code != 406:
                return response
            self._msgpack_accepted = False
        return self._send("POST", "/query", data=form, headers={"Accept": "application/json"})

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise InfluxUnavailable(f"InfluxDB at {self.url} timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise InfluxUnavailable(f"cannot reach InfluxDB at {self.url}: {exc!r}") from exc


def _checked_results(body: Any, status: int) -> list[dict[str, Any]]:
    """The results of a query response; InfluxRejected if any statement failed."""
    if not isinstance(body, dict):
        raise InfluxRejected(f"unexpected query response: {body!r:.200}", status=status)
    if body.get("error"):
        raise InfluxRejected(str(body["error"]), status=status)
    results: list[dict[str, Any]] = body.get("results") or []
    for index, result in enumerate(results):
        if result.get("error"):
            statement = result.get("statement_id", index)
            raise InfluxRejected(f"statement {statement}: {result['error']}", status=status)
        if _is_truncated(result):
            raise InfluxRejected(
                "result truncated by the server (max-row-limit); narrow the query", status=status
            )
    return results


def _is_truncated(result: Mapping[str, Any]) -> bool:
    return bool(result.get("partial")) or any(
        series.get("partial") for series in result.get("series") or []
    )


def _tls_verification(ca_file: str | None) -> ssl.SSLContext | bool:
    if ca_file is None:
        return True
    return ssl.create_default_context(cafile=ca_file)


def _error_from(response: httpx.Response) -> InfluxError:
    """Classify an unsuccessful response as retryable or as a rejection."""
    status = response.status_code
    message = _error_message(response)
    # A server with authentication on and no user yet is still being set up (its admin is created right after
    # it starts listening): not ready, rather than refusing.
    if status >= 500 or status in RETRYABLE_STATUSES or NO_USER_YET in message:
        return InfluxUnavailable(
            f"InfluxDB answered {status}: {message}",
            status=status,
            retry_after=_retry_after(response),
        )
    return InfluxRejected(message, status=status)


def _error_message(response: httpx.Response) -> str:
    """The server's reason: the body's "error", the X-Influxdb-Error header, or the text."""
    try:
        body = _decode_body(response)
    except InfluxError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "message"):
            if body.get(key):
                return str(body[key])
    header = response.headers.get("X-Influxdb-Error")
    if header:
        return header
    text = response.text.strip()
    if text:
        return text[:ERROR_TEXT_LIMIT]
    return f"HTTP {response.status_code} {response.reason_phrase}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # absent, or an HTTP date, which InfluxDB does not send


def _decode_body(response: httpx.Response) -> Any:
    content_type = response.headers.get("Content-Type", "")
    if not response.content:
        return None
    if content_type.startswith(MSGPACK):
        return _MessagePackReader(response.content).read_all()
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise InfluxError(
            f"unreadable response ({content_type or 'no content type'}): {response.text[:200]!r}",
            status=response.status_code,
        ) from exc


def _rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for series in result.get("series") or []:
        tags = series.get("tags") or {}
        columns = series.get("columns") or []
        for values in series.get("values") or []:
            row = dict(tags)
            row.update(zip(columns, values))
            rows.append(row)
    return rows


class _MessagePackReader:
    """Decodes the MessagePack subset InfluxDB query responses use (no extension types)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def read_all(self) -> Any:
        value = self.read()
        if self._offset != len(self._data):
            raise InfluxError("trailing bytes after MessagePack query response")
        return value

    def read(self) -> Any:
        byte = self._take(1)[0]
        if byte <= 0x7F:
            return byte
        if byte >= 0xE0:
            return byte - 0x100
        if 0xA0 <= byte <= 0xBF:
            return self._text(byte & 0x1F)
        if 0x90 <= byte <= 0x9F:
            return self._array(byte & 0x0F)
        if 0x80 <= byte <= 0x8F:
            return self._map(byte & 0x0F)
        return self._read_typed(byte)

    def _read_typed(self, byte: int) -> Any:
        if byte == 0xC0:
            return None
        if byte in (0xC2, 0xC3):
            return byte == 0xC3
        if byte in _FIXED_WIDTH:
            fmt = _FIXED_WIDTH[byte]
            return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]
        if byte in _STR_LENGTH:
            return self._text(self._length(_STR_LENGTH[byte]))
        if byte in _BIN_LENGTH:
            return self._take(self._length(_BIN_LENGTH[byte]))
        if byte in _ARRAY_LENGTH:
            return self._array(self._length(_ARRAY_LENGTH[byte]))
        if byte in _MAP_LENGTH:
            return self._map(self._length(_MAP_LENGTH[byte]))
        raise InfluxError(f"unsupported MessagePack type 0x{byte:02x} in query response")

    def _take(self, count: int) -> bytes:
        end = self._offset + count
        if end > len(self._data):
            raise InfluxError("truncated MessagePack query response")
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def _length(self, fmt: str) -> int:
        length: int = struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]
        return length

    def _text(self, length: int) -> str:
        return self._take(length).decode("utf-8", errors="replace")

    def _array(self, length: int) -> list[Any]:
        return [self.read() for _ in range(length)]

    def _map(self, length: int) -> dict[Any, Any]:
        result = {}
        for _ in range(length):
            key = self.read()
            try:
                result[key] = self.read()
            except TypeError as exc:
                raise InfluxError(f"MessagePack map key of type {type(key).__name__}") from exc
        return result


_FIXED_WIDTH = {
    0xCA: ">f",
    0xCB: ">d",
    0xCC: ">B",
    0xCD: ">H",
    0xCE: ">I",
    0xCF: ">Q",
    0xD0: ">b",
    0xD1: ">h",
    0xD2: ">i",
    0xD3: ">q",
}
_STR_LENGTH = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I"}
_BIN_LENGTH = {0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}
_ARRAY_LENGTH = {0xDC: ">H", 0xDD: ">I"}
_MAP_LENGTH = {0xDE: ">H", 0xDF: ">I"}
