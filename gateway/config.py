"""Typed gateway configuration: a TOML file (optional), then command-line overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, model_validator

from common.backoff import Backoff
from common.broker import BrokerSettings, allow_or_refuse, check_no_credentials_in_url, read_password
from common.validation import Strict, validation_problems
from contract import NAME_PATTERN

Latitude = Annotated[float, Field(ge=-90.0, le=90.0)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0)]

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
DEFAULT_INFLUX_URL = "http://127.0.0.1:8086"
DEFAULT_DB = "streetwatch"


class GatewayConfigError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.problems = problems


class InfluxSettings(Strict):
    url: str = Field(DEFAULT_INFLUX_URL, description="InfluxDB base URL (v1-compatible API), http or https.")
    db: str = Field(DEFAULT_DB, description="Database (1.x) or bucket mapped to a database (2.x/3.x).")
    username: str | None = Field(None, description="Basic-auth user (InfluxDB 1.x).")
    password_env: str | None = Field(None, description="Environment variable holding the password.")
    password_file: Path | None = Field(None, description="File holding the password (first line).")
    token_env: str | None = Field(None, description="Environment variable holding an API token (2.x/3.x).")
    token_file: Path | None = Field(None, description="File holding an API token (first line).")
    ca_file: Path | None = None
    insecure: bool = Field(False, description=(
        "Allow InfluxDB without a login (neither username nor token) or over plain http:// to another host. An "
        "explicit choice, logged as a warning at start; without it `gateway run` refuses such a database."))

    @model_validator(mode="after")
    def _secrets_from_one_place_never_the_url(self):
        for what in ("password", "token"):
            if getattr(self, f"{what}_env") and getattr(self, f"{what}_file"):
                raise ValueError(f"{what}_env and {what}_file: give one of them")
        check_no_credentials_in_url(self.url)
        return self

    def password(self) -> str | None:
        return read_password(self.password_env, self.password_file)

    def security_problems(self) -> list[str]:
        """No login, or a password sent in plain text off this host (http:// to another host)."""
        problems = []
        if not self.username and not (self.token_env or self.token_file):
            problems.append("influx.username: no login (anonymous); give username and password_file, or a token")
        host = urlsplit(self.url).hostname or ""
        if urlsplit(self.url).scheme == "http" and host not in ("127.0.0.1", "::1", "localhost"):
            problems.append(f"influx.url: {self.url} is plain text to another host; use https:// with ca_file")
        return problems

    def check_secure(self, log) -> None:
        allow_or_refuse(self.security_problems(), self.insecure, "influx", log)

    def token(self) -> str | None:
        return read_password(self.token_env, self.token_file)


class MqttSettings(BrokerSettings):
    """The broker (``url``, credentials, TLS with an optional client certificate) and this gateway's session."""

    url: str = Field(DEFAULT_MQTT_URL, description="Broker URL, mqtt:// or mqtts://.")
    client_id: str = Field("gateway-1", description="Unique per gateway process; keeps its session.")
    share_group: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        "gateways", description=(
            "Shared-subscription group. Gateways in one group that take the same districts get their messages in "
            "turn, so split a city between gateways with serve_districts, not by the group alone."))
    fast_receive: bool = Field(True, description=(
        "Use the fast receive path where the installed paho supports it; false (or STREETWATCH_MQTT_PLAIN=1) "
        "uses plain paho."))


Category = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
District = Annotated[str, Field(pattern=NAME_PATTERN)]


class MergeOverrides(Strict):
    """Merge settings that differ from the [dedupe] defaults; what is left out is inherited."""

    merge_radius_m: float | None = Field(None, gt=0)
    merge_gap_s: float | None = Field(None, gt=0)
    min_detections: int | None = Field(None, ge=1)


class DistrictOverrides(MergeOverrides):
    categories: dict[Category, MergeOverrides] = Field(default_factory=dict, description=(
        "Per category within this district; wins over the district's and the category's own settings."))


class DedupeSettings(Strict):
    merge_radius_m: float = Field(30.0, gt=0, description="Detections closer than this to a lead may join it.")
    merge_gap_s: float = Field(900.0, gt=0, description="Largest event-time gap within one lead.")
    min_detections: int = Field(2, ge=1, description="Distinct detections before a group becomes a lead.")
    horizon_s: float = Field(7200.0, gt=0, description=(
        "Groups whose last detection is younger than this stay in memory (and are rebuilt on start); "
        "older ones are read back from InfluxDB when a late detection needs them."))
    categories: dict[Category, MergeOverrides] = Field(default_factory=dict, description=(
        "Per category: [dedupe.categories.illegal_dumping] merge_gap_s = 3600, say."))
    districts: dict[District, DistrictOverrides] = Field(default_factory=dict, description=(
        "Per district, and per category within it; a district's settings win over a category's."))

    def overrides(self) -> dict[tuple[str | None, str | None], dict[str, float | int]]:
        """The changed settings by (category, district), None standing for any; scopes that change nothing left out."""
        scoped: dict[tuple[str | None, str | None], MergeOverrides] = {
            **{(category, None): override for category, override in self.categories.items()},
            **{(None, district): override for district, override in self.districts.items()},
            **{(category, district): within for district, override in self.districts.items()
               for category, within in override.categories.items()},
        }
        changes = {scope: override.model_dump(exclude_none=True, exclude={"categories"})
                   for scope, override in scoped.items()}
        return {scope: change for scope, change in changes.items() if change}

    @model_validator(mode="after")
    def _horizon_covers_two_gaps(self):
        largest = max([self.merge_gap_s, *(c["merge_gap_s"] for c in self.overrides().values() if "merge_gap_s" in c)])
        if self.horizon_s < 2 * largest:
            raise ValueError(f"horizon_s ({self.horizon_s:g}) must be at least 2 x the largest merge_gap_s "
                             f"({largest:g})")
        return self


class RetrySettings(Strict):
    """Waits between InfluxDB retries: doubling from ``initial_s`` up to ``max_s``; 0 means no wait."""

    initial_s: float = Field(0.5, ge=0, le=60)
    max_s: float = Field(10.0, ge=0, le=600)

    def backoff(self) -> Backoff:
        return Backoff(first_s=self.initial_s, max_s=max(self.max_s, self.initial_s))


class DistrictArea(Strict):
    """A district drawn as a lat/lon polygon; a lead inside it goes to its team."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    team: str | None = Field(None, min_length=1, description="Default: the teams entry of the district.")
    polygon: list[tuple[Latitude, Longitude]] = Field(min_length=3, description="[[lat, lon], ...] corners.")


class EvidenceSettings(Strict):
    """How much disk evidence pictures may take, and what may be evicted to make room."""

    max_total_mb: float = Field(20480.0, gt=0, description="All pictures together, in MiB.")
    max_box_mb: float = Field(2048.0, gt=0, description="The pictures of one box, in MiB.")
    retention_days: float = Field(90.0, ge=0, description=(
        "Pictures of a lead closed this long ago may be evicted, oldest first, when a budget is full; pictures "
        "of leads not closed never are: new pictures are refused (dead-lettered) instead."))
    wait_s: float = Field(900.0, gt=0, le=86400, description=(
        "A picture whose detection is unknown is kept this long for it to arrive, then deleted and dead-lettered."))


class SlaTargets(Strict):
    """Clock targets in minutes, counted from when the lead opened; what is left out is inherited."""

    dispatch_min: float | None = Field(None, gt=0, description="Time to dispatch.")
    on_scene_min: float | None = Field(None, gt=0, description="Time to on-scene.")
    resolve_min: float | None = Field(None, gt=0, description="Time to resolve.")
    working_hours: bool | None = Field(None, description="Count only working hours ([desk.sla] hours, days, "
                                                         "holidays) instead of wall-clock time.")


class DistrictSla(SlaTargets):
    categories: dict[Category, SlaTargets] = Field(default_factory=dict, description=(
        "Per category within this district; wins over the district's and the category's own targets."))


class SlaSettings(Strict):
    """The leads' clocks: targets per category and district, and the working calendar."""

    dispatch_min: float = Field(15.0, gt=0, description="Default time to dispatch, minutes.")
    on_scene_min: float = Field(30.0, gt=0, description="Default time to on-scene, minutes.")
    resolve_min: float = Field(240.0, gt=0, description="Default time to resolve, minutes.")
    working_hours: bool = Field(False, description="Count only working hours by default.")
    due_share: float = Field(0.8, gt=0, lt=1, description="A clock is 'due' once this share of its target passed.")
    timezone: str = Field("UTC", description="IANA time zone of the working calendar, e.g. Asia/Shanghai.")
    hours: tuple[Annotated[str, Field(pattern=r"^\d\d:\d\d$")], Annotated[str, Field(pattern=r"^\d\d:\d\d$")]] = Field(
        ("08:00", "18:00"), description="Working hours of a working day, [start, end], local time.")
    days: list[Annotated[int, Field(ge=1, le=7)]] = Field([1, 2, 3, 4, 5], description="Working days, 1 = Monday.")
    holidays: list[str] = Field(default_factory=list, description="Dates (YYYY-MM-DD) that are no working days.")
    categories: dict[Category, SlaTargets] = Field(default_factory=dict)
    districts: dict[District, DistrictSla] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _calendar_is_readable(self):
        from datetime import date
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not a known IANA time zone") from None
        if not self.hours[0] < self.hours[1]:
            raise ValueError(f"hours: the working day must start before it ends, not {self.hours[0]}-{self.hours[1]}")
        for day in self.holidays:
            try:
                date.fromisoformat(day)
            except ValueError:
                raise ValueError(f"holidays: {day!r} is no date (YYYY-MM-DD)") from None
        return self


class WebhookSettings(Strict):
    """A receiver of lead notifications: JSON, signed with HMAC-SHA256 over the body with a shared secret."""

    url: str = Field(pattern=r"^https?://", description="Where to POST.")
    secret_env: str | None = Field(None, description="Environment variable holding the shared secret.")
    secret_file: Path | None = Field(None, description="File holding the shared secret.")
    events: list[Literal["opened", "dispatched", "overdue", "closed"]] = Field(
        ["opened", "dispatched", "overdue", "closed"], description="Which lead transitions are sent.")
    ca_file: Path | None = None
    max_attempts: int = Field(8, ge=1, le=100, description="Attempts per notification before it is given up.")
    retry_initial_s: float = Field(2.0, ge=0, le=3600)
    retry_max_s: float = Field(300.0, ge=0, le=86400)

    @model_validator(mode="after")
    def _one_secret(self):
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("give the shared secret as exactly one of secret_env or secret_file")
        return self


class BoxPosition(Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    lat: Latitude
    lon: Longitude


class DeskSettings(Strict):
    """`gateway web`: the lead desk."""

    listen: str = Field("127.0.0.1:8080", pattern=r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$",
                        description="HOST:PORT to serve on.")
    tls_cert: Path | None = Field(None, description="PEM certificate (chain) for HTTPS; else plain HTTP, for "
                                                    "loopback or behind a TLS reverse proxy.")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert.")
    accounts: Path = Field(Path("desk.sqlite3"), description="SQLite file of desk accounts, sessions and "
                                                            "notifications.")
    session_idle_h: float = Field(8.0, gt=0, le=24 * 30, description="A session unused this long ends.")
    login_max_failures: int = Field(5, ge=1, description="Failed logins per account and address in the window.")
    login_window_min: float = Field(15.0, gt=0, description="The window of login_max_failures.")
    refresh_s: float = Field(5.0, gt=0, le=600, description="How often open pages update themselves.")
    clock_every_s: float = Field(15.0, gt=0, le=3600, description=(
        "How often the desk process checks the clocks and sends due notifications."))
    sla: SlaSettings = Field(default_factory=SlaSettings)
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    boxes: list[BoxPosition] = Field(default_factory=list, description="Box positions for the map.")

    @model_validator(mode="after")
    def _tls_pair(self):
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self


class VerifySettings(Strict):
    """Tamper-evident messages (contract.chain): what the gateway does with the boxes' hash chains and seals."""

    require_verified: bool = Field(False, description=(
        "true: only messages a valid seal of their box vouches for are stored; unchained ones (older firmware), "
        "forged ones and those no seal covers within seal_timeout_s go to `rejected`. false: those are stored "
        "marked unverified, and their leads carry the mark. `gateway provision-gateway` writes true for new "
        "deployments; a config without the key keeps accepting older boxes."))
    keys_dir: Path | None = Field(None, description=(
        "Folder of the boxes' public keys, BOX.pub, as `gateway provision-box` writes them (DIR/box-keys); "
        "read again when a box without a key is heard."))
    seal_timeout_s: float = Field(60.0, gt=0, le=3600, description=(
        "A chained message no valid seal covers this long after it arrived is rejected (or, with "
        "require_verified = false, stored unverified). Boxes seal every 0.2 s while sending, and at once when "
        "they start again, so this only needs to outlast a box's reboot."))
    max_pending: int = Field(200_000, ge=100, le=10_000_000, description=(
        "Chained messages held for their seal, all boxes together, at most; beyond it the oldest time out early."))


class GatewayConfig(Strict):
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    dedupe: DedupeSettings = Field(default_factory=DedupeSettings)
    evidence_dir: Path = Field(Path("evidence"), description="Content-addressed store of evidence JPEGs.")
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    batch_size: int = Field(500, ge=1, le=50_000, description="Messages checked and deduped together at most.")
    write_max_messages: int = Field(4000, ge=1, le=50_000, description=(
        "Messages per InfluxDB write at most: batches that queue up while a write runs are written together."))
    batch_wait_s: float = Field(0.05, gt=0, le=10, description="Longest wait to fill a batch (adds to lead latency).")
    serve_districts: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = Field(default_factory=list, description=(
        "Districts whose boxes this gateway takes; empty takes all. Gateways that split a city by district each "
        "see whole incidents, so their leads stay exact."))
    teams: dict[str, str] = Field(default_factory=dict, description="District -> responsible street team.")
    districts: list[DistrictArea] = Field(default_factory=list, description=(
        "District polygons, checked in order before the box's district; the first one holding the lead wins."))
    retry: RetrySettings = Field(default_factory=RetrySettings)
    status_refresh_s: float = Field(1.0, ge=0, le=60, description=(
        "Longest time before the ingest reads case staff's lead changes again; 0 reads them before every batch."))
    prune_every_s: float = Field(60.0, gt=0, description="How often groups beyond the horizon are forgotten.")
    seq_lookback_s: float = Field(7 * 86400.0, gt=0, description="How far back box seq state is read on start.")
    resend_request_after_s: float = Field(120.0, gt=0, description=(
        "A seq gap open this long is asked of its box again (contract ResendRequest); the box answers from its "
        "spool."))
    resend_request_every_s: float = Field(600.0, gt=0, description="How often one gap is asked for at most.")
    desk: DeskSettings = Field(default_factory=DeskSettings)
    verify: VerifySettings = Field(default_factory=VerifySettings)

    @model_validator(mode="after")
    def _a_write_holds_a_batch(self):
        if self.write_max_messages < self.batch_size:
            raise ValueError(f"write_max_messages ({self.write_max_messages}) must be at least batch_size "
                             f"({self.batch_size})")
        return self


def load_gateway_config(path: Path | None, overrides: dict) -> GatewayConfig:
    """Read the optional TOML file, apply dotted overrides (``influx.url``), validate once."""
    raw: dict = {}
    source = str(path) if path else "<defaults>"
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as exc:
            raise GatewayConfigError(source, [f"cannot read: {exc.strerror}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise GatewayConfigError(source, [f"not valid TOML: {exc}"]) from None
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        raise GatewayConfigError(source, validation_problems(exc, top="")) from None
