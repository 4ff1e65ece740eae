"""Webhooks, signed per Standard Webhooks: POST JSON {notification_id, kind, customer_id,
shipment_id, language, body, created_at} to the customer's webhook_url with `webhook-id` (the
notification id, the receiver's de-duplication key), `webhook-timestamp` and `webhook-signature`
(one signature per active secret during a rotation).

Safety: https only, except hosts listed in HUB_WEBHOOK_INSECURE_HOSTS; a URL whose host resolves
to a private, loopback or link-local address is refused unless so listed; no redirects; a 10 s
timeout; at most 64 KiB of a response is read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import orjson

from hub.core.dispatch import TryResult, classify_http, refused, unreachable
from hub.core.webhooks import signed_headers
from hub.dispatch.gateway import MAX_RESPONSE_BYTES, read_at_most
from hub.dispatch.outgoing import Outgoing


class UnsafeUrl(ValueError):
    """A webhook URL the hub will not call; the message says why."""


async def check_url(url: str, insecure_hosts: frozenset[str]) -> None:
    """Refuse what would let a customer's URL reach inside the hub's network."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeUrl(f"{url!r} has no host")
    listed = host in insecure_hosts
    if parts.scheme != "https" and not (parts.scheme == "http" and listed):
        raise UnsafeUrl(f"webhook URLs must use https (host {host} is not in HUB_WEBHOOK_INSECURE_HOSTS)")
    if listed:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeUrl(f"cannot resolve {host} ({exc.strerror or exc})") from None
    for *_, address in infos:
        ip = ipaddress.ip_address(address[0])
        if (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
        ):
            raise UnsafeUrl(
                f"{host} resolves to {ip}, a private, loopback or link-local address; list the host "
                "in HUB_WEBHOOK_INSECURE_HOSTS if it is meant to be reached"
            )


def payload(note: Outgoing) -> bytes:
    return orjson.dumps(
        {
            "notification_id": note.notification_id,
            "kind": note.kind,
            "customer_id": note.customer_id,
            "shipment_id": note.shipment_id,
            "language": note.language,
            "body": note.text,
            "created_at": note.created_at,
        }
    )


class WebhookChannel:
    def __init__(self, client: httpx.AsyncClient, insecure_hosts: frozenset[str]) -> None:
        self.client, self.insecure_hosts = client, insecure_hosts

    async def send(self, note: Outgoing) -> TryResult:
        if not note.webhook_url:
            return refused("the customer has no webhook_url in the register")
        if note.webhook_disabled:
            return refused("the customer's webhook is disabled (it answered 410 Gone); fix the URL and re-import")
        if not note.secrets:
            return refused(
                f"no webhook secret for customer {note.customer_id}: create one with "
                f"`hub customers webhook-secret {note.customer_id}`"
            )
        try:
            await check_url(note.webhook_url, self.insecure_hosts)
        except UnsafeUrl as exc:
            return refused(str(exc))
        body = payload(note)
        headers = {
            **signed_headers(note.notification_id, datetime.now(UTC), body, note.secrets),
            "content-type": "application/json",
        }
        try:
            async with self.client.stream("POST", note.webhook_url, content=body, headers=headers) as response:
                await read_at_most(response, MAX_RESPONSE_BYTES)
        except httpx.HTTPError as exc:
            return unreachable(f"webhook: {type(exc).__name__}")
        return classify_http(response.status_code, response.headers.get("retry-after"))
