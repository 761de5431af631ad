"""The Kafka security settings reach every client the services make: producer, admin, consumers, the api's streams."""

from __future__ import annotations

import ssl

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from flowline.kafka.consumer import MessageConsumer
from flowline.kafka.producer import create_producer
from flowline.kafka.security import client_options
from flowline.messages import EventMessage, decoder
from flowline.runtime.metrics import MessagingMetrics
from flowline.settings import ConfigurationError, Settings, load_settings
from prometheus_client import CollectorRegistry

SASL = {
    "FLOWLINE_KAFKA_BOOTSTRAP": "kafka:9094",
    "FLOWLINE_KAFKA_BROKER": "kafka",
    "FLOWLINE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "FLOWLINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
    "FLOWLINE_KAFKA_SASL_USERNAME": "flowline",
    "FLOWLINE_KAFKA_SASL_PASSWORD": "s3cret",
}


def _security(client: object) -> tuple[object, ...]:
    """What an aiokafka client (``AIOKafkaClient``) connects with."""
    return tuple(
        getattr(client, name)
        for name in ("_security_protocol", "_sasl_mechanism", "_sasl_plain_username", "_sasl_plain_password")
    )


async def test_sasl_settings_reach_the_producer_the_admin_client_and_every_consumer() -> None:
    settings = load_settings(SASL)
    expected = ("SASL_PLAINTEXT", "SCRAM-SHA-256", "flowline", "s3cret")
    producer = create_producer(settings)
    consumer = MessageConsumer(
        name="executor",
        settings=settings,
        topics=[settings.topics.events],
        decoder=decoder(EventMessage),
        handler=lambda message: None,  # type: ignore[arg-type, return-value]
        producer=producer,
        metrics=MessagingMetrics(CollectorRegistry()),
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **client_options(settings))

    assert _security(producer.client) == expected
    assert _security(consumer._consumer._client) == expected
    assert _security(admin._client) == expected


def test_plaintext_is_the_default_and_carries_no_credentials() -> None:
    assert client_options(Settings()) == {"security_protocol": "PLAINTEXT"}


def test_tls_protocols_get_a_context_that_checks_the_broker() -> None:
    options = client_options(load_settings({**SASL, "FLOWLINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}))

    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "flowline",
        "sasl_plain_password": "s3cret",
    }


def test_sasl_without_credentials_stops_the_service_naming_the_settings() -> None:
    settings = load_settings({**SASL, "FLOWLINE_KAFKA_SASL_PASSWORD": ""})

    with pytest.raises(ConfigurationError, match="FLOWLINE_KAFKA_SASL_USERNAME and FLOWLINE_KAFKA_SASL_PASSWORD"):
        client_options(settings)


def test_the_sasl_password_never_shows_in_the_settings_repr() -> None:
    shown = repr(load_settings(SASL))

    assert "s3cret" not in shown and "kafka_sasl_password='***'" in shown


def test_an_unknown_protocol_or_mechanism_stops_the_service() -> None:
    for variable, value in (("FLOWLINE_KAFKA_SECURITY_PROTOCOL", "SASL"), ("FLOWLINE_KAFKA_SASL_MECHANISM", "GSSAPI")):
        with pytest.raises(ConfigurationError, match=variable):
            load_settings({**SASL, variable: value})
