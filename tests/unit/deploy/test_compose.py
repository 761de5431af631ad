"""docker-compose.yml, deploy/prometheus.yml and deploy/Dockerfile agree with the code they deploy."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from flowline.settings import Settings, load_settings, setting_names
from flowline_devstack.postgres import DURABLE_SETTINGS

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"

# The Flowline services and the Settings field holding the port each one serves HTTP on.
SERVICE_PORT_FIELDS = {
    "api": "api_port",
    "executor": "executor_http_port",
    "scheduler": "scheduler_http_port",
    "log-ingest": "log_ingest_http_port",
}
SCALABLE_SERVICES = ("executor", "scheduler", "log-ingest")
REQUIRED_SERVICES = {*SERVICE_PORT_FIELDS, "migrate", "kafka", "postgres", "prometheus"}

# Variables the deployment requires from the shell or .env, as an operator would set them.
OPERATOR_ENV = {
    "SECRET_KEY": "ZmxvdWxpbmUtY29tcG9zZS10ZXN0LWtleS0zMmJ5dGU=",
    "KAFKA_ADMIN_PASSWORD": "admin-secret",
    "KAFKA_FLOWLINE_PASSWORD": "flowline-secret",
    "KAFKA_PRODUCER_PASSWORD": "producer-secret",
}

_INTERPOLATION = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


def interpolate(value: Any, environ: dict[str, str] | None = None) -> Any:
    """Resolve compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` and ``$$`` as compose would."""
    if not isinstance(value, str):
        return value
    environ = environ or {}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        current = environ.get(name)
        if op == ":-":
            return current if current else arg
        if op == "-":
            return arg if current is None else current
        if op in (":?", "?"):
            if current is None or (op == ":?" and not current):
                raise AssertionError(f"${{{name}}} is required: {arg}")
            return current
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever of compose's two forms it is written in."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(name): str(interpolate(value, OPERATOR_ENV)) for name, value in raw.items()}


def command_of(service: dict[str, Any]) -> list[str]:
    """A service's command as an argument list."""
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def healthcheck_of(service: dict[str, Any]) -> str:
    """A service's healthcheck test as one string."""
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


def flowline_settings_of(service: dict[str, Any]) -> Settings:
    """The Settings a Flowline service would load inside its container."""
    return load_settings(environment_of(service))


def workspace_member_dirs() -> list[Path]:
    """Every workspace member's folder, from the root pyproject's member globs."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members: list[Path] = []
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        members.extend(path.parent for path in sorted(ROOT.glob(f"{pattern}/pyproject.toml")))
    return members


def console_scripts() -> set[str]:
    """Every console script declared by a workspace member."""
    scripts: set[str] = set()
    for member in workspace_member_dirs():
        project = tomllib.loads((member / "pyproject.toml").read_text()).get("project", {})
        scripts.update(project.get("scripts", {}))
    return scripts


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def services(compose_text: str) -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(compose_text)
    return document["services"]


@pytest.fixture(scope="module")
def flowline_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run the Flowline image built from deploy/Dockerfile."""
    built = {
        name: service
        for name, service in services.items()
        if isinstance(service.get("build"), dict)
        and Path(service["build"].get("dockerfile", "")).as_posix() == "deploy/Dockerfile"
    }
    assert built, "no service builds deploy/Dockerfile"
    return built


@pytest.fixture(scope="module")
def scrape_targets() -> dict[str, set[tuple[str, int]]]:
    """(host, port) pairs scraped by each Prometheus job."""
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    targets: dict[str, set[tuple[str, int]]] = {}
    for job in config["scrape_configs"]:
        pairs = targets.setdefault(job["job_name"], set())
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                pairs.add((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            assert dns.get("type", "SRV") == "A", f"{job['job_name']}: use A records to reach every replica"
            pairs.update((name, int(dns["port"])) for name in dns["names"])
    return targets


def test_interpolate_follows_compose_rules() -> None:
    assert interpolate("${A:-x}") == "x"
    assert interpolate("${A:-x}", {"A": ""}) == "x"
    assert interpolate("${A-x}", {"A": ""}) == ""
    assert interpolate("${A}/$$B", {"A": "a"}) == "a/$B"
    with pytest.raises(AssertionError):
        interpolate("${A:?set A}")


def test_required_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert REQUIRED_SERVICES <= services.keys()


def test_every_flowline_variable_in_the_deployment_is_a_setting(compose_text: str) -> None:
    known = set(setting_names())
    for path, text in ((COMPOSE_FILE, compose_text), (DOCKERFILE, DOCKERFILE.read_text())):
        used = set(re.findall(r"\bFLOWLINE_[A-Z0-9_]+", text))
        assert used, f"{path.name} sets no FLOWLINE_ variable"
        assert used <= known, f"{path.name} uses variables Settings does not read: {sorted(used - known)}"


def test_every_service_environment_name_is_a_setting(services: dict[str, dict[str, Any]]) -> None:
    known = set(setting_names())
    for name, service in services.items():
        flowline_names = {var for var in environment_of(service) if var.startswith("FLOWLINE_")}
        assert flowline_names <= known, f"{name}: unknown settings {sorted(flowline_names - known)}"


def test_flowline_services_have_valid_connections(flowline_services: dict[str, dict[str, Any]]) -> None:
    assert REQUIRED_SERVICES & flowline_services.keys() == {*SERVICE_PORT_FIELDS, "migrate"}
    for name, service in flowline_services.items():
        env = environment_of(service)
        for var in ("FLOWLINE_DATABASE_URL", "FLOWLINE_KAFKA_BOOTSTRAP", "FLOWLINE_HTTP_HOST"):
            assert var in env, f"{name} lacks {var}"
        assert env["FLOWLINE_HTTP_HOST"] == "0.0.0.0", f"{name} must listen beyond its own loopback"
        # Converts to Settings (ports are integers, ...) and names both servers.
        flowline_settings_of(service).require_connections()


def test_api_and_executor_require_a_secret_key(flowline_services: dict[str, dict[str, Any]]) -> None:
    for name in ("api", "executor"):
        raw = flowline_services[name]["environment"]["FLOWLINE_SECRET_KEY"]
        with pytest.raises(AssertionError, match="SECRET_KEY"):
            interpolate(raw)  # no default: compose refuses to start without the operator's key
        assert flowline_settings_of(flowline_services[name]).secret_key == OPERATOR_ENV["SECRET_KEY"]


def test_database_url_points_at_the_postgres_service(
    services: dict[str, dict[str, Any]], flowline_services: dict[str, dict[str, Any]]
) -> None:
    postgres_env = environment_of(services["postgres"])
    for name, service in flowline_services.items():
        url = urlsplit(environment_of(service)["FLOWLINE_DATABASE_URL"])
        assert url.scheme == "postgresql", name
        assert url.hostname == "postgres", name
        assert url.port == 5432, name
        assert url.username == postgres_env["POSTGRES_USER"], name
        assert url.password == postgres_env["POSTGRES_PASSWORD"], name
        assert url.path.lstrip("/") == postgres_env["POSTGRES_DB"], name


def test_kafka_is_a_single_kraft_node_advertising_the_bootstrap_address(
    services: dict[str, dict[str, Any]], flowline_services: dict[str, dict[str, Any]]
) -> None:
    kafka_env = environment_of(services["kafka"])
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"] in kafka_env["KAFKA_LISTENERS"]
    assert kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{kafka_env['KAFKA_NODE_ID']}@")
    assert kafka_env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    advertised = {listener.split("://", 1)[1] for listener in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name, service in flowline_services.items():
        bootstrap = environment_of(service)["FLOWLINE_KAFKA_BOOTSTRAP"]
        assert bootstrap in advertised, f"{name}: {bootstrap} is not an advertised Kafka listener"


def test_the_services_know_the_broker_is_apache_kafka(flowline_services: dict[str, dict[str, Any]]) -> None:
    # Consumers then run aiokafka's plain path, with none of the local broker's workarounds.
    for name, service in flowline_services.items():
        assert flowline_settings_of(service).kafka_broker == "kafka", name


def _listeners(kafka_env: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Each Kafka listener by name: its address and its security protocol."""
    protocols = dict(pair.split(":", 1) for pair in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    addresses = dict(entry.split("://", 1) for entry in kafka_env["KAFKA_LISTENERS"].split(","))
    return {name: (address, protocols[name]) for name, address in addresses.items()}


def test_every_kafka_listener_but_the_controllers_loopback_one_authenticates_and_acls_decide(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka_env = environment_of(services["kafka"])
    for name, (address, protocol) in _listeners(kafka_env).items():
        if name == kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"]:
            assert address.startswith("localhost:"), "the controller's plaintext listener answers on loopback only"
        else:
            assert protocol.startswith("SASL_"), f"listener {name} lets anyone in"
    assert kafka_env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert kafka_env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    external = kafka_env["KAFKA_LISTENER_NAME_EXTERNAL_SASL_ENABLED_MECHANISMS"]
    assert external.startswith("SCRAM-"), "outside producers' passwords must not cross the wire"


def test_the_services_sign_in_as_the_user_the_acls_grant_flowlines_topics_to(
    services: dict[str, dict[str, Any]], flowline_services: dict[str, dict[str, Any]]
) -> None:
    kafka_env = environment_of(services["kafka"])
    init_script = interpolate(" ".join(command_of(services["kafka-init"])))
    for name, service in flowline_services.items():
        settings = flowline_settings_of(service)
        listener = next(
            listener
            for listener, address in (
                entry.split("://", 1) for entry in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
            )
            if address == settings.kafka_bootstrap
        )
        assert settings.kafka_security_protocol == _listeners(kafka_env)[listener][1], name
        mechanisms = kafka_env[f"KAFKA_LISTENER_NAME_{listener}_SASL_ENABLED_MECHANISMS"].split(",")
        assert settings.kafka_sasl_mechanism in mechanisms, name
        jaas = kafka_env[f"KAFKA_LISTENER_NAME_{listener}_{settings.kafka_sasl_mechanism}_SASL_JAAS_CONFIG"]
        assert f'user_{settings.kafka_sasl_username}="{settings.kafka_sasl_password}"' in jaas, name
        assert settings.kafka_sasl_password == OPERATOR_ENV["KAFKA_FLOWLINE_PASSWORD"], name
        for resource in ("--topic flowline.", "--group flowline."):
            grant = f"--allow-principal User:{settings.kafka_sasl_username} "
            assert any(grant in line and resource in line for line in init_script.split("$acls")), (
                f"{name}: no ACL on {resource}"
            )
    # Outside producers may write the submissions topic and nothing else.
    producer_grants = [line for line in init_script.split("$acls") if "User:$PRODUCER_USER" in line]
    assert len(producer_grants) == 1 and "--topic flowline.submissions" in producer_grants[0]
    assert "--operation Read" not in producer_grants[0] and "prefixed" not in producer_grants[0]


def test_topics_are_created_with_the_configured_partitions(
    services: dict[str, dict[str, Any]], flowline_services: dict[str, dict[str, Any]]
) -> None:
    init_env = environment_of(services["kafka-init"])
    kafka_env = environment_of(services["kafka"])
    for name, service in flowline_services.items():
        settings = flowline_settings_of(service)
        assert set(init_env["TOPICS"].split()) == set(settings.topics.all()), name
        assert int(init_env["PARTITIONS"]) == settings.topic_partitions, name
        assert int(kafka_env["KAFKA_NUM_PARTITIONS"]) == settings.topic_partitions, name


def test_every_flowline_command_is_a_console_script(flowline_services: dict[str, dict[str, Any]]) -> None:
    scripts = console_scripts()
    for name, service in flowline_services.items():
        command = command_of(service)
        assert command, f"{name} has no command: the image's default would run"
        assert command[0] in scripts, f"{name} runs {command[0]!r}, which no workspace member declares"
    assert command_of(flowline_services["migrate"]) == ["flowline-db", "upgrade"]
    for name in SERVICE_PORT_FIELDS:
        assert command_of(flowline_services[name]) == [f"flowline-{name}"]


def test_database_users_wait_for_migrate(services: dict[str, dict[str, Any]]) -> None:
    users = [
        name
        for name, service in services.items()
        if name != "migrate" and "FLOWLINE_DATABASE_URL" in environment_of(service)
    ]
    assert set(SERVICE_PORT_FIELDS) <= set(users)
    for name in users:
        depends_on = services[name].get("depends_on")
        assert isinstance(depends_on, dict), f"{name}: depends_on needs the long form to set a condition"
        assert depends_on.get("migrate", {}).get("condition") == "service_completed_successfully", name
    migrate_waits_for = services["migrate"]["depends_on"]
    assert migrate_waits_for["postgres"]["condition"] == "service_healthy"
    assert services["migrate"].get("restart", "no") == "no"


def test_postgres_has_a_volume_and_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]
    assert str(postgres["image"]).startswith("postgres:15")
    assert any(str(volume).endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    assert "pg_isready" in healthcheck_of(postgres)


def test_postgres_keeps_durability_and_the_dev_clusters_wal_settings(services: dict[str, dict[str, Any]]) -> None:
    command = command_of(services["postgres"])
    settings = dict(part.split("=", 1) for part in command if "=" in part)
    assert {name: settings.get(name) for name in DURABLE_SETTINGS} == DURABLE_SETTINGS
    assert not {"fsync", "synchronous_commit", "full_page_writes"} & settings.keys()


def test_services_check_readiness_on_their_own_port(flowline_services: dict[str, dict[str, Any]]) -> None:
    for name, field in SERVICE_PORT_FIELDS.items():
        service = flowline_services[name]
        port = getattr(flowline_settings_of(service), field)
        test = healthcheck_of(service)
        assert "urllib.request" in test, f"{name}: the slim image has no curl"
        assert f"127.0.0.1:{port}/health/ready" in test, f"{name} should check /health/ready on {port}"


def test_scalable_services_have_no_fixed_name_or_host_port(services: dict[str, dict[str, Any]]) -> None:
    for name in SCALABLE_SERVICES:
        assert "container_name" not in services[name], name
        assert not services[name].get("ports"), name


def test_api_publishes_its_configured_port(flowline_services: dict[str, dict[str, Any]]) -> None:
    api = flowline_services["api"]
    port = flowline_settings_of(api).api_port
    container_ports = {int(str(mapping).split("/")[0].rsplit(":", 1)[-1]) for mapping in api["ports"]}
    assert port in container_ports


def test_prometheus_scrapes_every_service_on_its_configured_port(
    services: dict[str, dict[str, Any]],
    flowline_services: dict[str, dict[str, Any]],
    scrape_targets: dict[str, set[tuple[str, int]]],
) -> None:
    scraped = {pair for pairs in scrape_targets.values() for pair in pairs}
    for host, _port in scraped:
        assert host == "localhost" or host in services, f"Prometheus scrapes {host}, not a compose service"
    for name, field in SERVICE_PORT_FIELDS.items():
        port = getattr(flowline_settings_of(flowline_services[name]), field)
        assert scrape_targets.get(name) == {(name, port)}, f"job {name} should scrape {name}:{port}"


def test_prometheus_finds_scalable_services_through_dns() -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in SCALABLE_SERVICES:
        assert jobs[name].get("dns_sd_configs"), f"{name} replicas are found through DNS"
        assert "static_configs" not in jobs[name], name


def test_prometheus_mounts_the_scrape_config(services: dict[str, dict[str, Any]]) -> None:
    volumes = [str(volume) for volume in services["prometheus"]["volumes"]]
    assert any(v.startswith("./deploy/prometheus.yml:/etc/prometheus/prometheus.yml") for v in volumes)


def test_settings_defaults_match_the_published_ports() -> None:
    # deploy/Dockerfile's EXPOSE line and prometheus.yml's comments assume these defaults.
    defaults = Settings()
    exposed = re.search(r"^EXPOSE (.+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert exposed is not None
    expected = {getattr(defaults, field) for field in SERVICE_PORT_FIELDS.values()}
    assert {int(port) for port in exposed.group(1).split()} == expected


def test_dockerfile_installs_every_workspace_member_from_the_lock() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim|^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.MULTILINE)
    assert "ghcr.io/astral-sh/uv" in text
    assert "uv sync --frozen --no-dev" in text
    for member in workspace_member_dirs():
        manifest = (member / "pyproject.toml").relative_to(ROOT).as_posix()
        assert re.search(rf"^COPY {re.escape(manifest)} ", text, re.MULTILINE), (
            f"deploy/Dockerfile does not copy {manifest} before its dependency layer"
        )
    final_user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert final_user and final_user[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
