"""The `twilio` SDK's pieces `rest.TwilioControl` uses, imported together (in a thread, once).

`BaseUrlHttpClient` is the SDK's documented extension point for its transport, a custom
`http_client`: it sends the Voice API's requests to `telephony.twilio.api_base_url` instead of
Twilio's own host (a regional edge, or the loopback fake the tests run).
"""

from __future__ import annotations

import logging
from typing import Any

import twilio.rest.api.v2010.account.call  # noqa: F401  (loaded here, not on the event loop)
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from .rest import TWILIO_API

__all__ = ["BaseUrlHttpClient", "Client", "TwilioException"]

log = logging.getLogger(__name__)


class BaseUrlHttpClient(AsyncTwilioHttpClient):
    """The SDK's async HTTP client, sending Twilio's API requests to `base_url` instead, and
    applying `timeout` to every request (the SDK passes none of its own: aiohttp would then
    wait forever on an API that accepted the connection but never answers)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    async def request(
        self, method: str, url: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Response:
        if self.base_url != TWILIO_API and url.startswith(TWILIO_API + "/"):
            url = self.base_url + url[len(TWILIO_API) :]
        return await super().request(
            method, url, *args, timeout=self.timeout if timeout is None else timeout, **kwargs
        )

    def log_request(self, kwargs: dict[str, Any]) -> None:
        """One debug line, not the SDK's eight at INFO for every request."""
        log.debug("Twilio API request: %s %s", kwargs["method"], kwargs["url"])

    def log_response(self, status_code: int, response: Any) -> None:
        log.debug("Twilio API answered HTTP %s", status_code)
