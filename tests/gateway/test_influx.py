"""InfluxClient against a real InfluxDB 1.x (devstack), plus canned HTTP answers for error mapping."""

from __future__ import annotations

import base64
import http.server
import itertools
import json
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from devstack.services import InfluxDB, free_port
from gateway.store.influx import (
    InfluxClient,
    InfluxError,
    InfluxRejected,
    InfluxUnavailable,
    _MessagePackReader,
    quote_ident,
    quote_string,
)
from gateway.store.lineprotocol import LineProtocolError, Point, encode_point

T0 = 1_767_225_600_000

NASTY = [
    "plain",
    "with space",
    "comma,here",
    "equals=here",
    "a,b c=d",
    'double"quote',
    "single'quote",
    "back\\slash",
    "back\\\\two",
    "C:\\path\\to\\file.txt",
    "tab\there",
    "ünïcødé ✓ 😀",
    " leading and trailing ",
    "percent %s %d %%",
    "#not a comment",
    "x\\n (backslash n)",
]


def select_all(client: InfluxClient, measurement: str) -> list[dict[str, Any]]:
    return client.query(f"SELECT * FROM {quote_ident(measurement)} GROUP BY *")


# --------------------------------------------------------------------------- real InfluxDB

@pytest.fixture
def client(influxdb: InfluxDB, influx_db_name: str) -> Iterator[InfluxClient]:
    with InfluxClient(influxdb.url, influx_db_name, **influxdb.client_login()) as influx:
        influx.create_database()
        yield influx


@pytest.mark.integration
def test_ping_and_create_database_twice(influxdb: InfluxDB, influx_db_name: str) -> None:
    with InfluxClient(influxdb.url, influx_db_name, **influxdb.client_login()) as client:
        assert client.ping()
        client.create_database()
        client.create_database()
        assert {"name": influx_db_name} in client.query("SHOW DATABASES")


@pytest.mark.integration
def test_nasty_strings_round_trip_exactly(client: InfluxClient) -> None:
    points = []
    for index, text in enumerate(NASTY):
        measurement = f"m {text}"
        tags = {f"tag {text}": text, "kind": "nasty"}
        fields = {
            f"field {text}": text,
            "text": text,
            "multi": f"line1\n{text}\nline3\0nul",
            "n": index,
        }
        tags["nul"] = f"{text}\0nul"
        points.append(Point(measurement, tags, fields, T0 + index))
    client.write(points)

    for point in points:
        rows = select_all(client, point.measurement)
        assert rows == [{**point.tags, **point.fields, "time": point.time}], point.measurement

    tagged = client.query(
        f"SELECT {quote_ident('n')} FROM {quote_ident('m a,b c=d')} "
        f"WHERE {quote_ident('tag a,b c=d')} = {quote_string('a,b c=d')}"
    )
    assert tagged == [{"time": T0 + NASTY.index("a,b c=d"), "n": NASTY.index("a,b c=d")}]
    bound = client.query(
        f"SELECT {quote_ident('text')} FROM {quote_ident('m back' + chr(92) + 'slash')} "
        "WHERE text = $text",
        params={"text": "back\\slash"},
    )
    assert [row["text"] for row in bound] == ["back\\slash"]


@pytest.mark.integration
def test_quoted_identifiers_and_strings_with_quotes_and_backslashes(client: InfluxClient) -> None:
    measurement = 'we"ird\\name\'s'
    who = 'o\'brien "jr" \\x'
    client.write([Point(measurement, {"who": who}, {"v": 1.5}, T0)])
    rows = client.query(f"SELECT * FROM {quote_ident(measurement)} WHERE who = {quote_string(who)}")
    assert rows == [{"time": T0, "v": 1.5, "who": who}]


@pytest.mark.integration
def test_numbers_keep_their_types(client: InfluxClient) -> None:
    fields = {
        "whole": 3.0,
        "negative_zero": -0.0,
        "big": 1e16,
        "tiny": 5e-324,
        "max": 1.7976931348623157e308,
        "third": 1 / 3,
        "count": 3,
        "min_int": -(2**63),
        "flag": True,
        "off": False,
        "empty": "",
    }
    client.write([Point("numbers", {}, fields, T0)])
    (row,) = select_all(client, "numbers")
    assert row.pop("time") == T0
    assert row == fields
    assert {key: type(value) for key, value in row.items()} == {
        key: type(value) for key, value in fields.items()
    }
    assert str(row["negative_zero"]) == "-0.0"


@pytest.mark.integration
def test_tags_come_back_with_group_by_and_rows_merge_over_series(client: InfluxClient) -> None:
    client.write(
        [
            Point("det", {"box": "b1", "zone": "z"}, {"score": 0.5}, T0),
            Point("det", {"box": "b2", "zone": ""}, {"score": 0.75}, T0 + 1),
            Point("det", {"box": "b1", "zone": "z"}, {"score": 1.0}, T0 + 2),
        ]
    )
    rows = client.query('SELECT "score" FROM "det" GROUP BY "box"')
    assert rows == [
        {"box": "b1", "time": T0, "score": 0.5},
        {"box": "b1", "time": T0 + 2, "score": 1.0},
        {"box": "b2", "time": T0 + 1, "score": 0.75},
    ]
    assert client.query('SELECT * FROM "det" WHERE "box" = \'none\'') == []


@pytest.mark.integration
def test_bad_line_protocol_is_rejected_with_the_servers_message(client: InfluxClient) -> None:
    with pytest.raises(InfluxRejected) as raised:
        client.write(b"no_fields_here 123")
    assert raised.value.status == 400
    assert "unable to parse" in raised.value.message
    assert not raised.value.partial


@pytest.mark.integration
def test_partial_write_is_rejected_and_says_so(client: InfluxClient) -> None:
    client.write([Point("typed", {}, {"v": 1.0}, T0)])
    with pytest.raises(InfluxRejected) as raised:
        client.write([Point("typed", {}, {"v": 2.0}, T0 + 1), Point("typed", {}, {"v": "text"}, T0 + 2)])
    assert raised.value.partial
    assert "field type conflict" in raised.value.message
    assert [row["v"] for row in select_all(client, "typed")] == [1.0, 2.0]


@pytest.mark.integration
def test_unencodable_point_is_rejected_before_sending(client: InfluxClient) -> None:
    with pytest.raises(InfluxRejected, match="cannot encode") as raised:
        client.write([Point("m", {"k": "line\nbreak"}, {"v": 1.0}, T0)])
    assert isinstance(raised.value.__cause__, LineProtocolError)


@pytest.mark.integration
def test_query_errors_are_rejections(client: InfluxClient) -> None:
    with pytest.raises(InfluxRejected, match="error parsing query"):
        client.query("SELEC nothing")
    with pytest.raises(InfluxRejected, match="database not found"):
        client.query('SELECT * FROM "missing_db"."autogen"."m"')


@pytest.mark.integration
def test_writing_to_a_missing_database_is_rejected(influxdb: InfluxDB, influx_db_name: str) -> None:
    with InfluxClient(influxdb.url, influx_db_name, **influxdb.client_login()) as client:
        with pytest.raises(InfluxRejected) as raised:
            client.write([Point("m", {}, {"v": 1.0}, T0)])
    assert raised.value.status == 404
    assert "database not found" in raised.value.message


@pytest.mark.integration
def test_empty_write_sends_nothing(influxdb: InfluxDB, influx_db_name: str) -> None:
    with InfluxClient(influxdb.url, influx_db_name, **influxdb.client_login()) as client:
        client.write([])  # the database does not exist, so a request would fail


@pytest.fixture(scope="module")
def own_influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    """A server of this module's own, free to be stopped and restarted."""
    with InfluxDB(tmp_path_factory.mktemp("own-influxdb")) as server:
        yield server


@pytest.mark.integration
def test_stopped_server_is_unavailable_and_restart_keeps_data(own_influxdb: InfluxDB) -> None:
    with InfluxClient(own_influxdb.url, "kept", timeout=2.0, **own_influxdb.client_login()) as client:
        client.create_database()
        client.write([Point("m", {"k": "v"}, {"x": 1.5}, T0)])

        own_influxdb.stop()
        assert not client.ping()
        with pytest.raises(InfluxUnavailable):
            client.write([Point("m", {"k": "v"}, {"x": 2.5}, T0 + 1)])
        with pytest.raises(InfluxUnavailable):
            client.query('SELECT * FROM "m"')

        own_influxdb.start()
        assert client.ping()
        client.write([Point("m", {"k": "v"}, {"x": 2.5}, T0 + 1)])
        own_influxdb.restart()
        assert select_all(client, "m") == [
            {"k": "v", "time": T0, "x": 1.5},
            {"k": "v", "time": T0 + 1, "x": 2.5},
        ]


@pytest.fixture(scope="module")
def round_trip_client(influxdb: InfluxDB) -> Iterator[InfluxClient]:
    with InfluxClient(influxdb.url, f"roundtrip_{uuid.uuid4().hex[:8]}", **influxdb.client_login()) as influx:
        influx.create_database()
        yield influx


# NUL can be written but not named in InfluxQL, and the measurement is named in the query.
_NAME_ALPHABET = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\0")
_NAMES = st.text(alphabet=_NAME_ALPHABET, min_size=1, max_size=8) | st.sampled_from(NASTY)
_VALUES = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.booleans()
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
)
_measurement_numbers = itertools.count()


@pytest.mark.integration
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    name=_NAMES,
    tags=st.dictionaries(_NAMES, _NAMES, max_size=3),
    fields=st.dictionaries(_NAMES, _VALUES, min_size=1, max_size=3),
)
def test_generated_points_round_trip_through_the_server(
    round_trip_client: InfluxClient, name: str, tags: dict[str, str], fields: dict[str, Any]
) -> None:
    assume("time" not in tags and "time" not in fields and not tags.keys() & fields.keys())
    measurement = f"rt{next(_measurement_numbers)} {name}"
    point = Point(measurement, tags, fields, T0)
    try:
        encode_point(point)
    except LineProtocolError:
        assume(False)
    round_trip_client.write([point])
    expected = {**tags, **fields, "time": T0}
    (row,) = select_all(round_trip_client, measurement)
    assert row == expected
    assert {k: type(v) for k, v in row.items()} == {k: type(v) for k, v in expected.items()}


# --------------------------------------------------------------------------- canned answers


class _CannedHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's ``reply(handler) -> (status, headers, body)``."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length)
        self.server.requests.append(self)  # type: ignore[attr-defined]
        status, headers, body = self.server.reply(self)  # type: ignore[attr-defined]
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


Reply = Callable[[http.server.BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


@pytest.fixture
def canned() -> Iterator[Callable[[Reply], tuple[str, list[Any]]]]:
    """Start a local HTTP server answering with a given function; returns (url, requests)."""
    servers = []

    def start(reply: Reply) -> tuple[str, list[Any]]:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CannedHandler)
        server.reply = reply  # type: ignore[attr-defined]
        server.requests = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}", server.requests  # type: ignore[attr-defined]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _json(status: int, body: object, **headers: str) -> Reply:
    return lambda _: (status, {"Content-Type": "application/json", **headers}, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after"),
    [
        (500, {}, InfluxUnavailable, None),
        (503, {"Retry-After": "7"}, InfluxUnavailable, 7.0),
        (429, {"Retry-After": "1.5"}, InfluxUnavailable, 1.5),
        (408, {}, InfluxUnavailable, None),
        (400, {}, InfluxRejected, None),
        (401, {}, InfluxRejected, None),
        (413, {}, InfluxRejected, None),
    ],
)
def test_status_codes_map_to_retryable_or_rejected(
    canned: Any, status: int, headers: dict[str, str], error: type, retry_after: float | None
) -> None:
    url, _ = canned(_json(status, {"error": "the reason"}, **headers))
    with InfluxClient(url, "db") as client:
        with pytest.raises(error) as raised:
            client.write([Point("m", {}, {"v": 1.0}, 1)])
    assert raised.value.status == status
    assert "the reason" in str(raised.value)
    if error is InfluxUnavailable:
        assert raised.value.retry_after == retry_after


def test_error_message_falls_back_to_header_then_text(canned: Any) -> None:
    url, _ = canned(lambda _: (400, {"X-Influxdb-Error": "from header"}, b""))
    with InfluxClient(url, "db") as client, pytest.raises(InfluxRejected, match="from header"):
        client.write(b"m v=1 1")
    url, _ = canned(lambda _: (400, {"Content-Type": "text/plain"}, b"plain text reason"))
    with InfluxClient(url, "db") as client, pytest.raises(InfluxRejected, match="plain text reason"):
        client.write(b"m v=1 1")


def test_timeout_is_unavailable(canned: Any) -> None:
    def slow(_: Any) -> tuple[int, dict[str, str], bytes]:
        time.sleep(1.0)
        return 204, {}, b""

    url, _ = canned(slow)
    with InfluxClient(url, "db", timeout=0.2) as client, pytest.raises(InfluxUnavailable, match="timed out"):
        client.write(b"m v=1 1")


def test_nothing_listening_is_unavailable() -> None:
    with InfluxClient(f"http://127.0.0.1:{free_port()}", "db") as client:
        assert not client.ping()
        with pytest.raises(InfluxUnavailable, match="cannot reach"):
            client.write(b"m v=1 1")


def test_write_request_shape_and_token_auth(canned: Any) -> None:
    url, requests = canned(lambda _: (204, {}, b""))
    with InfluxClient(url + "/prefix/", "my db", token="s3cret") as client:
        client.write([Point("m", {"k": "v"}, {"v": 1.0}, 5)])
    (request,) = requests
    assert request.path == "/prefix/write?db=my+db&precision=ms"
    assert request.headers["Authorization"] == "Token s3cret"
    assert request.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert request.body == b"m,k=v v=1.0 5"


def test_basic_auth_and_query_form(canned: Any) -> None:
    url, requests = canned(_json(200, {"results": [{"statement_id": 0}]}))
    with InfluxClient(url, "db", username="user", password="pw", precision="ns") as client:
        assert client.query("SELECT 1", params={"x": "y"}) == []
    (request,) = requests
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"user:pw").decode()
    assert request.headers["Accept"] == "application/x-msgpack"
    form = dict(pair.split("=", 1) for pair in request.body.decode().split("&"))
    assert form["db"] == "db" and form["epoch"] == "ns" and form["q"] == "SELECT+1"


def test_json_fallback_when_msgpack_is_not_acceptable(canned: Any) -> None:
    body = {"results": [{"statement_id": 0, "series": [{"name": "m", "columns": ["time", "v"], "values": [[1, 2.5]]}]}]}

    def reply(handler: Any) -> tuple[int, dict[str, str], bytes]:
        if handler.headers.get("Accept") == "application/x-msgpack":
            return 406, {}, b""
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    url, requests = canned(reply)
    with InfluxClient(url, "db") as client:
        assert client.query("SELECT * FROM m") == [{"time": 1, "v": 2.5}]
        assert client.query("SELECT * FROM m") == [{"time": 1, "v": 2.5}]
    assert [r.headers["Accept"] for r in requests] == [
        "application/x-msgpack",
        "application/json",
        "application/json",
    ]


def test_unreadable_query_response_is_an_influx_error(canned: Any) -> None:
    url, _ = canned(lambda _: (200, {"Content-Type": "text/html"}, b"<html>proxy login</html>"))
    with InfluxClient(url, "db") as client, pytest.raises(InfluxError, match="unreadable"):
        client.query("SELECT 1")


def test_truncated_results_are_not_returned_as_complete(canned: Any) -> None:
    url, _ = canned(_json(200, {"results": [{"statement_id": 0, "series": [
        {"name": "m", "columns": ["time"], "values": [[1]], "partial": True}]}]}))
    with InfluxClient(url, "db") as client, pytest.raises(InfluxRejected, match="truncated"):
        client.query("SELECT * FROM m")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://host", "database": "db"}, "http"),
        ({"url": "http://host", "database": ""}, "database"),
        ({"url": "http://host", "database": "db", "token": "t", "username": "u"}, "either"),
        ({"url": "http://host", "database": "db", "password": "p"}, "username"),
        ({"url": "http://host", "database": "db", "precision": "us"}, "precision"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InfluxClient(**kwargs)


def test_https_with_a_ca_file_is_accepted(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    with pytest.raises(FileNotFoundError):
        InfluxClient("https://influx.example", "db", ca_file=str(missing))
    InfluxClient("https://influx.example", "db").close()


# --------------------------------------------------------------------------- quoting and decoding


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("plain", '"plain"'),
        ('with"quote', '"with\\"quote"'),
        ("back\\slash", '"back\\\\slash"'),
        ("new\nline", '"new\\nline"'),
        ("it's", '"it\'s"'),
    ],
)
def test_quote_ident(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", "'plain'"),
        ("it's", "'it\\'s'"),
        ("back\\slash", "'back\\\\slash'"),
        ("new\nline", "'new\\nline'"),
        ('say "hi"', "'say \"hi\"'"),
    ],
)
def test_quote_string(value: str, quoted: str) -> None:
    assert quote_string(value) == quoted


def test_quoting_refuses_nul() -> None:
    with pytest.raises(ValueError, match="NUL"):
        quote_ident("a\0b")
    with pytest.raises(ValueError, match="NUL"):
        quote_string("a\0b")


def test_messagepack_reader_covers_the_types_influxdb_sends() -> None:
    encoded = (
        b"\x8b"  # map of 11
        + b"\xa3pos" + b"\x05"
        + b"\xa3neg" + b"\xfb"
        + b"\xa2u8" + b"\xcc\xff"
        + b"\xa3i64" + b"\xd3" + struct.pack(">q", -(2**63))
        + b"\xa3u64" + b"\xcf" + struct.pack(">Q", 2**64 - 1)
        + b"\xa3f64" + b"\xcb" + struct.pack(">d", 3.0)
        + b"\xa3f32" + b"\xca" + struct.pack(">f", 0.5)
        + b"\xa3nil" + b"\xc0"
        + b"\xa5bools" + b"\x92\xc3\xc2"
        + b"\xa3str" + b"\xd9\x06" + "é😀".encode()
        + b"\xa3arr" + b"\xdc\x00\x02" + b"\xde\x00\x01\xa1k\xa1v" + b"\xc4\x02\x00\x01"
    )
    assert _MessagePackReader(encoded).read_all() == {
        "pos": 5,
        "neg": -5,
        "u8": 255,
        "i64": -(2**63),
        "u64": 2**64 - 1,
        "f64": 3.0,
        "f32": 0.5,
        "nil": None,
        "bools": [True, False],
        "str": "é😀",
        "arr": [{"k": "v"}, b"\x00\x01"],
    }
    assert type(_MessagePackReader(b"\xcb" + struct.pack(">d", 3.0)).read_all()) is float


def test_a_server_whose_first_user_is_not_made_yet_is_unavailable_not_refusing():
    """InfluxDB with authentication on answers so between listening and its admin being created."""
    import httpx

    from gateway.store.influx import InfluxUnavailable, _error_from

    body = {"error": "error authorizing query: create admin user first or disable authentication"}
    error = _error_from(httpx.Response(403, json=body, request=httpx.Request("GET", "http://127.0.0.1:8086/query")))
    assert isinstance(error, InfluxUnavailable) and "create admin user first" in str(error)
