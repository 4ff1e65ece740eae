"""SMS and WeChat through an HTTP gateway: POST {to, text, idempotency_key} with a bearer token;
the idempotency key is the notification id, so the gateway drops a re-sent copy."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from hub.core.dispatch import TryResult, classify_http, refused, unreachable
from hub.dispatch.outgoing import Outgoing

MAX_RESPONSE_BYTES = 64 * 1024


class GatewayChannel:
    def __init__(self, name: str, url: str | None, token: SecretStr | None, client: httpx.AsyncClient) -> None:
        self.name, self.url, self.token, self.client = name, url, token, client

    @property
    def endpoint(self) -> str:
        return self.url or f"({self.name} gateway not configured)"

    async def send(self, note: Outgoing) -> TryResult:
        if not self.url:
            return refused(f"{self.name} is not configured: set HUB_{self.name.upper()}_GATEWAY_URL")
        if not note.phone:
            return refused("the customer has no phone number in the register")
        headers = {"Authorization": f"Bearer {self.token.get_secret_value()}"} if self.token else {}
        payload = {"to": note.phone, "text": note.text, "idempotency_key": note.notification_id}
        try:
            async with self.client.stream("POST", self.url, json=payload, headers=headers) as response:
                await read_at_most(response, MAX_RESPONSE_BYTES)
        except httpx.HTTPError as exc:
            return unreachable(f"{self.name} gateway: {type(exc).__name__}")
        return classify_http(response.status_code, response.headers.get("retry-after"))


async def read_at_most(response: httpx.Response, limit: int) -> bytes:
    """The start of a response body: a receiver cannot make the hub hold a large answer."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk[: limit - len(body)]
        if len(body) >= limit:
            break
    return bytes(body)
