"""How every Kafka client of Flowline's authenticates to the broker (SASL) and encrypts its traffic (TLS).

The same options go to each producer, consumer and admin client a service makes, so that a broker whose
listener requires SASL (docs/operations.md §5.7: the internal topics locked down with ACLs) sees one principal
per deployment of Flowline's services.
"""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from flowline.settings import ConfigurationError, Settings, env_name


def client_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of an aiokafka client that connect it as ``settings`` say (protocol, SASL, TLS).

    Raises:
        ConfigurationError: a SASL protocol without a username or password.
    """
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile or None)
    if protocol.startswith("SASL_"):
        if not settings.kafka_sasl_username or not settings.kafka_sasl_password:
            raise ConfigurationError(
                f"{env_name('kafka_security_protocol')}={protocol} needs {env_name('kafka_sasl_username')} and "
                f"{env_name('kafka_sasl_password')}"
            )
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return options
