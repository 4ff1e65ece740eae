"""Kafka client options from settings, shared by the consumer, the relay and the producers."""

from __future__ import annotations

import ssl
from typing import Any

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from hub.config import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if "SSL" not in settings.kafka_security_protocol:
        return None
    context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(str(settings.kafka_ssl_certfile),
                                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None)
    return context


def faststream_security(settings: Settings) -> BaseSecurity | None:
    protocol = settings.kafka_security_protocol
    context = ssl_context(settings)
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    sasl = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return sasl[settings.kafka_sasl_mechanism](
        username=settings.kafka_sasl_username or "", password=password,
        ssl_context=context, use_ssl=protocol == "SASL_SSL",
    )


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection options for plain aiokafka clients (relay, producers, tools)."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if "SSL" in settings.kafka_security_protocol:
        kwargs["ssl_context"] = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None,
        )
    return kwargs


def producer_kwargs(settings: Settings) -> dict[str, Any]:
    return {
        **aiokafka_kwargs(settings),
        "enable_idempotence": settings.kafka_idempotence,
        "acks": "all",
        "linger_ms": 5,
        # Dead letters carry the original bytes, which may be far over the hub's own limit.
        "max_request_size": 16 * 1024 * 1024,
    }


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the hub's topics that do not exist yet (with HUB_TOPIC_PARTITIONS); returns those created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    names = [*settings.inbound_topics, *settings.alert_topics, settings.topic_dead_letter]
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(n, settings.topic_partitions, 1) for n in missing])
            except TopicAlreadyExistsError:
                pass  # another hub created them first
        return missing
    finally:
        await admin.close()
