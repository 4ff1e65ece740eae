"""Every setting of the hub, read from `HUB_*` environment variables (or a `.env` file).

One class, one place: the README's configuration table mirrors this file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.core.topics import DEAD_LETTER_SETTING, QUEUES, STREAMS, Destinations, Queue, Stream


class MissingSetting(ValueError):
    """A setting this step needs is unset; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=".env", extra="ignore")

    # Connections. Both unset: `hub run` starts the embedded broker and Postgres.
    kafka_bootstrap: str | None = Field(None, description="Kafka bootstrap servers, e.g. kafka1:9092,kafka2:9092")
    database_url: SecretStr | None = Field(None, description="Postgres DSN for the hub's own role")
    migrate_database_url: SecretStr | None = Field(
        None, description="Postgres DSN of the schema owner used by `hub migrate` (default: HUB_DATABASE_URL)"
    )
    data_dir: Path = Field(Path(".hub"), description="Where the embedded runtime keeps Postgres data and logs")
    embedded_kafka_port: int = Field(19092, description="Port of the embedded broker (0: any free port)")
    embedded_postgres_port: int = Field(15432, description="Port of the embedded Postgres (0: any free port)")

    # Topics (contract defaults).
    topic_shipment_events: str = "shipment.events"
    topic_call_logs: str = "call.logs"
    topic_carrier_updates: str = "carrier.updates"
    topic_alerts_exceptions: str = "alerts.exceptions"
    topic_alerts_urgent: str = "alerts.urgent-orders"
    topic_alerts_complaints: str = "alerts.complaints"
    topic_alerts_escalations: str = "alerts.escalations"
    topic_dead_letter: str = "hub.dead-letter"
    topic_partitions: int = Field(6, description="Partitions of topics the hub creates itself")

    consumer_group: str = "hub"
    client_id: str = "hub"

    # Kafka client.
    kafka_idempotence: bool = Field(True, description="Idempotent producer; the embedded broker needs it off")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_session_timeout_ms: int = 10_000
    kafka_max_poll_interval_ms: int = 300_000

    # Processing.
    rules_file: Path | None = Field(None, description="Routing rules YAML; default: the contract's table")
    batch_max_records: int = Field(2000, ge=1)
    batch_steady_records: int = Field(
        250, ge=0, description="Most records per poll while the hub keeps up (0: HUB_BATCH_MAX_RECORDS)"
    )
    batch_timeout_ms: int = Field(
        100, ge=1, description="Longest a poll waits for fetched records (returns on the first)"
    )
    kafka_fetch_max_wait_ms: int = Field(50, ge=1, description="Longest the broker holds a fetch with no new data")
    batch_pipeline_depth: int = Field(2, ge=1, le=8, description="Batches stored concurrently (1: one at a time)")
    max_message_bytes: int = Field(1024 * 1024, description="Larger values are dead-lettered as oversized")
    graceful_timeout_s: float = 15.0
    retry_backoff_max_s: float = 10.0
    outbox_batch_size: int = 500
    outbox_poll_interval_s: float = 1.0
    db_pool_size: int = 4
    workers: int = Field(1, ge=1, le=64, description="`hub run` processes in one consumer group (each one core)")

    # The clock.
    scheduler_interval_s: float = Field(
        5.0, ge=0, description="How often `hub run` evaluates the clock's timers (0: never, in this process)"
    )
    timezone: str = Field("Asia/Shanghai", description="Calendar rules (month boundaries, quiet hours) use this zone")

    survey_sample_rate: float = Field(
        0.1, ge=0, le=1, description="Share of non-key customers' deliveries that get a satisfaction survey"
    )

    # Notification dispatch (off by default: notifications stay `pending`).
    dispatch_enabled: bool = Field(False, description="`hub run` sends pending notifications through their channels")
    dispatch_poll_s: float = Field(0.25, gt=0, description="How often the dispatcher looks for due notifications")
    dispatch_batch: int = Field(100, ge=1, description="Notifications claimed at a time, and the most in flight")
    dispatch_concurrency: int = Field(16, ge=1, description="Sends in flight per channel")
    dispatch_endpoint_concurrency: int = Field(
        8, ge=1, description="Sends in flight per endpoint (a webhook host, a gateway, the SMTP relay)"
    )
    dispatch_lease_s: float = Field(
        120, ge=15, description="A claimed notification returns to the queue after this long if its hub died"
    )
    dispatch_retry_scale: float = Field(
        1.0, gt=0, le=1, description="Shrinks the retry schedule for drills and tests (1: the contract's schedule)"
    )
    report_processes: int = Field(
        1, ge=1, le=16, description="Worker processes rendering statement PDFs for e-mail (about 0.5 s of CPU each)"
    )
    breaker_failures: int = Field(5, ge=1, description="Failed tries in a row that open an endpoint's circuit")
    breaker_open_s: float = Field(60, gt=0, description="How long an open circuit holds its endpoint's notices")
    smtp_host: str | None = Field(None, description="SMTP relay for e-mail notifications")
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS")
    smtp_from: str = Field("service@logistics-hub.invalid", description="Sender; its domain names the Message-IDs")
    sms_gateway_url: str | None = Field(None, description="HTTP gateway for SMS: POST {to, text, idempotency_key}")
    sms_gateway_token: SecretStr | None = Field(None, description="Bearer token of the SMS gateway")
    wechat_gateway_url: str | None = Field(None, description="HTTP gateway for WeChat messages")
    wechat_gateway_token: SecretStr | None = Field(None, description="Bearer token of the WeChat gateway")
    webhook_insecure_hosts: str = Field(
        "", description="Comma-separated hosts webhooks may reach over http or on private addresses (local tests)"
    )
    webhook_timeout_s: float = Field(10.0, gt=0, le=60, description="Timeout of one webhook or gateway call")

    # Data lifecycle (`hub purge`, and inside `hub run`): how long rows are kept; 0 keeps them forever.
    retain_inbox_days: float = Field(
        30, ge=0, description="Processed event ids kept for duplicate detection; must exceed any redelivery window"
    )
    retain_outbox_days: float = Field(7, ge=0, description="Published outbox rows kept after they were sent")
    retain_dead_letters_days: float = Field(
        90, ge=0, description="Dead letters kept after their replay, or after they arrived if never replayed"
    )
    retain_events_days: float = Field(
        0, ge=0, description="Event history (shipment_events, call_logs) kept by occurred_at (0: forever)"
    )
    purge_interval_s: float = Field(
        3600, ge=0, description="How often `hub run` purges what is past retention (0: never, in this process)"
    )
    purge_batch: int = Field(1000, ge=1, le=100_000, description="Rows deleted per purge transaction")

    # Operations.
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    http_host: str = "127.0.0.1"
    http_port: int = Field(9464, description="Health and /metrics endpoint; 0 turns it off")

    # The ops console (`hub console`).
    console_host: str = Field("127.0.0.1", description="Address `hub console` listens on")
    console_port: int = Field(8080, ge=0, le=65535, description="Port `hub console` listens on")
    console_secret: SecretStr | None = Field(
        None,
        description="Signs the login form's CSRF token; set one shared value when several consoles sit behind "
        "one load balancer (default: random per process)",
    )
    console_trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto the console believes ('*': any; empty: none)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai or UTC") from None
        return name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def insecure_webhook_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.webhook_insecure_hosts.split(",") if h.strip())

    @model_validator(mode="after")
    def _worker_ports_fit(self) -> Settings:
        # Worker i of `hub run --workers N` serves on HUB_HTTP_PORT + i.
        if self.http_port and self.http_port + self.workers - 1 > 65535:
            raise ValueError(
                f"HUB_HTTP_PORT {self.http_port} + HUB_WORKERS {self.workers} - 1 is above 65535: "
                "lower one of them (or set HUB_HTTP_PORT=0)"
            )
        return self

    def as_environment(self) -> dict[str, str]:
        """The HUB_* variables that give a `hub` subprocess exactly these settings (secrets in clear:
        for a child's environment only, never for printing)."""
        env = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"HUB_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return env

    def child_environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's environment) without its HUB_* variables, plus
        as_environment(): a `hub` subprocess started with it uses exactly these settings."""
        inherited = os.environ if base is None else base
        return {**{k: v for k, v in inherited.items() if not k.startswith("HUB_")}, **self.as_environment()}

    @property
    def dsn(self) -> str:
        """HUB_DATABASE_URL in clear, for connecting (never for printing)."""
        if self.database_url is None:
            raise MissingSetting("HUB_DATABASE_URL is not set: point it at Postgres (postgresql://user@host:5432/db)")
        return self.database_url.get_secret_value()

    @property
    def bootstrap(self) -> str:
        if not self.kafka_bootstrap:
            raise MissingSetting("HUB_KAFKA_BOOTSTRAP is not set: point it at Kafka (host:9092)")
        return self.kafka_bootstrap

    @property
    def embedded(self) -> bool:
        return self.kafka_bootstrap is None and self.database_url is None

    def topic(self, setting: str) -> str:
        """The topic a HUB_TOPIC_* setting names (see hub/core/topics.py for the table)."""
        name: str = getattr(self, setting)
        return name

    @property
    def streams(self) -> dict[str, Stream]:
        """Inbound topic -> its stream."""
        return {self.topic(s.topic_setting): s for s in STREAMS}

    @property
    def queues(self) -> dict[Queue, str]:
        """Handler queue -> its topic."""
        return {q.queue: self.topic(q.topic_setting) for q in QUEUES}

    @property
    def inbound_topics(self) -> tuple[str, ...]:
        return tuple(self.streams)

    @property
    def alert_topics(self) -> tuple[str, ...]:
        return tuple(self.queues.values())

    @property
    def dead_letter_topic(self) -> str:
        return self.topic(DEAD_LETTER_SETTING)

    @property
    def destinations(self) -> Destinations:
        return Destinations(self.queues, self.dead_letter_topic)
