"""Flowline settings, read from FLOWLINE_* environment variables and passed explicitly."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Literal, get_args
from urllib.parse import urlsplit, urlunsplit

import msgspec

ENV_PREFIX = "FLOWLINE_"
# Settings whose values never appear in a repr, log line or error message.
SECRET_SETTINGS = frozenset({"secret_key", "jwt_hs256_secret", "kafka_sasl_password"})
RatePeriod = Literal["second", "minute", "hour", "day"]
RATE_PERIODS: tuple[RatePeriod, ...] = get_args(RatePeriod)
# Retentions (of executions, of audit rows): a positive whole number of one unit, at most 999,999 of it.
RETENTION_PATTERN = re.compile(r"([1-9][0-9]{0,5})([smhd])")
RETENTION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigurationError(Exception):
    """A setting is missing or has a value of the wrong type."""


class Topics(msgspec.Struct, frozen=True, kw_only=True):
    """Kafka topic names, all derived from one prefix so that stacks can share a broker.

    ``submissions`` is the one topic other systems produce to (SubmitExecution); the others carry the services'
    messages to each other and are Flowline's own (docs/operations.md §5.7).
    """

    submissions: str
    requests: str
    control: str
    tasks: str
    timers: str
    events: str
    logs: str
    dead_letter: str

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        """Build the topic names under ``prefix`` (``flowline`` gives ``flowline.tasks`` etc.)."""
        return cls(
            submissions=f"{prefix}.submissions",
            requests=f"{prefix}.executions.requests",
            control=f"{prefix}.executions.control",
            tasks=f"{prefix}.tasks",
            timers=f"{prefix}.timers",
            events=f"{prefix}.events",
            logs=f"{prefix}.logs",
            dead_letter=f"{prefix}.dead-letter",
        )

    def all(self) -> list[str]:
        """Every topic name."""
        return [getattr(self, field) for field in self.__struct_fields__]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting, one field per FLOWLINE_<FIELD_NAME_IN_CAPITALS> environment variable."""

    # Connections.
    database_url: str = ""
    kafka_bootstrap: str = ""
    db_pool_min_size: int = 2
    db_pool_max_size: int = 20
    # How long PostgreSQL lets one statement run before cancelling it; a request whose statement is cancelled
    # (a stalled database, a lock held too long) answers 503 instead of hanging. A query that gets no answer
    # at all (the server or the network gone quiet) gives up a few seconds later. 0: no limit.
    db_statement_timeout_seconds: float = 30.0
    # How long an api request waits for a free connection of its process's pool (all held: slow clients, a
    # stalled database) before it answers 503. The background services wait their turn. 0: for ever.
    db_acquire_timeout_seconds: float = 10.0

    # Secrets: one or more Fernet keys, comma-separated (the first encrypts, all decrypt), that seal agent
    # credentials and webhook secrets at rest. Required by the api, the executor and the scheduler; `make dev`
    # generates one into .flowline/.
    secret_key: str = ""
    # JWTs the api accepts besides API keys: signed with this shared secret (HS256), or by the private half of
    # one of these PEM public keys (RS256, several for rotation). Empty: JWTs are refused.
    jwt_hs256_secret: str = ""
    jwt_rs256_public_keys: str = ""
    # When set, a JWT's `iss` must be this issuer, and its `aud` must name this audience. Empty: not checked.
    jwt_issuer: str = ""
    jwt_audience: str = ""
    # The longest a JWT may live, `exp` minus `iat` (both then required; an `iat` in the future is refused).
    # 0: any lifetime, and `iat` is not needed.
    jwt_max_lifetime_seconds: int = 86_400
    # How long an api process trusts an API key it verified in PostgreSQL before looking again. A key revoked
    # through an api process is refused there at once, and by the other api processes within this time. 0:
    # every request looks the key up.
    api_key_cache_seconds: float = 5.0

    # How the services' Kafka clients connect: PLAINTEXT, or with SASL authentication (mechanism PLAIN or
    # SCRAM-SHA-256/512, as this user) and/or TLS (trusting the broker's certificate through this CA file, or the
    # system's CAs). A broker that locks the internal topics down with ACLs grants them to this user only.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_cafile: str = ""

    # Kafka layout.
    # How long the group waits for a consumer that stopped heartbeating (a killed process) before its
    # partitions move to the others: the pause in consuming after a crash.
    kafka_session_timeout_ms: int = 10_000
    topic_prefix: str = "flowline"
    # The local broker creates a topic it lost with its data again on first use, with 4 partitions, and hands
    # a consumer group's member its old assignment when it rejoins: with any other count, the partitions such
    # a topic gains or loses are read by no one. On Apache Kafka, set num.partitions to the same count.
    topic_partitions: int = 4
    consumer_group_prefix: str = "flowline"
    # The broker: "tansu", the local broker (Tansu) of the embedded stack, which consumers work around with
    # the settings below, or "kafka", Apache Kafka, where they run aiokafka's plain path (a fixed 500 ms fetch
    # wait, no parking, no seeks) and the settings below are not read (see flowline.kafka.compat).
    kafka_broker: Literal["tansu", "kafka"] = "tansu"
    # How long a fetch waits for data. The local broker looks for data again only every so often within the
    # wait, so the wait is latency on each hop an execution takes through it (two: the request, then its
    # events), and the default is short.
    kafka_fetch_max_wait_ms: int = 4
    # The wait of the same consumers while messages of several executions come together (under load): longer
    # fetches carry more each, and the local broker answers a fetch only when its wait is up, so each fetch
    # costs it and the consumer CPU whether or not data came.
    kafka_busy_fetch_max_wait_ms: int = 10
    # The same for consumers whose messages no one waits on (log-ingest, the scheduler's timer announcements and
    # its events consumer for webhooks, the executor's tasks topic, which carries only what the executor could
    # not run at once). Each idle consumer polls the local broker once per wait: a longer one spares both of
    # them CPU.
    kafka_background_fetch_max_wait_ms: int = 100
    # A consumer someone waits on that had no records for this long stops fetching until a publisher rings
    # (PostgreSQL NOTIFY, sent only for a partition quiet this long) or this long again has passed: an idle
    # stack on the local broker then polls it about once a second instead of every few milliseconds. Records
    # from producers outside Flowline wait at most this long on an idle stack. 0: never park.
    kafka_idle_park_seconds: float = 1.0
    # After how long a consumer whose position stays past a partition's end reads the partition again from its
    # start; 0 turns it off. The local broker answers a fetch past a log it lost with its data with no records,
    # forever.
    kafka_lost_partition_seconds: float = 3.0

    # HTTP listeners: the api, and each background service's health and metrics endpoint.
    http_host: str = "127.0.0.1"
    api_port: int = 8000
    executor_http_port: int = 9101
    scheduler_http_port: int = 9102
    log_ingest_http_port: int = 9103
    # Peers (IPs or CIDRs, comma-separated) whose X-Forwarded-For and X-Forwarded-Proto the api believes;
    # from anyone else the client address is the connection's. Empty: trust no proxy.
    trusted_proxies: str = ""

    # Hardening. Agent and http steps (and agent health checks) never connect to loopback, private,
    # link-local, multicast, unspecified or reserved addresses except those in these networks (comma-separated
    # IPs or CIDRs, e.g. "127.0.0.0/8,::1" for a local stack). Empty: public addresses only.
    outbound_allowed_networks: str = ""
    # The most an http or agent step reads of an answer (decoded); more fails the attempt (ResponseTooLarge).
    outbound_response_max_bytes: int = 10 * 1024 * 1024
    # How long an http or agent step's request may take in all when it sets no timeout of its own: a server
    # that answers a byte at a time never trips the per-read timeout.
    outbound_deadline_seconds: float = 300.0
    # The api's request bodies: their size (413 past it; a pack install carries a whole folder, so it has its
    # own), and in JSON bodies how deep objects and arrays nest and how long one string may be (400 past them).
    max_request_body_bytes: int = 1_048_576
    max_pack_install_bytes: int = 16_777_216
    max_json_depth: int = 64
    max_json_string_length: int = 1_048_576
    # Rate limits of the api's tenant routes, per principal (per client address without valid credentials): one
    # budget each for reads (GET), writes (every other method) and execution starts, as "<requests>/<period>"
    # with a period of second, minute, hour or day. The budgets are counted in the api process ("memory") or in
    # PostgreSQL ("postgres"), which every api replica shares. The defaults are more than one api process
    # serves (it starts a few hundred executions a second), so that one principal may use the whole machine;
    # a shared deployment sets its own. Per second because Litestar's limiter keeps one timestamp per request
    # of the window: a budget per minute this large would make every request copy a list of thousands.
    rate_limit_reads: str = "10000/second"
    rate_limit_writes: str = "2000/second"
    rate_limit_starts: str = "2000/second"
    rate_limit_store: Literal["memory", "postgres"] = "memory"

    # Behaviour.
    worker_id: str = ""
    lease_seconds: float = 30.0
    max_concurrent_tasks: int = 200
    # Run a step that becomes ready in the executor that made it ready, when it has room, instead of
    # sending it through the tasks topic: one transaction and one broker round trip less per step.
    eager_dispatch: bool = True
    # The outbox relay (docs/architecture.md §4.2) publishes rows older than the grace. It looks when its process
    # leaves it rows (published ones to forget, or a failed publish) an interval later, again after a failed
    # pass, and otherwise sleeps until the oldest row is past the grace, or the fallback at most: the bound on
    # how late a row that a process which died left behind is relayed.
    outbox_relay_interval_seconds: float = 1.0
    outbox_relay_grace_seconds: float = 2.0
    outbox_relay_fallback_seconds: float = 10.0
    # The scheduler's loops sleep until their next work is due or PostgreSQL notifies a change (a schedule, a
    # delivery, a bulk operation, a timer's announcement), and look again after this long in any case: the bound
    # on how late work is should a notification be lost unnoticed. While the scheduler cannot listen for
    # notifications, the loops poll at their intervals below instead.
    scheduler_fallback_poll_seconds: float = 10.0
    timer_poll_interval_seconds: float = 0.5
    # How often the scheduler looks for bulk operations to work on while it cannot listen for new ones.
    bulk_operation_poll_interval_seconds: float = 1.0
    # How often the scheduler looks for due schedules and crowded fire times while it cannot listen for changes
    # (listening, a burst of created schedules has it look for crowded ones at most this often), and while a
    # buffered run waits for its schedule's previous run to finish.
    schedule_poll_interval_seconds: float = 0.5
    # How long before a fire time that many schedules share (50 or more) the scheduler claims them and prepares
    # their runs, to write them all at that time (flowline_scheduler.schedules_ahead); 0: never ahead. Preparing
    # 10,000 runs took the scheduler 2.5 to 6.5 s on the 2-core benchmark machine under other work.
    schedule_prepare_ahead_seconds: float = 10.0
    # How fast a backfill starts its runs, so that a wide window does not flood the executors.
    backfill_runs_per_second: float = 50.0
    redrive_after_seconds: float = 30.0
    # Webhooks (flowline.domain.webhooks). The waits after each failed delivery attempt, in seconds, comma-separated: a
    # delivery is tried once more than there are waits, then marked failed (by default 11 attempts over 28 hours).
    webhook_retry_schedule_seconds: str = "5,30,120,600,1800,3600,7200,14400,28800,43200"
    # How long one delivery attempt may take in all (connecting, sending, the answer's head and up to 64 KiB of it).
    webhook_timeout_seconds: float = 10.0
    # A webhook whose every delivery failed for this long is disabled, with the reason shown on it. 0: never.
    webhook_disable_after_seconds: float = 86_400.0
    # How long a rotated-out secret still signs deliveries, beside the new one.
    webhook_secret_rotation_seconds: float = 86_400.0
    # How often the scheduler looks for deliveries that came due while it cannot listen for new ones, or while a
    # due delivery waits (behind an earlier event of its execution, or for its webhook to be enabled).
    webhook_poll_interval_seconds: float = 1.0
    # Deliveries one scheduler process sends at the same time. More lets slow receivers hold fewer of them, but
    # costs CPU per delivery: httpx's connection pool does work for every request in flight on every request.
    webhook_max_concurrent_deliveries: int = 50
    # Of those, how many one webhook may have in flight: a slow receiver holds at most these, not every one.
    webhook_max_in_flight_per_webhook: int = 10
    # How long a succeeded or failed delivery stays in the delivery log (pending ones stay until settled).
    webhook_delivery_retention_days: float = 30.0
    # The sweep under the events topic (flowline_scheduler.webhook_sweep): how often it looks for stored events
    # whose deliveries were never recorded (their messages lost by the broker), how old an event must be first
    # (the topic normally records it sooner), how far back it looks at most (after a long stop), and how many
    # events one pass reads.
    webhook_sweep_interval_seconds: float = 10.0
    webhook_sweep_grace_seconds: float = 30.0
    webhook_sweep_lookback_seconds: float = 86_400.0
    webhook_sweep_batch_size: int = 1000
    inbox_retention_days: float = 7.0
    # Data lifecycle (flowline_scheduler.retention): an execution whose root finished longer ago than its
    # workflow's retention (or this default) is removed whole; audit rows older than theirs are removed too.
    # Durations such as "90s", "12h", "30d".
    execution_retention: str = "30d"
    audit_retention: str = "365d"
    # How often the scheduler looks for what retention removes, and how many root executions one batch (one
    # short transaction) removes.
    retention_interval_seconds: float = 10.0
    retention_batch_size: int = 1000
    # When set, each removed root execution is first written here as one gzip'd JSON document
    # (<dir>/<tenant>/<yyyy>/<mm>/<dd>/<id>.json.gz); one whose document cannot be written is not removed.
    archive_dir: str = ""
    # Per-task log limits (docs/architecture.md §6.2): a record's message is cut at this many bytes (UTF-8),
    # and a task's records stop being stored after this many records or bytes of messages.
    task_log_message_max_bytes: int = 32 * 1024
    task_log_max_records: int = 10_000
    task_log_max_bytes: int = 10 * 1024 * 1024
    consumer_max_failures: int = 5
    # How long a consumer holds the offsets of batches it has handled (their transactions committed) before it
    # commits them to the broker: one commit request per interval instead of one per batch. A consumer that dies
    # meanwhile has at most this long of messages delivered again, which every handler allows (idempotent).
    consumer_commit_interval_ms: int = 1000
    max_steps_per_workflow: int = 500
    max_definition_bytes: int = 1_000_000
    log_level: str = "INFO"
    # One JSON object per line (time, level, service, logger, message, requestId, executionId), or plain text.
    log_format: Literal["json", "text"] = "json"
    # One line per api request at INFO (method, route, path, status, duration, principal, client address);
    # health and metrics requests only at DEBUG.
    access_log: bool = True

    # Live streams (SSE): a keep-alive comment on a quiet stream, and how long a stream without events stays open.
    stream_keepalive_seconds: float = 15.0
    # How many live streams one principal may hold open on one api process (more: 429), and how many all
    # principals together (more: 503); each open stream costs a task and up to its buffer in memory.
    stream_max_per_principal: int = 50
    stream_max_per_process: int = 500
    # How many bytes of records (as on the topic) a stream may have waiting for its client; one whose client
    # falls further behind is closed with a final `overflow` event, and resumes from the event log.
    stream_buffer_max_bytes: int = 1_048_576
    # How long POST /executions/{id}/cancel waits for the engine's outcome before answering 202.
    cancel_wait_seconds: float = 5.0
    stream_idle_timeout_seconds: float = 300.0

    # The embedded local stack (`make dev`).
    dev_postgres_port: int = 55432
    dev_kafka_port: int = 19092
    dev_tenant: str = "dev"

    def __repr__(self) -> str:
        """Every setting except the secret ones, which show only whether they are set, and no password."""
        shown = (
            f"{name}='***'" if name in SECRET_SETTINGS and getattr(self, name) else f"{name}={getattr(self, name)!r}"
            for name in self.__struct_fields__
            if name != "database_url"
        )
        return f"Settings(database_url={without_password(self.database_url)!r}, {', '.join(shown)})"

    @property
    def topics(self) -> Topics:
        """The Kafka topic names."""
        return Topics.with_prefix(self.topic_prefix)

    def consumer_group(self, name: str) -> str:
        """The consumer group id for one of the services' consumers."""
        return f"{self.consumer_group_prefix}.{name}"

    def require_connections(self) -> Settings:
        """Fail early, naming the variables, when a service starts without its servers."""
        missing = [env_name(field) for field in ("database_url", "kafka_bootstrap") if not getattr(self, field)]
        if missing:
            raise ConfigurationError(f"missing required settings: {', '.join(missing)}")
        return self


def without_password(url: str) -> str:
    """``url`` with its password, if it has one, shown as ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    credentials, _, host = parts.netloc.rpartition("@")
    user = credentials.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return ENV_PREFIX + field.upper()


def setting_names() -> list[str]:
    """Every environment variable Flowline reads."""
    return [env_name(field) for field in Settings.__struct_fields__]


def parse_networks(value: str, setting: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Comma-separated addresses or CIDRs (``127.0.0.0/8, ::1``) as networks.

    Raises:
        ConfigurationError: an entry is neither, naming ``setting``.
    """
    networks = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as err:
            raise ConfigurationError(f"invalid setting {setting}: {entry!r} is not an IP address or CIDR") from err
    return tuple(networks)


def parse_rate(value: str, setting: str) -> tuple[RatePeriod, int]:
    """A rate such as ``600/minute`` as its period and number of requests.

    Raises:
        ConfigurationError: ``value`` is not ``<requests>/<period>``, naming ``setting``.
    """
    requests, _, period = value.partition("/")
    period = period.strip()
    if not requests.strip().isdigit() or int(requests) < 1 or period not in RATE_PERIODS:
        raise ConfigurationError(
            f"invalid setting {setting}={value!r}: expected <requests>/<period>, a period being one of "
            f"{', '.join(RATE_PERIODS)} (e.g. 600/minute)"
        )
    return period, int(requests)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``environ`` (default: the process environment).

    Raises:
        ConfigurationError: a variable does not convert to its setting's type.
    """
    source = os.environ if environ is None else environ
    values = {field: source[env_name(field)] for field in Settings.__struct_fields__ if env_name(field) in source}
    try:
        settings = msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as err:
        reason, _, location = str(err).partition(" - at ")
        field = location.strip("`").removeprefix("$.")
        if field in values:
            raise ConfigurationError(f"invalid setting {env_name(field)}={values[field]!r}: {reason}") from err
        raise ConfigurationError(f"invalid setting: {err}") from err
    for field in ("execution_retention", "audit_retention"):
        retention_setting(settings, field)
    return settings


def retention_setting(settings: Settings, field: str) -> int:
    """The seconds of a retention setting (``execution_retention``, ``audit_retention``).

    Raises:
        ConfigurationError: the value is not a positive duration such as ``30d``, naming the variable.
    """
    value: str = getattr(settings, field)
    try:
        return retention_seconds(value)
    except ValueError as err:
        raise ConfigurationError(f"invalid setting {env_name(field)}={value!r}: {err}") from err


def retention_seconds(text: str) -> int:
    """The seconds of a retention: a whole number of seconds, minutes, hours or days (``90s``, ``12h``, ``30d``).

    Raises:
        ValueError: anything else, including zero and negative numbers.
    """
    match = RETENTION_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a retention: a positive whole number of s, m, h or d, e.g. '30d'")
    return int(match.group(1)) * RETENTION_UNITS[match.group(2)]


def retention_text(seconds: int) -> str:
    """A retention in seconds as the largest unit that divides it (``2592000`` → ``30d``)."""
    for unit, size in sorted(RETENTION_UNITS.items(), key=lambda item: -item[1]):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("seconds divide every whole number")
