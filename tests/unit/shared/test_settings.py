"""Settings read from FLOWLINE_* variables."""

from __future__ import annotations

import pytest
from flowline.settings import (
    ConfigurationError,
    Settings,
    Topics,
    env_name,
    load_settings,
    parse_rate,
    setting_names,
)


def test_no_variables_give_the_defaults() -> None:
    assert load_settings({}) == Settings()


def test_strings_convert_to_each_setting_type() -> None:
    settings = load_settings(
        {
            "FLOWLINE_DATABASE_URL": "postgresql://db/flowline",
            "FLOWLINE_API_PORT": "8080",
            "FLOWLINE_LEASE_SECONDS": "1.5",
            "FLOWLINE_TOPIC_PARTITIONS": "3",
            "FLOWLINE_OUTBOX_RELAY_GRACE_SECONDS": "2",
        }
    )

    assert settings.database_url == "postgresql://db/flowline"
    assert settings.api_port == 8080
    assert isinstance(settings.api_port, int)
    assert settings.lease_seconds == 1.5
    assert settings.topic_partitions == 3
    assert settings.outbox_relay_grace_seconds == 2.0
    assert isinstance(settings.outbox_relay_grace_seconds, float)


def test_variables_outside_the_settings_are_ignored() -> None:
    settings = load_settings({"FLOWLINE_NOT_A_SETTING": "x", "API_PORT": "1", "flowline_api_port": "2"})

    assert settings == Settings()


def test_the_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLINE_TOPIC_PREFIX", "from-env")

    assert load_settings().topic_prefix == "from-env"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FLOWLINE_API_PORT", "eighty"),
        ("FLOWLINE_API_PORT", ""),
        ("FLOWLINE_API_PORT", "80.5"),
        ("FLOWLINE_LEASE_SECONDS", "soon"),
        ("FLOWLINE_MAX_STEPS_PER_WORKFLOW", "1e3x"),
    ],
)
def test_bad_values_raise_configuration_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{variable}={value!r}"):
        load_settings({variable: value})


def test_topics_with_prefix() -> None:
    topics = Topics.with_prefix("t42")

    assert topics == Topics(
        submissions="t42.submissions",
        requests="t42.executions.requests",
        control="t42.executions.control",
        tasks="t42.tasks",
        timers="t42.timers",
        events="t42.events",
        logs="t42.logs",
        dead_letter="t42.dead-letter",
    )
    assert topics.all() == [
        "t42.submissions",
        "t42.executions.requests",
        "t42.executions.control",
        "t42.tasks",
        "t42.timers",
        "t42.events",
        "t42.logs",
        "t42.dead-letter",
    ]


def test_default_topics_are_the_documented_names() -> None:
    assert set(Settings().topics.all()) == {
        "flowline.submissions",
        "flowline.executions.requests",
        "flowline.executions.control",
        "flowline.tasks",
        "flowline.timers",
        "flowline.events",
        "flowline.logs",
        "flowline.dead-letter",
    }


def test_topics_follow_the_topic_prefix_setting() -> None:
    assert load_settings({"FLOWLINE_TOPIC_PREFIX": "stack1"}).topics.tasks == "stack1.tasks"


def test_consumer_groups_follow_their_prefix() -> None:
    settings = load_settings({"FLOWLINE_CONSUMER_GROUP_PREFIX": "g"})

    assert settings.consumer_group("executor") == "g.executor"


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({}, "FLOWLINE_DATABASE_URL, FLOWLINE_KAFKA_BOOTSTRAP"),
        ({"FLOWLINE_DATABASE_URL": "postgresql://db"}, "FLOWLINE_KAFKA_BOOTSTRAP"),
        ({"FLOWLINE_KAFKA_BOOTSTRAP": "broker:9092"}, "FLOWLINE_DATABASE_URL"),
        ({"FLOWLINE_DATABASE_URL": "", "FLOWLINE_KAFKA_BOOTSTRAP": "broker:9092"}, "FLOWLINE_DATABASE_URL"),
    ],
)
def test_require_connections_names_the_missing_variables(environ: dict[str, str], missing: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environ).require_connections()

    assert str(caught.value) == f"missing required settings: {missing}"


def test_require_connections_returns_complete_settings() -> None:
    settings = load_settings({"FLOWLINE_DATABASE_URL": "postgresql://db", "FLOWLINE_KAFKA_BOOTSTRAP": "b:9092"})

    assert settings.require_connections() is settings


def test_setting_names_cover_every_field() -> None:
    names = setting_names()

    assert len(names) == len(Settings.__struct_fields__)
    assert len(set(names)) == len(names)
    assert all(name.startswith("FLOWLINE_") and name == name.upper() for name in names)
    assert {"FLOWLINE_DATABASE_URL", "FLOWLINE_KAFKA_BOOTSTRAP", "FLOWLINE_TOPIC_PREFIX"} <= set(names)


def test_every_setting_name_is_read_by_load_settings() -> None:
    """Each advertised variable really sets its field (a round trip through the environment)."""
    defaults = Settings()
    environ = {env_name(field): str(getattr(defaults, field)) for field in Settings.__struct_fields__}

    assert set(environ) == set(setting_names())
    assert load_settings(environ) == defaults


def test_env_name() -> None:
    assert env_name("lease_seconds") == "FLOWLINE_LEASE_SECONDS"


def test_the_secret_key_is_read_but_never_shown() -> None:
    settings = load_settings({"FLOWLINE_SECRET_KEY": "k1,k2"})

    assert settings.secret_key == "k1,k2"
    assert "k1" not in repr(settings)
    assert "secret_key='***'" in repr(settings)
    assert "secret_key=''" in repr(Settings())


def test_a_rate_is_requests_per_period() -> None:
    assert parse_rate("600/minute", "X") == ("minute", 600)
    assert parse_rate(" 3 / second ", "X") == ("second", 3)


@pytest.mark.parametrize("value", ["600", "600/week", "0/minute", "-1/minute", "many/minute", "/minute"])
def test_a_bad_rate_is_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(ConfigurationError, match="FLOWLINE_RATE_LIMIT_READS"):
        parse_rate(value, "FLOWLINE_RATE_LIMIT_READS")


def test_the_database_password_is_never_shown() -> None:
    settings = load_settings({"FLOWLINE_DATABASE_URL": "postgresql://flowline:s3cr%40t@db:5432/flowline"})

    assert "s3cr" not in repr(settings)
    assert "database_url='postgresql://flowline:***@db:5432/flowline'" in repr(settings)
    assert "database_url='postgresql://db/flowline'" in repr(
        load_settings({"FLOWLINE_DATABASE_URL": "postgresql://db/flowline"})
    )
