"""Kafka client options from settings (shared by the consumer, the relay and the producers), topic
creation, and reading a partition's end in a way the embedded test broker answers correctly."""

from __future__ import annotations

import contextlib
import ssl
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import BrokerResponseError, KafkaError
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from hub.config import Settings


class KafkaSetupError(RuntimeError):
    """A Kafka client could not start; the message names the step, the cause and what to do."""


def explain(step: str, exc: BaseException, settings: Settings, *, producer: bool = False) -> str:
    """One line an operator can act on, for a Kafka client that failed at `step`."""
    cause = f"{type(exc).__name__}: {exc}"
    if producer and settings.kafka_idempotence and isinstance(exc, BrokerResponseError):
        return (
            f"{step}: the broker at {settings.kafka_bootstrap} refused the idempotent producer ({cause}); "
            "brokers without it (such as the embedded test broker, Tansu) need HUB_KAFKA_IDEMPOTENCE=false"
        )
    return (
        f"{step}: cannot reach Kafka at {settings.kafka_bootstrap} ({cause}); "
        "check HUB_KAFKA_BOOTSTRAP (and the HUB_KAFKA_SECURITY_* settings) and that the broker is up"
    )


async def start_producer(settings: Settings, step: str = "starting the Kafka producer") -> AIOKafkaProducer:
    """A started producer, or KafkaSetupError saying why not (never a bare UnknownError)."""
    producer = AIOKafkaProducer(**producer_kwargs(settings))
    try:
        await producer.start()
    except (KafkaError, OSError) as exc:
        await producer.stop()
        raise KafkaSetupError(explain(step, exc, settings, producer=True)) from exc
    return producer


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if "SSL" not in settings.kafka_security_protocol:
        return None
    context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile), str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None
        )
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
        username=settings.kafka_sasl_username or "",
        password=password,
        ssl_context=context,
        use_ssl=protocol == "SASL_SSL",
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
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value()
            if settings.kafka_sasl_password
            else None,
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

    names = [*settings.inbound_topics, *settings.alert_topics, settings.dead_letter_topic]
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
    try:
        await admin.start()
    except (KafkaError, OSError) as exc:
        await admin.close()
        raise KafkaSetupError(explain("creating the hub's topics", exc, settings)) from exc
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another hub created them first
                await admin.create_topics([NewTopic(n, settings.topic_partitions, 1) for n in missing])
        return missing
    finally:
        await admin.close()


# The embedded test broker (Tansu 0.6) answers ListOffsets(latest) with a wrong offset once a
# partition holds a produce batch of several records, while its fetch responses carry the right
# high watermark. So every reader that needs "the end of a partition" asks the fetch responses.


async def fetched_high_watermarks(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], timeout_s: float = 30.0
) -> dict[TopicPartition, int]:
    """Each assigned partition's end as the fetch responses report it; fetches until all have one.

    Records the fetches return are dropped: call it before positioning the consumer.
    """
    deadline = time.monotonic() + timeout_s
    while any(consumer.highwater(tp) is None for tp in partitions):
        if time.monotonic() > deadline:
            raise KafkaError(f"no fetch response for some partitions within {timeout_s:.0f} s")
        await consumer.getmany(*partitions, timeout_ms=200, max_records=1)
    return {tp: high for tp in partitions if (high := consumer.highwater(tp)) is not None}


async def caught_up(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
    """Has the consumer read every partition up to the high watermark its last fetch reported?"""
    for tp in partitions:
        high = consumer.highwater(tp)
        if high is None or await consumer.position(tp) < high:
            return False
    return True
